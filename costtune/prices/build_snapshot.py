"""Dev tool: build the bundled price snapshot from the team's shared reference price files.

Usage::

    python -m costtune.prices.build_snapshot /path/to/shared/prices           # writes the CSVs
    python -m costtune.prices.build_snapshot /path/to/shared/prices --check   # exit 1 if they differ

It reads ``prices-reference.csv``, ``aws-spot-by-zone.csv`` and ``azure-crosscheck.csv`` from that
directory and writes ``snapshot.csv`` and ``aws_spot_zones.csv`` next to this file (``--out DIR`` to
write elsewhere). costtune itself only ever reads the written CSVs, never the shared directory.

What it does, following the caveats of the reference's NOTES.md:

- One row per (provider, region, instance_type, market). The price is the source's decimal text,
  unchanged. A missing or zero price is left out and listed in the report, never written as 0.
- ``family`` is derived (``costtune.prices.price.derive_family``): GPU count first, then the series name.
- AWS us-east-1 on-demand prices are checked against Karpenter's table generated 2026-01-19 (values
  below, with the commit): equal ones get a "matches" note, a different one (p4d.24xlarge, 32.7726 in
  the 2023 source) is replaced by Karpenter's number with Karpenter as source and 2026-01-19 as as_of.
  The other regions of a corrected type are flagged, as they were probably cut too.
- Azure on-demand prices are checked against ``azure-crosscheck.csv`` (Karpenter, 2026-06-18) the same way.
- AWS spot is the minimum across availability zones at fetch time (checked against the zone file,
  which is shipped as ``aws_spot_zones.csv`` for ``PriceTable.rate(..., zone=...)``); GCP and Azure
  spot are regional list prices.
- Prices dated before 2024 that no later source confirms are noted ``stale: <year>``; spot prices that
  are exactly 10% or 10.5% of on-demand, and GCP n1-standard-8 spot in us-central1 (whose machine part
  rose from 0.07597 to 0.13402), are noted ``doubtful``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from costtune.prices.csvio import ZONE_FIELDS, read_prices_csv, read_zone_csv
from costtune.prices.price import CSV_FIELDS, derive_family
from costtune.words import plural

KARPENTER_AWS_SOURCE = (
    "github.com/aws/karpenter-provider-aws@031e72b6099630e960dacb88b48a7e9bb780945f "
    "pkg/providers/pricing/zz_generated.pricing_aws.go (generated 2026-01-19T13:23:24Z for us-east-1)"
)
KARPENTER_AWS_AS_OF = "2026-01-19"
# us-east-1 on-demand, Linux, USD/hour, as that file writes them (only the types the reference has).
KARPENTER_AWS_US_EAST_1 = {
    "t3.medium": "0.041600", "t3.large": "0.083200", "t3.xlarge": "0.166400",
    "m5.large": "0.096000", "m5.xlarge": "0.192000", "m5.2xlarge": "0.384000",
    "m6i.xlarge": "0.192000", "m6i.2xlarge": "0.384000",
    "c5.xlarge": "0.170000", "c5.2xlarge": "0.340000", "c6i.xlarge": "0.170000", "c6i.2xlarge": "0.340000",
    "r5.xlarge": "0.252000", "r5.2xlarge": "0.504000", "r6i.xlarge": "0.252000", "r6i.2xlarge": "0.504000",
    "g4dn.xlarge": "0.526000", "g4dn.12xlarge": "3.912000",
    "g5.xlarge": "1.006000", "g5.12xlarge": "5.672000",
    "p3.2xlarge": "3.060000", "p3.8xlarge": "12.240000", "p4d.24xlarge": "21.957642",
}
# NOTES.md: "GCP n1-standard-8 spot in us-central1 went from 0.07597 to 0.13402".
GCP_N1_SPOT_RISE = ("gcp", "us-central1", "n1-standard-8+", "0.07597", "0.13402")
DOUBTFUL_SPOT_PERCENTS = (Decimal(10), Decimal("10.5"))
STALE_BEFORE = datetime.date(2024, 1, 1)


@dataclass
class Build:
    snapshot: list[dict[str, str]] = field(default_factory=list)
    zones: list[dict[str, str]] = field(default_factory=list)
    omitted: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    caveats: Counter[str] = field(default_factory=Counter)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _azure_karpenter(rows: list[dict[str, str]]) -> dict[tuple[str, str], tuple[str, str]]:
    """(region, size) -> (on-demand text, table date) from the ``<region>_od_karpenter_<date>`` columns."""
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for row in rows:
        for column, value in row.items():
            region, marker, date = column.partition("_od_karpenter_")
            if marker and value:
                out[(region, row["size"])] = (value, date)
    return out


def _stale(as_of: str) -> list[str]:
    return [f"stale: {as_of[:4]}"] if datetime.date.fromisoformat(as_of) < STALE_BEFORE else []


def _is_percent_of(spot: str, on_demand: str) -> Decimal | None:
    """The doubtful percent if spot is that share of on-demand, rounded to spot's own decimals."""
    quantum = Decimal(1).scaleb(Decimal(spot).as_tuple().exponent)  # type: ignore[arg-type]
    for percent in DOUBTFUL_SPOT_PERCENTS:
        if (Decimal(on_demand) * percent / 100).quantize(quantum) == Decimal(spot):
            return percent
    return None


