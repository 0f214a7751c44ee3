"""``costtune models ...``: the versions scheduled runs published (list, show, path, promote)."""

from __future__ import annotations

import json
from typing import Any

import click

from costtune.cli.common import CommandGroup, db_option, handled, open_store, out_console


@click.group("models", cls=CommandGroup)
@db_option
@click.pass_context
def models(ctx: click.Context, db: str | None) -> None:
    """Model versions: each scheduled run's best trial, with metric, cost and lineage."""
    ctx.meta["costtune.group_db"] = db  # `costtune models --db URL CMD` as well as `CMD --db URL`


@models.command("list")
@click.argument("name", required=False)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@db_option
@handled
def list_(name: str | None, fmt: str, as_json: bool, db: str | None) -> None:
    """Every version (of model NAME when given); * marks the promoted one."""
    from costtune.money import format_usd_column
    from costtune.reports.table import Column, FittedTable

    store = open_store(_group_db(db))
    versions = store.model_versions(name)
    if name is not None and not versions:
        store.model_version(name)  # the error naming the models there are
    if as_json or fmt == "json":
        click.echo(json.dumps([_record(v) for v in versions], indent=2, default=str))
        return
    costs = format_usd_column([v.run_cost_micros for v in versions] + [v.reach_cost_micros for v in versions])
    n = len(versions)
    out_console.print(FittedTable([
        Column("model", [v.model for v in versions], keep=0, justify="left"),
        Column("version", [f"{v.version}{' *' if v.promoted else ''}" for v in versions], keep=0),
        Column("value", [f"{v.value:.6g}" for v in versions], keep=1),
        Column("run cost", costs[:n], keep=2),
        Column("cost to reach", costs[n:], keep=4),
        Column("metric", [v.metric for v in versions], keep=5, justify="left"),
        Column("study", [v.study_name for v in versions], keep=3, justify="left"),
        Column("trial", [str(v.trial_number) for v in versions], keep=6),
        Column("replaced", ["-" if v.replaced_version is None else str(v.replaced_version) for v in versions], keep=7),
    ], hint="widen the terminal, or use --format json for every field", always=2))
    if not versions:
        out_console.print("no model versions yet: a scheduled run registers one when it ends", highlight=False)


def _record(v: Any) -> dict[str, Any]:
    from costtune.schedules.records import version_record

    return version_record(v)


@models.command("show")
@click.argument("ref", metavar="NAME[:VERSION]")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@db_option
@handled
def show(ref: str, fmt: str, as_json: bool, db: str | None) -> None:
    """One version (the promoted one when no VERSION is given): params, metric, cost, lineage."""
    from rich.text import Text

    store = open_store(_group_db(db))
    record = _record(store.model_version(ref))
    if as_json or fmt == "json":
        click.echo(json.dumps(record, indent=2, default=str))
        return
    for key, value in record.items():
        if key.endswith("_micros"):
            continue  # the *_usd field says it for people
        shown = json.dumps(value, default=str) if isinstance(value, dict | list) else value
        out_console.print(Text(f"{key}: {'-' if shown is None else shown}"), highlight=False)


@models.command("path")
@click.argument("ref", metavar="NAME[:VERSION]")
@db_option
@handled
def path(ref: str, db: str | None) -> None:
    """Print the directory holding the version's artifact (the promoted version when no VERSION)."""
    store = open_store(_group_db(db))
    click.echo(store.model_version(ref).artifact_path)


@models.command("promote")
@click.argument("ref", metavar="NAME:VERSION")
@click.option("--reason", help="Why (kept in the audit trail).")
@db_option
@handled
def promote(ref: str, reason: str | None, db: str | None) -> None:
    """Make NAME:VERSION the promoted version (recorded in `costtune audit`)."""
    from costtune.errors import InputError

    if ":" not in ref:
        raise InputError(f"NAME:VERSION: give the version to promote, e.g. {ref}:3")
    store = open_store(_group_db(db))
    version, replaced = store.promote_version(ref, reason=reason)
    was = "" if replaced is None else f" (replacing version {replaced})"
    out_console.print(f"model {version.ref} promoted{was}", highlight=False)


def _group_db(db: str | None) -> str | None:
    """The command's --db, else the group's (``costtune models --db URL ...``)."""
    ctx = click.get_current_context(silent=True)
    return db if db is not None or ctx is None else ctx.meta.get("costtune.group_db")
