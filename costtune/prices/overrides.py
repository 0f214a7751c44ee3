"""Price override files: negotiated rates, percent discounts and on-prem machines over the catalog.

A team's real price is rarely the list price. An override file says so, with its own provenance::

    prices:
      - {provider: aws, region: us-east-1, instance_type: m5.large, market: on-demand,
         usd_per_hour: 0.08, source: "enterprise agreement 2026"}
      - {provider: onprem, region: lab-1, instance_type: dgx-a100, usd_per_hour: 9.50,
         gpu_model: A100 (80GB), gpu_count: 8, vcpus: 128, memory_gib: 1024}
    discounts:
      - {provider: aws, market: on-demand, percent: 12, source: "EDP 2026"}

A CSV file (snapshot columns; ``source``/``as_of`` may be blank) gives price rows only.

Rules, chosen so a file can never make a budget look cheaper by accident:

- A ``prices`` row replaces the catalog's row with the same (provider, region, instance_type, market)
  exactly, with its own ``source`` and ``as_of`` (default: the file path and today). vCPUs, memory,
  GPUs and family it does not give are taken from the catalog's row for that type.
- A ``discounts`` row takes ``percent`` off every catalog price it matches (``provider`` required;
  ``region``, ``instance_type``, ``market`` narrow it), computed in integers and rounded up to the
  micro-dollar. It skips rows the same file prices explicitly (a negotiated rate is already net),
  must match at least one price, and two discounts may not hit the same price (no silent stacking).
  The result's ``as_of`` is the older of the list price's and the discount's.
- Any bad row raises SpecError naming the file, the row and the field:
  ``prices.yaml: prices[2].usd_per_hour: must be > 0, got 0``.
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from costtune.errors import SpecError
from costtune.money import format_usd
from costtune.prices.csvio import KEY_FIELDS, SpecsFor, read_prices_csv
from costtune.prices.price import CSV_FIELDS, MARKETS, PROVIDERS, Price, PriceKey, parse_date, parse_price
from costtune.yamlfile import decode_utf8, load_yaml

if TYPE_CHECKING:
    from costtune.prices.catalog import PriceTable

TOP_LEVEL = ("prices", "discounts")
MAX_FILE_BYTES = 16 << 20  # a CSV of every price of a cloud fits; a YAML file is held to 1 MiB by its reader
DISCOUNT_FIELDS = ("provider", "region", "instance_type", "market", "percent", "source", "as_of", "note")


@dataclass(frozen=True)
class Discount:
    index: int
    provider: str
    region: str | None
    instance_type: str | None
    market: str | None
    percent: Decimal
    source: str
    as_of: datetime.date
    note: str = ""

    def matches(self, price: Price) -> bool:
        return (price.provider == self.provider
                and self.region in (None, price.region)
                and self.instance_type in (None, price.instance_type)
                and self.market in (None, price.market))


def discounted_micros(micros: int, percent: Decimal | int | str) -> int:
    """``micros`` less ``percent`` percent, exact in integers, rounded up to the next micro-dollar."""
    keep = (100 - Fraction(Decimal(str(percent)))) / 100
    return -(-micros * keep.numerator // keep.denominator)


def apply_overrides(table: PriceTable, path: str | Path, *, today: datetime.date) -> PriceTable:
    """A new table with the override file at ``path`` applied to ``table``."""
    file = Path(path)
    label = str(path)
    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(label, "no such price override file") from None
    except OSError as exc:
        raise SpecError(label, f"cannot read price override file ({exc.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise SpecError(label, f"a price override file must be at most {MAX_FILE_BYTES >> 20} MiB")
    text = decode_utf8(data, source=label)
    suffix = file.suffix.lower()

    def specs_for(provider: str, region: str, instance_type: str, market: str) -> Price | None:
        """The catalog's row for this key, else the same type anywhere (specs do not vary by region)."""
        exact = next((p for p in table if p.key == (provider, region, instance_type, market)), None)
        return exact or next((p for p in table if p.key[0::2] == (provider, instance_type)), None)

    if suffix in (".yaml", ".yml"):
        prices, discounts = _from_yaml(text, label, today, specs_for)
    elif suffix == ".csv":
        prices = read_prices_csv(text, label, default_source=label, default_as_of=today, specs_for=specs_for)
        discounts = []
    else:
        raise SpecError(label, "a price override file must end in .yaml, .yml or .csv",
                        file.suffix or file.name)
    explicit = {p.key for p in prices}
    return table.with_prices([*_discounted(table, discounts, explicit, label), *prices])


