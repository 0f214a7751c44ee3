"""One price row, and the field parsing every price file (snapshot, override, zone file) shares.

A price is what one hour of an instance costs in one market, in integer micro-dollars, together with
where the number came from and when. Budgets are decided on these numbers, so a zero or negative
price is rejected everywhere: a missing price must stay missing, never become a free instance.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from costtune.errors import SpecError
from costtune.money import format_usd, micros_to_usd, rate_to_micros

PROVIDERS = ("aws", "gcp", "azure", "onprem")
MARKETS = ("on-demand", "spot")
FAMILIES = ("general", "compute", "memory", "gpu", "burstable")

# Fields of a price row in a CSV file, in the order the bundled snapshot writes them.
CSV_FIELDS = (
    "provider", "region", "instance_type", "market", "usd_per_hour", "vcpus", "memory_gib",
    "gpu_model", "gpu_count", "family", "source", "as_of", "note",
)
SPEC_FIELDS = ("vcpus", "memory_gib", "gpu_model", "gpu_count", "family")

PriceKey = tuple[str, str, str, str]  # (provider, region, instance_type, market)


@dataclass(frozen=True)
class Price:
    """An hourly rate with its provenance; ``zone`` is set only for a per-zone spot price."""

    provider: str
    region: str
    instance_type: str
    market: str
    usd_per_hour_micros: int
    vcpus: int | None
    memory_gib: float | None
    gpu_model: str | None
    gpu_count: int
    family: str
    source: str
    as_of: datetime.date
    note: str = ""
    zone: str | None = None

    def __post_init__(self) -> None:
        # Programmatic rows (a PriceSource, a test) get the same floor as rows read from files.
        micros = self.usd_per_hour_micros
        if isinstance(micros, bool) or not isinstance(micros, int) or micros <= 0:
            raise ValueError(f"{self.ref} {self.market}: usd_per_hour_micros must be an int > 0, "
                             f"got {micros!r}")
        if self.provider not in PROVIDERS:
            raise ValueError(f"{self.ref}: provider must be one of {', '.join(PROVIDERS)}")
        if self.market not in MARKETS:
            raise ValueError(f"{self.ref}: market must be one of {', '.join(MARKETS)}, got {self.market!r}")
        if self.family not in FAMILIES:
            raise ValueError(f"{self.ref}: family must be one of {', '.join(FAMILIES)}, got {self.family!r}")
        if self.gpu_count < 0 or (self.gpu_count > 0) != bool(self.gpu_model):
            raise ValueError(f"{self.ref}: gpu_model and gpu_count > 0 go together")
        if not self.source or not isinstance(self.as_of, datetime.date):
            raise ValueError(f"{self.ref}: every price needs a source and an as_of date")

    @property
    def key(self) -> PriceKey:
        return (self.provider, self.region, self.instance_type, self.market)

    @property
    def ref(self) -> str:
        """``aws/us-east-1/m5.large``: the form ``resources.price_as`` takes in a sweep file."""
        return f"{self.provider}/{self.region}/{self.instance_type}"

    @property
    def usd_per_hour(self) -> Decimal:
        return micros_to_usd(self.usd_per_hour_micros)

    def describe(self) -> str:
        where = f" in {self.zone}" if self.zone else ""
        return (f"{self.ref} {self.market}{where}: {format_usd(self.usd_per_hour_micros)}/h "
                f"({self.source}, as of {self.as_of.isoformat()})")


def derive_family(
    provider: str, instance_type: str, gpu_count: int, vcpus: int | None, memory_gib: float | None
) -> str:
    """Classify by the provider's series naming; unknown series fall back to GiB per vCPU."""
    if gpu_count > 0:
        return "gpu"
    name = instance_type.lower()
    family = None
    if provider == "aws":
        family = _AWS_SERIES.get(_letters(name))
    elif provider == "gcp":
        series, _, shape = name.partition("-")
        if name in _GCP_SHARED_CORE or (series == "e2" and shape in ("micro", "small", "medium")):
            family = "burstable"
        elif any(word in shape for word in ("highmem", "megamem", "ultramem", "hypermem")):
            family = "memory"
        elif "highcpu" in shape:
            family = "compute"
        else:
            family = _GCP_SERIES.get(series)
    elif provider == "azure":
        series = _letters(name.removeprefix("standard_"))
        family = "gpu" if series.startswith("n") else _AZURE_SERIES.get(series[:1])
    if family is not None:
        return family
    if vcpus and memory_gib:
        ratio = memory_gib / vcpus
        return "memory" if ratio >= 8 else "compute" if ratio <= 2 else "general"
    return "general"


def _letters(name: str) -> str:
    """The leading letters of a size name: ``c6i.xlarge`` -> ``c``, ``nc24ads_a100_v4`` -> ``nc``."""
    return re.match(r"[a-z]*", name)[0]  # type: ignore[index]  # [a-z]* always matches


_AWS_SERIES = {
    "t": "burstable", "m": "general", "a": "general", "mac": "general",
    "c": "compute", "hpc": "compute",
    "r": "memory", "x": "memory", "z": "memory", "u": "memory",
}
_GCP_SHARED_CORE = ("f1-micro", "g1-small")
_GCP_SERIES = {
    "e2": "general", "n1": "general", "n2": "general", "n2d": "general", "n4": "general",
    "t2d": "general", "t2a": "general",
    "c2": "compute", "c2d": "compute", "c3": "compute", "c3d": "compute", "c4": "compute",
    "c4a": "compute", "c4d": "compute", "h3": "compute",
    "m1": "memory", "m2": "memory", "m3": "memory", "m4": "memory", "x4": "memory",
}
_AZURE_SERIES = {"b": "burstable", "a": "general", "d": "general", "f": "compute", "h": "compute",
                 "e": "memory", "m": "memory", "g": "memory"}