def build(shared: Path) -> Build:
    reference = _read_csv(shared / "prices-reference.csv")
    zone_rows = _read_csv(shared / "aws-spot-by-zone.csv")
    azure = _azure_karpenter(_read_csv(shared / "azure-crosscheck.csv"))
    out = Build()
    corrected: dict[str, tuple[str, str]] = {}  # AWS types whose us-east-1 on-demand Karpenter changed
    for row in reference:
        if row["provider"] == "aws" and row["region"] == "us-east-1" and row["on_demand_usd_per_hour"]:
            new = KARPENTER_AWS_US_EAST_1.get(row["instance_type"])
            if new is not None and Decimal(new) != Decimal(row["on_demand_usd_per_hour"]):
                corrected[row["instance_type"]] = (row["on_demand_usd_per_hour"], new)

    zone_min: dict[tuple[str, str], Decimal] = {}
    for z in zone_rows:
        key = (z["region"], z["instance_type"])
        zone_min[key] = min(zone_min.get(key, Decimal("Infinity")), Decimal(z["spot_usd_per_hour"]))
        if Decimal(z["spot_usd_per_hour"]) >= Decimal(z["on_demand_usd_per_hour"]):
            out.warnings.append(f"aws/{key[0]}/{key[1]} spot in {z['zone']} is not below on-demand")
        out.zones.append({
            "provider": z["provider"], "region": z["region"], "instance_type": z["instance_type"],
            "zone": z["zone"], "usd_per_hour": z["spot_usd_per_hour"], "source": z["source"],
            "as_of": z["as_of"], "note": "; ".join(["single observation at fetch time", *_stale(z["as_of"])]),
        })

    for row in reference:
        provider, region, itype = row["provider"], row["region"], row["instance_type"]
        gpu_count = int(row["gpu_count"] or 0)
        family = derive_family(provider, itype, gpu_count, int(row["vcpus"]), float(row["memory_gib"]))
        for market, column in (("on-demand", "on_demand_usd_per_hour"), ("spot", "spot_usd_per_hour")):
            price = row[column].strip()
            ref = f"{provider}/{region}/{itype} {market}"
            if not price or Decimal(price) <= 0:
                out.omitted.append(f"{ref}: {'no price' if not price else f'price {price}'} in the source")
                continue
            source, as_of = row["source"], row["as_of"]
            notes: list[str] = []
            confirmed = False
            if provider == "gcp" and "+" in itype:
                base, _, gpu = itype.partition("+")
                notes.append(f"{base} with {gpu} attached, priced as the sum of both source rows; "
                             "not a GCP machine type name")
            if market == "spot":
                if provider == "aws":
                    notes.append("minimum across AZs at fetch time (per zone: aws_spot_zones.csv)")
                    if zone_min.get((region, itype)) != Decimal(price):
                        out.warnings.append(f"{ref}: not the minimum of the zone file")
                else:
                    notes.append("regional list price")
            if provider == "aws" and market == "on-demand" and region == "us-east-1" and itype in corrected:
                old, price = corrected[itype]
                source, as_of, confirmed = KARPENTER_AWS_SOURCE, KARPENTER_AWS_AS_OF, True
                notes.append(f"{itype.split('.')[0]} on-demand updated per Karpenter {as_of} "
                             f"(the {row['as_of'][:4]} source said {old})")
                out.caveats[f"{itype} us-east-1 on-demand replaced by Karpenter's {price}"] += 1
            elif provider == "aws" and market == "on-demand" and region == "us-east-1" \
                    and itype in KARPENTER_AWS_US_EAST_1:
                confirmed = True
                notes.append(f"matches Karpenter us-east-1 table of {KARPENTER_AWS_AS_OF}")
                out.caveats["AWS us-east-1 on-demand confirmed by Karpenter 2026-01-19"] += 1
            elif provider == "azure" and market == "on-demand" and (region, itype) in azure:
                value, date = azure[(region, itype)]
                if Decimal(value) == Decimal(price):
                    confirmed = "karpenter" not in source
                    if confirmed:
                        notes.append(f"matches Karpenter Azure table of {date} (azure-crosscheck.csv)")
                        out.caveats[f"Azure {region} on-demand confirmed by Karpenter {date}"] += 1
                else:
                    out.warnings.append(f"{ref}: {price} but Karpenter {date} says {value}")
                    notes.append(f"Karpenter {date} says {value}")
            if not confirmed and _stale(as_of):
                notes.extend(_stale(as_of))
                out.caveats["stale: dated before 2024, no later confirmation"] += 1
            if provider == "aws" and market == "on-demand" and region != "us-east-1" and itype in corrected:
                old, new = corrected[itype]
                notes.append(f"us-east-1 fell {old} -> {new} by {KARPENTER_AWS_AS_OF}; expect a cut here too")
                out.caveats[f"{itype} on-demand outside us-east-1 flagged as likely cut"] += 1
            if market == "spot" and row["on_demand_usd_per_hour"]:
                percent = _is_percent_of(price, row["on_demand_usd_per_hour"])
                if percent is not None:
                    notes.append(f"doubtful: exactly {percent}% of the source's on-demand price")
                    out.caveats[f"spot exactly {percent}% of on-demand flagged doubtful"] += 1
            p, r, prefix, old, new = GCP_N1_SPOT_RISE
            if market == "spot" and (provider, region) == (p, r) and itype.startswith(prefix):
                notes.append(f"doubtful: the n1-standard-8 spot part rose {old} -> {new} since; "
                             "GPU spot part not re-checked")
                out.caveats["GCP n1+GPU us-central1 spot flagged doubtful"] += 1
            out.snapshot.append({
                "provider": provider, "region": region, "instance_type": itype, "market": market,
                "usd_per_hour": price, "vcpus": row["vcpus"], "memory_gib": row["memory_gib"],
                "gpu_model": row["gpu_model"], "gpu_count": str(gpu_count), "family": family,
                "source": source, "as_of": as_of, "note": "; ".join(notes),
            })
    # What we write must load: the same parser the product uses, with its checks.
    prices = read_prices_csv(_csv_text(out.snapshot, CSV_FIELDS), "snapshot.csv")
    read_zone_csv(_csv_text(out.zones, ZONE_FIELDS), "aws_spot_zones.csv", {p.key: p for p in prices})
    return out


