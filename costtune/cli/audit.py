"""`costtune audit`: the record of deliberate changes, such as a study's dollar cap."""

from __future__ import annotations

import json

import click

from costtune.cli.common import db_option, handled, open_store, out_console


@click.command()
@click.argument("study", required=False)
@db_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@handled
def audit(study: str | None, db: str | None, fmt: str) -> None:
    """Who changed what and when, oldest first (only STUDY's records when given).

    Each study's cap history is here: the cap it was created with and every change
    (`costtune run FILE --change-cap`, `study.set_cap(...)`), with the old and new value; and every
    raise of its budget.trials (`costtune enqueue STUDY k=v --raise-trials N`).
    """
    from costtune.reports.table import Column, FittedTable

    store = open_store(db)
    study_id = store.get_study(study).id if study else None
    names = {info.id: info.name for info in store.list_studies()}
    entries = store.audit_log(study_id=study_id)
    rows = [{"at": e.at.isoformat(), "actor": e.actor, "action": e.action,
             "study": names.get(e.study_id, e.detail.get("study")) if e.study_id is not None else None,
             "detail": e.detail} for e in entries]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    changes = []
    for r in rows:
        d = r["detail"]
        if r["action"] == "trials.set":
            change = f"budget.trials {d.get('from')} -> {d.get('to')}"
        elif r["action"] == "cap.set":
            change = f"{_usd(d.get('from_micros'))} -> {_usd(d.get('to_micros'))}"
        else:
            change = json.dumps(d)
        changes.append(change + (f" ({d['reason']})" if d.get("reason") else ""))
    out_console.print(FittedTable([
        Column("at", [r["at"][:19].replace("T", " ") for r in rows], keep=2, justify="left", wrap=10),
        Column("action", [r["action"] for r in rows], keep=1, justify="left"),
        Column("study", [r["study"] or "-" for r in rows], keep=3, justify="left"),
        Column("change", changes, keep=0, justify="left", wrap=16),
        Column("by", [r["actor"] for r in rows], keep=4, justify="left"),
    ], title=f"audit trail in {store.display_url}", always=1))


def _usd(micros: int | None) -> str:
    from costtune.money import format_usd

    return "no cap" if micros is None else format_usd(micros)