def _from_yaml(
    text: str, label: str, today: datetime.date, specs_for: SpecsFor
) -> tuple[list[Price], list[Discount]]:
    data = load_yaml(text, source=label)
    if data is None:
        raise SpecError(label, "is empty; give prices and/or discounts")
    if not isinstance(data, dict):
        raise SpecError(label, "must be a mapping with prices and/or discounts", type(data).__name__)
    for key in data:
        if key not in TOP_LEVEL:
            raise SpecError(f"{label}: {key}", f"unknown field; allowed: {', '.join(TOP_LEVEL)}")
    prices: list[Price] = []
    seen: dict[PriceKey, int] = {}
    for i, row in enumerate(_list(data.get("prices"), f"{label}: prices")):
        path = f"{label}: prices[{i}]"
        row = _row(row, path, CSV_FIELDS)

        def where(field: str, path: str = path) -> str:
            return f"{path}.{field}"

        raw = [str(row.get(name) or "").strip() for name in KEY_FIELDS]
        specs = specs_for(raw[0].lower(), raw[1], raw[2], raw[3].lower() or "on-demand")
        price = parse_price(row, where, default_source=label, default_as_of=today, specs_from=specs)
        if price.key in seen:
            raise SpecError(path, f"repeats prices[{seen[price.key]}] ({price.ref} {price.market})")
        seen[price.key] = i
        prices.append(price)
    discounts = [
        _discount(row, i, f"{label}: discounts[{i}]", label, today)
        for i, row in enumerate(_list(data.get("discounts"), f"{label}: discounts"))
    ]
    return prices, discounts


def _list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError(path, "must be a list", value)
    return value


def _row(value: Any, path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(path, "must be a mapping of fields", value)
    for key in value:
        if key not in allowed:
            raise SpecError(f"{path}.{key}", f"unknown field; allowed: {', '.join(allowed)}")
    return value


def _optional_text(
    row: dict[str, Any], name: str, path: str, choices: tuple[str, ...] | None = None
) -> str | None:
    value = row.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{path}.{name}", "must be non-empty text", value)
    text = value.strip()
    if choices is not None:
        text = text.lower()
        if text not in choices:
            raise SpecError(f"{path}.{name}", f"must be one of {', '.join(choices)}", value)
    return text


def _discount(value: Any, index: int, path: str, label: str, today: datetime.date) -> Discount:
    row = _row(value, path, DISCOUNT_FIELDS)
    provider = _optional_text(row, "provider", path, PROVIDERS)
    if provider is None:
        raise SpecError(f"{path}.provider", "is required")
    raw = row.get("percent")
    try:
        if raw is None or isinstance(raw, bool):
            raise InvalidOperation
        percent = Decimal(str(raw).strip().rstrip("%"))
    except InvalidOperation:
        raise SpecError(f"{path}.percent", "must be a number of percent, e.g. 12", raw) from None
    if not percent.is_finite() or not 0 < percent < 100:
        raise SpecError(f"{path}.percent", "must be > 0 and < 100", raw)
    as_of = today if row.get("as_of") is None else parse_date(row["as_of"], f"{path}.as_of")
    return Discount(
        index=index, provider=provider, region=_optional_text(row, "region", path),
        instance_type=_optional_text(row, "instance_type", path),
        market=_optional_text(row, "market", path, MARKETS), percent=percent,
        source=_optional_text(row, "source", path) or label, as_of=as_of,
        note=_optional_text(row, "note", path) or "",
    )


def _discounted(
    table: PriceTable, discounts: list[Discount], explicit: set[PriceKey], label: str
) -> list[Price]:
    """Discounted copies of the matched regional prices and of their per-zone spot prices."""
    chosen: dict[PriceKey, Discount] = {}
    for d in discounts:
        matched = [p for p in table if d.matches(p)]
        if not matched:
            where = "/".join(x or "*" for x in (d.provider, d.region, d.instance_type, d.market))
            raise SpecError(f"{label}: discounts[{d.index}]", f"matches no price in the catalog ({where})")
        for p in matched:
            if p.key in chosen:
                raise SpecError(f"{label}: discounts[{d.index}]",
                                f"overlaps discounts[{chosen[p.key].index}] on {p.ref} {p.market}; "
                                "give one discount per price")
            if p.key not in explicit:
                chosen[p.key] = d
    out: list[Price] = []
    for key, d in chosen.items():
        base = table.rate(*key)
        out.append(_apply(base, d))
        if key[3] == "spot":
            out.extend(_apply(z, d) for z in table.spot_zones(*key[:3]))
    return out


def _apply(base: Price, d: Discount) -> Price:
    percent = f"{d.percent.normalize():f}"
    note = f"{percent}% discount on list {format_usd(base.usd_per_hour_micros)}/h"
    if d.note:
        note += f" ({d.note})"
    return dataclasses.replace(
        base,
        usd_per_hour_micros=discounted_micros(base.usd_per_hour_micros, d.percent),
        source=f"{base.source}; minus {percent}% per {d.source}",
        as_of=min(base.as_of, d.as_of),
        note=f"{base.note}; {note}" if base.note else note,
    )


__all__ = ["Discount", "apply_overrides", "discounted_micros"]
