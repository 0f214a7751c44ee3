"""Reading price CSV files: the bundled snapshot, its per-zone spot file, and CSV override files.

Errors name the file, the line and the column (``snapshot.csv:7: usd_per_hour: must be > 0, got '0'``),
because a price file is edited by hand and a wrong number there is a wrong budget.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
from collections.abc import Callable, Mapping

from costtune.errors import SpecError
from costtune.prices.price import CSV_FIELDS, Price, PriceKey, parse_price

ZONE_FIELDS = ("provider", "region", "instance_type", "zone", "usd_per_hour", "source", "as_of", "note")

KEY_FIELDS = ("provider", "region", "instance_type", "market")
SpecsFor = Callable[[str, str, str, str], Price | None]


def _rows(text: str, label: str, allowed: tuple[str, ...], required: tuple[str, ...]) -> csv.DictReader[str]:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames
    if not header:
        raise SpecError(label, f"is empty; the header must name the columns {', '.join(required)}")
    unknown = [name for name in header if name not in allowed]
    if unknown:
        raise SpecError(f"{label}:1", f"unknown column; allowed: {', '.join(allowed)}", unknown[0])
    missing = [name for name in required if name not in header]
    if missing:
        raise SpecError(f"{label}:1", f"missing column {missing[0]!r}")
    return reader


def _check_width(row: Mapping[str | None, object], label: str, line: int) -> None:
    if None in row:
        raise SpecError(f"{label}:{line}", "has more values than the header has columns")


def read_prices_csv(
    text: str,
    label: str,
    *,
    default_source: str | None = None,
    default_as_of: datetime.date | None = None,
    specs_for: SpecsFor | None = None,
) -> list[Price]:
    """Parse price rows; a repeated (provider, region, instance_type, market) is an error."""
    reader = _rows(text, label, CSV_FIELDS, ("provider", "region", "instance_type", "usd_per_hour"))
    prices: list[Price] = []
    seen: dict[PriceKey, int] = {}
    for row in reader:
        line = reader.line_num
        _check_width(row, label, line)

        def where(field: str, line: int = line) -> str:
            return f"{label}:{line}: {field}"

        specs = None
        if specs_for is not None:
            raw = [str(row.get(name) or "").strip() for name in KEY_FIELDS]
            specs = specs_for(raw[0].lower(), raw[1], raw[2], raw[3].lower() or "on-demand")
        price = parse_price(row, where, default_source=default_source, default_as_of=default_as_of,
                            specs_from=specs)
        if price.key in seen:
            raise SpecError(f"{label}:{line}", f"repeats line {seen[price.key]} ({price.ref} {price.market})")
        seen[price.key] = line
        prices.append(price)
    return prices


def read_zone_csv(text: str, label: str, regional: Mapping[PriceKey, Price]) -> list[Price]:
    """Per-zone spot prices; specs come from the regional spot row, which must exist."""
    reader = _rows(text, label, ZONE_FIELDS, ZONE_FIELDS[:-1])
    prices: list[Price] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    for row in reader:
        line = reader.line_num
        _check_width(row, label, line)

        def where(field: str, line: int = line) -> str:
            return f"{label}:{line}: {field}"

        fields = {**row, "market": "spot"}
        key = (str(row.get("provider") or "").strip().lower(), str(row.get("region") or "").strip(),
               str(row.get("instance_type") or "").strip(), "spot")
        base = regional.get(key)
        if base is None:
            raise SpecError(where("instance_type"), "has no regional spot price in the catalog",
                            "/".join(key[:3]))
        zone = str(row.get("zone") or "").strip()
        if not zone:
            raise SpecError(where("zone"), "is required")
        price = dataclasses.replace(parse_price(fields, where, specs_from=base), zone=zone)
        zone_key = (*key[:3], zone)
        if zone_key in seen:
            raise SpecError(f"{label}:{line}", f"repeats line {seen[zone_key]} ({price.ref} {zone})")
        seen[zone_key] = line
        prices.append(price)
    return prices


__all__ = ["ZONE_FIELDS", "read_prices_csv", "read_zone_csv"]
