"""The price catalog: what an instance costs per hour, by provider, region, type and market.

Every budget decision in costtune asks this table, so it is strict: exact look-ups (no guessing a
region or a market), integer micro-dollars, a source and an as-of date on every number, and no
zero prices. The bundled snapshot ships inside the package (``snapshot.csv``, built by
``build_snapshot``); overrides (negotiated rates, discounts, on-prem machines) layer on top and
return a new table, so one process can price two teams differently.
"""

from __future__ import annotations

import datetime
import difflib
import functools
import importlib.resources
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from costtune.errors import InputError, SpecError
from costtune.prices.csvio import read_prices_csv, read_zone_csv
from costtune.prices.price import FAMILIES, MARKETS, PROVIDERS, Price, PriceKey
from costtune.words import plural

SNAPSHOT = "snapshot.csv"
SPOT_ZONES = "aws_spot_zones.csv"
_REF_PART = re.compile(r"[^\s/]+")


class PriceNotFound(InputError):
    """No price for a (provider, region, instance_type, market); the message suggests near matches."""

    def __init__(self, key: PriceKey, suggestions: Sequence[str] = (), zone: str | None = None) -> None:
        self.key = key
        self.zone = zone
        self.suggestions = tuple(suggestions)
        provider, region, instance_type, market = key
        text = f"no price for {provider}/{region}/{instance_type} {market}"
        if zone is not None:
            text += f" in zone {zone}"
        if self.suggestions:
            text += f"; did you mean: {', '.join(self.suggestions)}?"
        else:
            text += "; add it in a price override file"
        super().__init__(text)


@runtime_checkable
class PriceSource(Protocol):
    """Where a live refresh will get current prices; the result goes to ``PriceTable.with_prices``.

    Implementations live with the provider adapters (they import cloud SDKs; this module never does):

    - AWS on-demand: Price List Query API, ``pricing.get_products(ServiceCode="AmazonEC2")`` filtered on
      instanceType, regionCode, Linux, shared tenancy, no pre-installed software, capacitystatus Used.
      AWS spot: ``ec2.describe_spot_price_history(ProductDescriptions=["Linux/UNIX"], StartTime=now)``,
      one observation per availability zone: return the regional minimum plus one ``Price`` per zone
      (``zone`` set), which ``rate(..., zone=...)`` then serves.
    - GCP: Cloud Billing Catalog API, Compute Engine ``/skus``; a machine is vCPUs x core SKU + GiB x RAM
      SKU (+ GPU SKUs), ``OnDemand`` vs ``Preemptible`` (spot); money is ``units + nanos / 1e9``.
    - Azure: Retail Prices API (``priceType eq 'Consumption'``), spot rows are ``skuName`` ending in
      `` Spot``; drop Windows and Low Priority rows.

    Every returned ``Price`` carries the API as ``source`` and the fetch date as ``as_of``. A price the
    source does not have is left out, never returned as zero (``Price`` refuses zero anyway).
    """

    def fetch(self, regions: Sequence[str], instance_types: Sequence[str]) -> list[Price]:
        """Current prices for these regions and instance types, both markets where they exist."""
        ...


def parse_price_ref(ref: object, path: str = "resources.price_as") -> tuple[str, str, str]:
    """``"aws/us-east-1/m5.large"`` -> ``("aws", "us-east-1", "m5.large")``; SpecError names ``path``."""
    shape = "must be provider/region/instance_type, e.g. aws/us-east-1/m5.large"
    if not isinstance(ref, str):
        raise SpecError(path, shape, ref)
    parts = ref.strip().split("/")
    if len(parts) != 3 or not all(_REF_PART.fullmatch(part) for part in parts):
        raise SpecError(path, shape, ref)
    provider = parts[0].lower()
    if provider not in PROVIDERS:
        raise SpecError(path, f"unknown provider {parts[0]!r}; known: {', '.join(PROVIDERS)}", ref)
    return provider, parts[1], parts[2]


def _choices(
    value: str | Iterable[str] | None, name: str, allowed: tuple[str, ...] | None
) -> set[str] | None:
    """A filter argument as a set; a bare string is one value, not its characters."""
    if value is None:
        return None
    values = {value} if isinstance(value, str) else set(value)
    if allowed is not None:
        values = {v.lower() for v in values}
        for v in sorted(values):
            if v not in allowed:
                raise SpecError(name, f"must be one of {', '.join(allowed)}", v)
    return values


