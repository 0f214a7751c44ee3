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
    from rich.table import Table

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
    table = Table(title=f"audit trail in {store.display_url}", title_justify="left")
    for col in ("at", "action", "study", "change", "by"):
        table.add_column(col)
    for r in rows:
        d = r["detail"]
        if r["action"] == "trials.set":
            change = f"budget.trials {d.get('from')} -> {d.get('to')}"
        elif r["action"] == "cap.set":
            change = f"{d.get('from', _usd(d.get('from_micros')))} -> {d.get('to', _usd(d.get('to_micros')))}"
        else:
            change = json.dumps(d)
        if d.get("reason"):
            change += f" ({d['reason']})"
        table.add_row(r["at"][:19], r["action"], r["study"] or "-", change, r["actor"])
    out_console.print(table)


def _usd(micros: int | None) -> str:
    from costtune.money import format_usd

    return "no cap" if micros is None else format_usd(micros)
