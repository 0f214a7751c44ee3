"""`costtune audit`: the record of deliberate changes, such as a study's dollar cap."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import click

from costtune.cli.common import db_option, handled, open_store, out_console


@click.command()
@click.argument("study", required=False)
@db_option
@click.option("--since", "since", default=None, metavar="WHEN",
              help="Only records from WHEN on: an ISO date or date-time (2026-11-30, 2026-11-30T14:00+01:00; UTC "
                   "when no offset), or a time back from now (30m, 12h, 7d).")
@click.option("--action", "action", default=None, metavar="PREFIX",
              help="Only actions starting with PREFIX (policy, policy.deny, cap.set, ...).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@handled
def audit(study: str | None, db: str | None, since: str | None, action: str | None, fmt: str) -> None:
    """Who changed what and when, oldest first (only STUDY's records when given).

    Each study's cap history is here: the cap it was created with and every change
    (`costtune run FILE --change-cap`, `study.set_cap(...)`), with the old and new value; and every
    raise of its budget.trials (`costtune enqueue STUDY k=v --raise-trials N`). Spend policies add
    their applies and removals, every launch's verdict (policy.allow/amend/deny), alerts and webhook
    deliveries.
    """
    from costtune.money import format_cap
    from costtune.reports.table import Column, FittedTable

    store = open_store(db)
    study_id = store.get_study(study).id if study else None
    names = {info.id: info.name for info in store.list_studies()}
    entries = store.audit_log(study_id=study_id)
    if since is not None:
        start = _since(since)
        entries = [e for e in entries if (e.at if e.at.tzinfo else e.at.replace(tzinfo=UTC)) >= start]
    if action is not None:
        entries = [e for e in entries if e.action.startswith(action)]
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
            change = f"budget.trials {_shown(d.get('from'))} -> {_shown(d.get('to'))}"
        elif r["action"] == "cap.set":
            change = f"{format_cap(d.get('from_micros'))} -> {format_cap(d.get('to_micros'))}"
        elif r["action"] in ("policy.apply", "policy.remove"):
            change = f"policy {_shown(d.get('policy'))} version {_shown(d.get('version'))}"
        elif r["action"] in ("policy.allow", "policy.amend", "policy.deny"):  # a launch's verdict
            what = d.get("verdict") if d.get("reason") else "allowed by " + ", ".join(d.get("policies", []))
            change = f"trial {_shown(d.get('trial'))} attempt {_shown(d.get('attempt'))}: {what}"  # the reason follows
        elif r["action"] == "policy.alert":
            change = str(d.get("text", d.get("threshold")))
        elif r["action"] == "policy.webhook":
            outcome = "delivered" if d.get("ok") else f"failed: {d.get('error')}"
            change = f"{_shown(d.get('url'))}: {outcome} ({_shown(d.get('attempts'))} tries)"
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


def _shown(value: object) -> object:
    """A detail as a change line says it: ``none`` for a value not set (``budget.trials none -> 60``), not ``None``."""
    return "none" if value is None else value


def _since(text: str) -> datetime:
    """``--since``: an ISO date or date-time (UTC without an offset), or ``N`` + m/h/d back from now."""
    import re

    from costtune.errors import InputError, shown

    back = re.fullmatch(r"(\d{1,6})([mhd])", text.strip())
    if back:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[back.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(back.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"--since: must be an ISO date or date-time (2026-11-30, 2026-11-30T14:00) or a time "
                         f"back from now (30m, 12h, 7d), got {shown(text)}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
