"""``costtune prices``: list and filter the price catalog (bundled snapshot plus an override file)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import click

from costtune.cli.common import CommandGroup, FiniteFloatRange, count, handled
from costtune.prices.catalog import PriceTable
from costtune.prices.price import FAMILIES, MARKETS, PROVIDERS
from costtune.words import plural, shown


@click.group("prices", cls=CommandGroup, invoke_without_command=True)
@click.option("--provider", "providers", multiple=True, type=click.Choice(PROVIDERS, case_sensitive=False),
              help="Provider (repeatable).")
@click.option("--region", "regions", multiple=True, help="Region (repeatable).")
@click.option("--type", "instance_types", multiple=True, help="Instance type (repeatable).")
@click.option("--market", "markets", multiple=True, type=click.Choice(sorted(MARKETS)), help="Market (repeatable).")
@click.option("--family", "families", multiple=True, type=click.Choice(sorted(FAMILIES)), help="Family (repeatable).")
@click.option("--min-vcpus", type=count(0), help="At least this many vCPUs.")
@click.option("--min-memory", "min_memory_gib", type=FiniteFloatRange(min=0), help="At least this many GiB of memory.")
@click.option("--gpu", "gpu_model", help="GPU model, e.g. T4, A10G, A100.")
@click.option("--overrides", type=click.Path(exists=True, dir_okay=False),
              help="A price override file (negotiated rates, discounts, on-prem rows).")
@click.option("--limit", type=count(), help="Only the N cheapest rows.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.pass_context
def prices(ctx: click.Context, providers: tuple[str, ...], regions: tuple[str, ...], instance_types: tuple[str, ...],
           markets: tuple[str, ...], families: tuple[str, ...], min_vcpus: int | None,
           min_memory_gib: float | None, gpu_model: str | None, overrides: str | None, limit: int | None,
           fmt: str) -> None:
    """Hourly prices, cheapest first, each with its source and as-of date.

    Fresh live prices (`costtune prices refresh`) replace the bundled snapshot's.
    """
    if ctx.invoked_subcommand is not None:
        return
    from costtune.prices.live import current_table

    table, _ = current_table()
    if overrides:
        table = table.with_overrides(overrides)
    rows = table.offers(providers=providers or None, regions=regions or None, instance_types=instance_types or None,
                        markets=markets or None, family=families or None, min_vcpus=min_vcpus,
                        min_memory_gib=min_memory_gib, gpu_model=gpu_model)
    if gpu_model is not None and not rows:
        _no_such_gpu(table, gpu_model)
    if not rows:  # a name no price has at all is a typo, not an empty result
        _unknown_names(table, "--provider", providers, "provider")
        _unknown_names(table, "--region", regions, "region")
        _unknown_names(table, "--type", instance_types, "instance_type")
    total = len(rows)
    rows = rows[:limit] if limit else rows
    records = [{"provider": p.provider, "region": p.region, "instance_type": p.instance_type, "market": p.market,
                "usd_per_hour": str(p.usd_per_hour), "usd_per_hour_micros": p.usd_per_hour_micros,
                "vcpus": p.vcpus, "memory_gib": p.memory_gib, "gpu_model": p.gpu_model, "gpu_count": p.gpu_count,
                "family": p.family, "source": p.source, "as_of": p.as_of.isoformat(), "note": p.note}
               for p in rows]
    if fmt == "json":
        click.echo(json.dumps(records, indent=2))
        return
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(records[0]) if records else ["provider"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        click.echo(buf.getvalue(), nl=False)
        return
    from costtune.cli.common import out_console
    from costtune.money import format_usd_column
    from costtune.reports.table import Column, FittedTable

    def text(key: str) -> list[str]:
        return [str(r[key] or "") for r in records]

    if not records:  # the filters match nothing: say so, not an empty table
        out_console.print("no price matches these filters (leave some out, or see costtune prices --help)",
                          highlight=False)
        return
    out_console.print(FittedTable([
        Column("price", [f"{p}/h" for p in format_usd_column([r["usd_per_hour_micros"] for r in records])], keep=0),
        Column("provider", text("provider"), keep=2, justify="left"),
        Column("region", text("region"), keep=3, justify="left"),
        Column("type", text("instance_type"), keep=1, justify="left"),
        Column("market", text("market"), keep=4, justify="left"),
        Column("vCPU", text("vcpus"), keep=6),
        Column("GiB", [f"{r['memory_gib']:g}" if r["memory_gib"] else "" for r in records], keep=7),
        Column("GPU", [f"{r['gpu_count']}x {r['gpu_model']}" if r["gpu_model"] else "" for r in records], keep=5,
               justify="left"),
        Column("as of", text("as_of"), keep=8, justify="left"),
        Column("note", text("note"), keep=9, justify="left", wrap=24),
    ], title=f"{plural(len(records), 'price')}, cheapest first", hint="widen the terminal, or use --format json|csv",
        note=shown(len(records), total, "leave out --limit for all")))


def _no_such_gpu(table: PriceTable, wanted: str) -> None:
    """Raise ``InputError`` naming ``--gpu`` and the known models when no row of the table has GPU model ``wanted``
    (with the other filters it may match nothing for other reasons: then the caller says so)."""
    from costtune.errors import InputError

    known = sorted({p.gpu_model.split(" (")[0] for p in table.rows() if p.gpu_model})
    if not table.offers(gpu_model=wanted):
        raise InputError(f"--gpu: no price has GPU model {wanted!r}; known GPU models: {', '.join(known) or 'none'}")


def _unknown_names(table: PriceTable, flag: str, wanted: tuple[str, ...], field: str) -> None:
    """Raise ``InputError`` naming ``flag`` when one of ``wanted`` is in no row of the table at all (``field`` of a
    price: provider, region, instance_type), with the names it knows (at most 12 shown)."""
    from costtune.errors import InputError

    known = sorted({str(getattr(p, field)) for p in table.rows()})
    missing = [w for w in wanted if w not in known]
    if missing:
        import difflib

        close = difflib.get_close_matches(missing[0], known, n=3)
        shown = ", ".join(known[:12]) + (f", ... ({len(known)} in all)" if len(known) > 12 else "")
        hint = f"did you mean {' or '.join(close)}?" if close else f"known: {shown or 'none'}"
        raise InputError(f"{flag}: no price has {field.replace('_', ' ')} {missing[0]!r}; {hint}")


@prices.command("refresh")
@click.option("--provider", type=click.Choice(["aws"]), required=True, help="The cloud to ask.")
@click.option("--regions", "--region", "regions", multiple=True,
              help="Regions (repeatable or comma-separated; default: the snapshot's regions of that provider).")
@click.option("--type", "instance_types", multiple=True,
              help="Instance types (repeatable or comma-separated; default: the snapshot's of that provider).")
@handled
def refresh(provider: str, regions: tuple[str, ...], instance_types: tuple[str, ...]) -> None:
    """Fetch current on-demand and spot prices into the live price cache under COSTTUNE_HOME.

    AWS: on-demand from the Price List Query API, spot from the spot price history (the latest per
    zone). The cache's rows of these regions are replaced at once; a row is fresh for 24 hours.
    """
    from costtune.providers.aws.pricing import AwsPriceSource

    refresh_prices(AwsPriceSource(), provider, _split(regions), _split(instance_types))


def refresh_prices(source: Any, provider: str, regions: list[str], instance_types: list[str]) -> None:
    """Fetch from ``source`` (a PriceSource) and swap the rows into the live cache; prints what it did.

    Raises CosttuneError when nothing came back (the cache is left as it was).
    """
    from datetime import UTC, datetime

    from costtune.errors import CosttuneError
    from costtune.prices.live import LIVE_TTL_S, save_live

    bundled = PriceTable.bundled().offers(providers=provider)
    regions = regions or sorted({p.region for p in bundled})
    instance_types = instance_types or sorted({p.instance_type for p in bundled})
    fetched_at = datetime.now(UTC)
    rows = source.fetch(regions, instance_types)
    if not rows:
        raise CosttuneError(f"no {provider} prices came back for {', '.join(regions)}; the cache is unchanged")
    path = save_live(rows, provider=provider, regions=regions, fetched_at=fetched_at)
    for region in regions:
        mine = [p for p in rows if p.region == region]
        counts = {m: sum(p.market == m and p.zone is None for p in mine) for m in ("on-demand", "spot")}
        zones = len({p.zone for p in mine if p.zone})
        click.echo(f"{provider} {region}: {counts['on-demand']} on-demand, {counts['spot']} spot prices "
                   f"({zones} zones)")
        missing = sorted(set(instance_types) - {p.instance_type for p in mine})
        if missing:
            click.echo(f"  no price for: {', '.join(missing)}")
    click.echo(f"saved to {path} at {fetched_at.isoformat(timespec='seconds')}; fresh for {LIVE_TTL_S // 3600} h")


def _split(values: tuple[str, ...]) -> list[str]:
    return list(dict.fromkeys(v.strip() for item in values for v in item.split(",") if v.strip()))