# ---------------------------------------------------------------------------------------------
# Field parsing. ``where(field)`` names the field for an error: "prices.yaml: prices[2].usd_per_hour".

Where = Callable[[str], str]


def _present(fields: Mapping[str, Any], name: str) -> bool:
    value = fields.get(name)
    return value is not None and not (isinstance(value, str) and not value.strip())


def parse_rate(value: Any, path: str) -> int:
    """Dollars per hour (text, int, Decimal, YAML float) to micro-dollars; > 0 and at most ``MAX_USD_PER_HOUR``."""
    if isinstance(value, str) and not value.strip():
        raise SpecError(path, "is required (a missing price is never a free instance)")
    try:
        micros = rate_to_micros(value, path)
    except SpecError as exc:
        if exc.reason == "must be >= 0":
            raise SpecError(path, "must be > 0", value) from None
        raise
    if micros <= 0:
        raise SpecError(path, "must be > 0", value)
    return micros


def _text(fields: Mapping[str, Any], name: str, where: Where) -> str:
    value = fields.get(name)
    if not _present(fields, name):
        raise SpecError(where(name), "is required")
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise SpecError(where(name), "must be text", value)
    return str(value).strip()


def _choice(fields: Mapping[str, Any], name: str, choices: tuple[str, ...], where: Where) -> str:
    text = _text(fields, name, where).lower()
    if text not in choices:
        raise SpecError(where(name), f"must be one of {', '.join(choices)}", fields.get(name))
    return text


def _int(value: Any, path: str, minimum: int) -> int:
    if isinstance(value, str):
        value = value.strip()
        number = int(value) if re.fullmatch(r"[+-]?\d+", value) else None
    else:
        number = value if isinstance(value, int) and not isinstance(value, bool) else None
    if number is None or number < minimum:
        raise SpecError(path, f"must be an integer >= {minimum}", value)
    return number


def _positive_float(value: Any, path: str) -> float:
    try:
        number = float(Decimal(str(value).strip())) if not isinstance(value, bool) else None
    except ArithmeticError:
        number = None
    if number is None or not number > 0 or number == float("inf"):
        raise SpecError(path, "must be a number > 0", value)
    return number


def parse_date(value: Any, path: str) -> datetime.date:
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise SpecError(path, "must be a date YYYY-MM-DD", value)


def parse_price(
    fields: Mapping[str, Any],
    where: Where,
    *,
    default_source: str | None = None,
    default_as_of: datetime.date | None = None,
    specs_from: Price | None = None,
) -> Price:
    """Build a Price from loosely typed fields (CSV text or YAML values), naming the bad field.

    Spec fields that are absent come from ``specs_from`` (an override keeps the catalog's vCPUs and
    memory); a missing family is derived. ``source``/``as_of`` fall back to the defaults, if any.
    """
    provider = _choice(fields, "provider", PROVIDERS, where)
    region = _text(fields, "region", where)
    instance_type = _text(fields, "instance_type", where)
    if provider == "onprem" and not _present(fields, "market"):
        market = "on-demand"  # on-prem capacity has no spot market unless the file says so
    else:
        market = _choice(fields, "market", MARKETS, where)
    if not _present(fields, "usd_per_hour"):
        raise SpecError(where("usd_per_hour"), "is required (a missing price is never a free instance)")
    micros = parse_rate(fields["usd_per_hour"], where("usd_per_hour"))

    def spec(name: str) -> Any:
        if _present(fields, name):
            return fields[name]
        return getattr(specs_from, name) if specs_from is not None else None

    vcpus = None if spec("vcpus") is None else _int(spec("vcpus"), where("vcpus"), 1)
    memory = None if spec("memory_gib") is None else _positive_float(spec("memory_gib"), where("memory_gib"))
    gpu_count = 0 if spec("gpu_count") is None else _int(spec("gpu_count"), where("gpu_count"), 0)
    gpu_model = None if spec("gpu_model") is None else str(spec("gpu_model")).strip() or None
    if gpu_count > 0 and not gpu_model:
        raise SpecError(where("gpu_model"), "is required when gpu_count > 0", spec("gpu_model"))
    if gpu_model and gpu_count == 0:
        raise SpecError(where("gpu_count"), f"must be >= 1 for gpu_model {gpu_model!r}", spec("gpu_count"))
    family = spec("family")
    if family is None:
        family = derive_family(provider, instance_type, gpu_count, vcpus, memory)
    elif str(family).strip().lower() not in FAMILIES:
        raise SpecError(where("family"), f"must be one of {', '.join(FAMILIES)}", family)
    family = str(family).strip().lower()

    if _present(fields, "source"):
        source = _text(fields, "source", where)
    elif default_source is not None:
        source = default_source
    else:
        raise SpecError(where("source"), "is required: every price says where it came from")
    if _present(fields, "as_of"):
        as_of = parse_date(fields["as_of"], where("as_of"))
    elif default_as_of is not None:
        as_of = default_as_of
    else:
        raise SpecError(where("as_of"), "is required: every price says when it was true")
    note = str(fields["note"]).strip() if _present(fields, "note") else ""
    return Price(provider=provider, region=region, instance_type=instance_type, market=market,
                 usd_per_hour_micros=micros, vcpus=vcpus, memory_gib=memory, gpu_model=gpu_model,
                 gpu_count=gpu_count, family=family, source=source, as_of=as_of, note=note)


__all__ = [
    "CSV_FIELDS", "FAMILIES", "MARKETS", "PROVIDERS", "Price", "PriceKey", "derive_family", "parse_date",
    "parse_price", "parse_rate",
]