def _gpu_matches(model: str | None, wanted: str) -> bool:
    """``A100`` matches ``A100 (40GB)`` and ``A100 (80GB)``; a full name matches only itself."""
    if model is None:
        return False
    wanted = wanted.strip().lower()
    return model.lower() == wanted or model.lower().split(" (")[0] == wanted


class PriceTable:
    """An immutable set of prices, one per (provider, region, instance_type, market).

    AWS spot prices also exist per availability zone (``spot_zones``); the regional row is the
    minimum across zones at fetch time, so a launch pinned to a zone should price with ``zone=``.
    """

    def __init__(self, prices: Iterable[Price] = (), spot_zones: Iterable[Price] = ()) -> None:
        by_key: dict[PriceKey, Price] = {}
        for price in prices:
            if price.zone is not None:
                raise ValueError(f"{price.ref}: a per-zone price goes in spot_zones")
            if price.key in by_key:
                raise ValueError(f"two prices for {price.ref} {price.market}")
            by_key[price.key] = price
        zones: dict[tuple[str, str, str], dict[str, Price]] = {}
        for price in spot_zones:
            if price.zone is None or price.market != "spot":
                raise ValueError(f"{price.ref}: spot_zones holds spot prices with a zone")
            if price.key not in by_key:
                raise ValueError(f"{price.ref}: a zone price needs the regional spot price too")
            per_zone = zones.setdefault(price.key[:3], {})
            if price.zone in per_zone:
                raise ValueError(f"two prices for {price.ref} spot in {price.zone}")
            per_zone[price.zone] = price
        self._by_key = by_key
        self._rows = tuple(sorted(by_key.values(), key=lambda p: p.key))
        self._zones = {
            key: tuple(sorted(per_zone.values(), key=lambda p: (p.usd_per_hour_micros, p.zone)))
            for key, per_zone in zones.items()
        }

    # -- loading -------------------------------------------------------------------------------

    @classmethod
    def bundled(cls) -> PriceTable:
        """The snapshot shipped in the package, loaded once per process."""
        return _bundled()

    @classmethod
    def from_csv(cls, path: str | Path, *, spot_zones: str | Path | None = None) -> PriceTable:
        """A table from a snapshot-format CSV (every row with source and as_of)."""
        prices = read_prices_csv(_read(path), str(path))
        regional = {p.key: p for p in prices}
        zones = [] if spot_zones is None else read_zone_csv(_read(spot_zones), str(spot_zones), regional)
        return cls(prices, zones)

    def with_overrides(self, path: str | Path, *, today: datetime.date | None = None) -> PriceTable:
        """A new table with an override file applied (see ``costtune.prices.overrides``)."""
        from costtune.prices.overrides import apply_overrides

        return apply_overrides(self, path, today=today or datetime.date.today())

    def with_prices(self, prices: Iterable[Price]) -> PriceTable:
        """A new table where these prices replace (or add to) the ones with the same key.

        A new regional spot price drops the old per-zone prices of that key: they described the old
        number. Zone prices in ``prices`` are added after that.
        """
        new = list(prices)
        regional = dict(self._by_key)
        zones = {key: {p.zone: p for p in per_zone} for key, per_zone in self._zones.items()}
        given: set[tuple[str, ...]] = set()
        for price in new:
            ident = (*price.key, price.zone or "")
            if ident in given:
                raise ValueError(f"two new prices for {price.ref} {price.market} {price.zone or ''}".rstrip())
            given.add(ident)
            if price.zone is None:
                regional[price.key] = price
                zones.pop(price.key[:3], None)
        for price in new:
            if price.zone is not None:
                zones.setdefault(price.key[:3], {})[price.zone] = price
        return PriceTable(regional.values(), [p for per_zone in zones.values() for p in per_zone.values()])

    # -- look-ups ------------------------------------------------------------------------------

    def rate(
        self, provider: str, region: str, instance_type: str, market: str, *, zone: str | None = None
    ) -> Price:
        """The exact price; ``PriceNotFound`` (with suggestions) when the table has none.

        ``zone`` matters only for spot prices known per zone (AWS): the zone's own price, or
        PriceNotFound naming the zones known. Elsewhere the regional price holds in every zone.
        """
        key = (provider.strip().lower(), region.strip(), instance_type.strip(), market.strip().lower())
        price = self._by_key.get(key)
        if price is None:
            raise PriceNotFound(key, self._suggest(key))
        per_zone = self._zones.get(key[:3]) if key[3] == "spot" and zone is not None else None
        if not per_zone:
            return price
        for candidate in per_zone:
            if candidate.zone == zone.strip():
                return candidate
        raise PriceNotFound(key, [f"zone {p.zone}" for p in sorted(per_zone, key=lambda p: p.zone or "")],
                            zone=zone)

    def spot_zones(self, provider: str, region: str, instance_type: str) -> list[Price]:
        """Per-zone spot prices, cheapest first; empty where only a regional price is known."""
        return list(self._zones.get((provider.strip().lower(), region.strip(), instance_type.strip()), ()))

    def offers(
        self,
        *,
        providers: str | Iterable[str] | None = None,
        regions: str | Iterable[str] | None = None,
        instance_types: str | Iterable[str] | None = None,
        markets: str | Iterable[str] | None = None,
        min_vcpus: int | None = None,
        min_memory_gib: float | None = None,
        gpu_model: str | None = None,
        min_gpus: int | None = None,
        family: str | Iterable[str] | None = None,
    ) -> list[Price]:
        """Prices that satisfy a resource request, cheapest first (ties by provider/region/type/market).

        A row whose vCPUs or memory are unknown never satisfies a minimum on them.
        """
        provider_set = _choices(providers, "providers", PROVIDERS)
        region_set = _choices(regions, "regions", None)
        type_set = _choices(instance_types, "instance_types", None)
        market_set = _choices(markets, "markets", MARKETS)
        family_set = _choices(family, "family", FAMILIES)
        found = []
        for p in self._rows:
            if provider_set is not None and p.provider not in provider_set:
                continue
            if region_set is not None and p.region not in region_set:
                continue
            if type_set is not None and p.instance_type not in type_set:
                continue
            if market_set is not None and p.market not in market_set:
                continue
            if family_set is not None and p.family not in family_set:
                continue
            if min_vcpus is not None and (p.vcpus is None or p.vcpus < min_vcpus):
                continue
            if min_memory_gib is not None and (p.memory_gib is None or p.memory_gib < min_memory_gib):
                continue
            if gpu_model is not None and not _gpu_matches(p.gpu_model, gpu_model):
                continue
            if min_gpus is not None and p.gpu_count < min_gpus:
                continue
            found.append(p)
        return sorted(found, key=lambda p: (p.usd_per_hour_micros, *p.key))

    def rows(self) -> list[Price]:
        """Every regional price, ordered by provider, region, instance type, market."""
        return list(self._rows)

    def zone_rows(self) -> list[Price]:
        """Every per-zone spot price."""
        return [p for key in sorted(self._zones) for p in self._zones[key]]

    def __iter__(self) -> Iterator[Price]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def __repr__(self) -> str:
        providers = sorted({p.provider for p in self._rows})
        return f"<PriceTable {plural(len(self), 'price')}: {', '.join(providers) or 'empty'}>"

    def _suggest(self, key: PriceKey) -> list[str]:
        """Same type elsewhere (other region or market) first, then close type names."""
        provider, region, instance_type, market = key
        known = {p.provider for p in self._rows}
        pool = [p for p in self._rows if p.provider == provider or provider not in known]

        def nearness(p: Price) -> tuple[bool, bool, bool, PriceKey]:
            return (p.provider != provider, p.region != region, p.market != market, p.key)

        out: list[str] = []
        same = sorted((p for p in pool if p.instance_type.lower() == instance_type.lower()), key=nearness)
        names = sorted({p.instance_type for p in pool})
        close = difflib.get_close_matches(instance_type, names, n=3, cutoff=0.6)
        picks = same[:4] + [min((p for p in pool if p.instance_type == name), key=nearness) for name in close]
        for p in picks:
            text = f"{p.ref} {p.market}"
            if text not in out and p.key != key:
                out.append(text)
        return out[:6]


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(str(path), "no such price file") from None
    except OSError as exc:
        raise SpecError(str(path), f"cannot read price file ({exc.strerror})") from None


@functools.cache
def _bundled() -> PriceTable:
    package = importlib.resources.files("costtune.prices")
    snapshot = package.joinpath(SNAPSHOT).read_text(encoding="utf-8")
    spot_zones = package.joinpath(SPOT_ZONES).read_text(encoding="utf-8")
    prices = read_prices_csv(snapshot, f"costtune/prices/{SNAPSHOT}")
    zones = read_zone_csv(spot_zones, f"costtune/prices/{SPOT_ZONES}", {p.key: p for p in prices})
    return PriceTable(prices, zones)


__all__ = ["PriceNotFound", "PriceSource", "PriceTable", "parse_price_ref"]
