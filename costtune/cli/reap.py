"""``costtune reap``: terminate tagged cloud instances that no live attempt in the store owns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from costtune.cli.common import db_option, handled, open_store, out_console
from costtune.errors import InputError, SpecError, shown


def _duration(_ctx: click.Context, _param: click.Parameter, value: str) -> float:
    from costtune.spec.fields import duration

    try:
        return duration(value, "--older-than")
    except SpecError as exc:
        raise click.BadParameter(exc.reason, param_hint="--older-than") from None


@click.command()
@db_option
@click.option("--provider", type=click.Choice(["aws"]), default="aws", show_default=True, help="The cloud to search.")
@click.option("--regions", "--region", "regions", multiple=True,
              help="Regions to search (repeatable or comma-separated; default: the SDK's configured region).")
@click.option("--older-than", default="10m", show_default=True, callback=_duration,
              help="Grace window: younger instances are spared (seconds, or 90s, 10m, 6h, 2d).")
@click.option("--dry-run", is_flag=True, help="List what would be terminated; terminate nothing.")
@handled
def reap(db: str | None, provider: str, regions: tuple[str, ...], older_than: float, dry_run: bool) -> None:
    """Terminate instances carrying costtune's tags that no live attempt in the store owns.

    Only instances this store's sweeps launched are considered (their store tag); instances younger
    than --older-than are spared, since a listing may not show their attempt yet. Prints each instance
    and the dollars per hour that terminating the orphans stops.
    """
    from costtune.money import format_usd, format_usd_column
    from costtune.providers.aws import AwsProvider
    from costtune.providers.aws.clients import Clients
    from costtune.reports.fmt import format_duration
    from costtune.reports.table import Column, FittedTable
    from costtune.runner.reap import reap as terminate
    from costtune.runner.reap import survey
    from costtune.spec.aws import AwsResources, is_region_name
    from costtune.store.reads import open_attempt_keys, store_tag

    names = [r.strip() for item in regions for r in item.split(",") if r.strip()]
    bad = [r for r in names if not is_region_name(r)]
    if bad:  # before any store or AWS call: a typo is not a credentials problem
        raise InputError(f"--regions: must be AWS region names such as us-east-1, got {shown(bad[0])}")
    store = open_store(db)
    clients = Clients()
    if not names:
        default = clients.default_region()
        if not default:
            raise InputError("--regions: no region given and none configured (AWS_DEFAULT_REGION, ~/.aws/config)")
        names = [default]
    # the reaper only lists and terminates: no image is launched
    aws = AwsProvider(AwsResources(regions=tuple(dict.fromkeys(names)), image=""), session=clients.session)
    found = survey(aws, store_tag=store_tag(store), open_keys=lambda keys: open_attempt_keys(store, keys),
                   older_than_s=older_than, now=datetime.now(UTC), rate=_rate())
    done = [] if dry_run else terminate(aws, found)
    words = {"orphan": "would terminate" if dry_run else "terminated", "young": "spared: younger than --older-than",
             "owned": "spared: a live attempt owns it", "other-store": "left alone: another store's"}
    handles = [f.handle for f in found]
    rates = format_usd_column([f.usd_per_hour_micros for f in found], missing="unknown")
    out_console.print(FittedTable([
        Column("instance", [h.instance_id for h in handles], keep=0, justify="left"),
        Column("region", [h.region for h in handles], keep=3, justify="left"),
        Column("type", [h.instance_type for h in handles], keep=4, justify="left"),
        Column("market", [h.market for h in handles], keep=6, justify="left"),
        Column("study", [h.tags.get("study", "") for h in handles], keep=2, justify="left"),
        Column("trial", [h.tags.get("trial", "") for h in handles], keep=7),
        Column("age", [format_duration(f.age_s) for f in found], keep=5),
        Column("$/h", rates, keep=8),
        Column("action", [words[f.verdict] for f in found], keep=1, justify="left", wrap=16),
    ], title=f"{len(found)} costtune instances in {', '.join(names)}"))
    orphans = [f for f in found if f.reaped]
    hourly = sum(f.usd_per_hour_micros or 0 for f in orphans)
    unknown = sum(f.usd_per_hour_micros is None for f in orphans)
    verb = "would terminate" if dry_run else "terminated"
    line = f"{verb} {len(orphans) if dry_run else len(done)} instances: {format_usd(hourly)}/h stopped"
    out_console.print(line + (f" (+ {unknown} of unknown price)" if unknown else ""), highlight=False)


def _rate() -> Any:
    from costtune.prices import PriceNotFound
    from costtune.prices.live import current_table

    table, _ = current_table()

    def rate(handle: Any) -> int | None:
        try:
            return table.rate("aws", handle.region, handle.instance_type, handle.market,
                              zone=handle.zone).usd_per_hour_micros
        except PriceNotFound:
            try:
                return table.rate("aws", handle.region, handle.instance_type, handle.market).usd_per_hour_micros
            except PriceNotFound:
                return None

    return rate