def _csv_text(rows: list[dict[str, str]], fields: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def report(result: Build) -> str:
    lines = [f"snapshot.csv: {plural(len(result.snapshot), 'row')}; "
             f"aws_spot_zones.csv: {plural(len(result.zones), 'row')}"]
    counts = Counter((r["provider"], r["market"]) for r in result.snapshot)
    lines += [f"  {p} {m}: {n}" for (p, m), n in sorted(counts.items())]
    families = Counter(r["family"] for r in result.snapshot)
    lines.append("  families: " + ", ".join(f"{f} {n}" for f, n in sorted(families.items())))
    lines.append(f"omitted ({len(result.omitted)}):")
    lines += [f"  {o}" for o in result.omitted] or ["  none"]
    lines.append("caveats applied:")
    lines += [f"  {c}: {plural(n, 'row')}" for c, n in sorted(result.caveats.items())]
    lines.append(f"warnings ({len(result.warnings)}):")
    lines += [f"  {w}" for w in result.warnings] or ["  none"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m costtune.prices.build_snapshot",
                                     description="Build costtune's bundled price snapshot.")
    parser.add_argument("shared", type=Path, help="directory with prices-reference.csv and friends")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent, help="where to write the CSVs")
    parser.add_argument("--check", action="store_true",
                        help="compare instead of writing; exit 1 on a difference")
    args = parser.parse_args(argv)
    result = build(args.shared)
    files = {"snapshot.csv": _csv_text(result.snapshot, CSV_FIELDS),
             "aws_spot_zones.csv": _csv_text(result.zones, ZONE_FIELDS)}
    print(report(result))
    stale = []
    for name, text in files.items():
        target = args.out / name
        if args.check:
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target}")
    if stale:
        print(f"out of date: {', '.join(stale)}; rerun without --check", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
