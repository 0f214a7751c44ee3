"""`costtune trials`: every trial in creation order with its attempts, or one trial in detail.

Rows are plain dicts (the JSON output); the terminal views are fitted tables. Each attempt carries
the command line it really ran (``argv``, placeholders filled in), its placement, billable time
(simulated instance time on a virtual clock), cost and how it ended.
"""

from __future__ import annotations

import shlex
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from rich.console import RenderableType
from rich.text import Text

from costtune.history import History
from costtune.money import format_usd, format_usd_column, micros_to_usd
from costtune.reports.fmt import format_duration, format_number, format_params, shown_exit_code, shown_state
from costtune.reports.placed import MARK_NOTE, marked, moved_to
from costtune.reports.table import Column, FittedTable
from costtune.store.records import AttemptInfo
from costtune.words import BUDGET_STOP


def trial_rows(history: History, attempts: Mapping[int, Sequence[AttemptInfo]],
               gone: Collection[int] = ()) -> list[dict[str, Any]]:
    """One dict per trial (creation order) with its attempts; money as exact text and micro-dollars.
    ``gone``: numbers of running trials whose controller is gone (``controller_gone`` true)."""
    rows = []
    for t in history.trials:
        rows.append({
            "trial": t.number, "state": str(t.state), "controller_gone": t.number in gone, "source": t.source,
            "params": t.params,
            "value": t.value, "metrics": t.metrics, "last_step": t.last_step,
            "cost_usd": str(micros_to_usd(t.cost_micros)), "cost_micros": t.cost_micros,
            "output_dir": t.output_dir, "error": t.error,
            "verdicts": [{"rung_usd": str(micros_to_usd(level)), "rung_micros": level, "value": value,
                          "promoted": promoted, "reason": dict(t.verdict_reasons).get(level)}
                         for level, value, promoted in t.verdicts],
            "warnings": list(t.warnings), "warning_count": t.warning_count,
            "attempts": [{"number": a.number, "provider": a.provider, "exit_reason": a.exit_reason,
                          "exit_code": a.exit_code, "billable_ms": a.billable_ms,
                          "charged_ms": a.charged_ms,
                          "cost_micros": a.cost_micros,
                          "cost_usd": str(micros_to_usd(a.cost_micros)), "instance_type": a.instance_type,
                          "market": a.market, "region": a.region, "rate_micros_per_hour": a.rate_micros_per_hour,
                          "start_step": a.start_step, "waste_micros": a.waste_micros,
                          "started_at": a.started_at.isoformat(),
                          "ended_at": a.ended_at.isoformat() if a.ended_at else None,
                          "argv": None if a.argv is None else list(a.argv), "note": a.note}
                         for a in attempts.get(t.number, [])],
        })
    return rows


def _state(state: str) -> Text:
    color = {"complete": "green", "stopped": "yellow", "failed": "red", "running": "cyan"}.get(state, "magenta")
    return Text(state, style=color or "")


def trials_table(rows: Sequence[Mapping[str, Any]], metric: str, *, title: str) -> FittedTable:
    """Trial, state, value, cost, how each attempt ended, one column per parameter, the error's first line."""
    names = list(dict.fromkeys(k for r in rows for k in r["params"]))
    last = [r["attempts"][-1] if r["attempts"] else {"instance_type": None, "market": None} for r in rows]
    moved = [moved_to(r["params"], a["instance_type"], a["market"]) for r, a in zip(rows, last, strict=True)]
    params = [marked(r["params"], m) for r, m in zip(rows, moved, strict=True)]  # where it really ran, marked
    return FittedTable([
        Column("trial", [str(r["trial"]) for r in rows], keep=0),
        Column("state", [_state(shown_state(r)) for r in rows], keep=2, justify="left"),
        Column("source", [r["source"] for r in rows], keep=30, justify="left"),
        Column(metric, [format_number(r["value"]) for r in rows], keep=1),
        Column("last step", [format_number(r["last_step"]) for r in rows], keep=21),
        Column("cost", format_usd_column([r["cost_micros"] for r in rows]), keep=3),
        Column("attempts", [",".join(str(a["exit_reason"] or "running") for a in r["attempts"]) or "-"
                            for r in rows], keep=20, justify="left"),
        *(Column(n, [format_number(p.get(n), 4) for p in params], keep=10 + i) for i, n in enumerate(names)),
        Column("error", [(r["error"] or "").splitlines()[0] if r["error"] else "" for r in rows], keep=5,
               justify="left", wrap=16, style="red"),
    ], title=title, note=MARK_NOTE if any(moved) else None)


def trial_detail(row: Mapping[str, Any], metric: str, *, title: str,
                 scheduler: str | None = None) -> list[RenderableType]:
    """One trial: what it was, what it reached, each attempt (with the command it ran), the warnings
    stored about its output, its full error. Its verdicts are labelled by the ``scheduler`` type that made
    them: ``checks`` (the spend a learning-curve check judged it at) for curve, else ``rungs``."""
    facts = [("state", shown_state(row)), ("source", row["source"]), ("params", format_params(row["params"]) or "-"),
             (metric, format_number(row["value"])), ("last step", format_number(row["last_step"])),
             ("metrics", format_params(row["metrics"]) or "-"), ("cost", format_usd(row["cost_micros"])),
             ("output", row["output_dir"] or "-")]
    att = row["attempts"]
    if row["state"] == "stopped" and att and att[-1]["exit_reason"] == "budget":  # the study's cap stopped it
        said_why = [p for p in _note_parts(att[-1]) if p.startswith(BUDGET_STOP)]
        facts.append(("stopped", said_why[0].removeprefix("stopped ") if said_why else "by the study's budget.usd cap"))
    verdicts = row.get("verdicts") or []
    label = "checks" if scheduler == "curve" else "rungs"
    said = [f"{format_usd(v['rung_micros'])} {format_number(v['value'])} "
            f"{_verdict_word(v, row, last=i == len(verdicts) - 1)}" for i, v in enumerate(verdicts)]
    verdicts = [{**v, "reason": _verdict_reason(v)} for v in verdicts]
    reasoned = any(v.get("reason") for v in verdicts)
    if verdicts and not reasoned:  # stored by an older costtune: no reasons
        facts.append((label, ", ".join(said)))
    out: list[RenderableType] = [Text(title, style="bold")]
    out += [Text(f"  {k}: {v}") for k, v in facts]
    if reasoned:  # one line each, with why it went that way
        heads = [f"{label}:", *([" " * (len(label) + 1)] * (len(said) - 1))]  # the later ones lined up under it
        out += [Text(f"  {head} {line}" + (f": {v['reason']}" if v.get("reason") else ""))
                for head, line, v in zip(heads, said, verdicts, strict=True)]
    out.append(FittedTable([
        Column("attempt", [str(a["number"]) for a in att], keep=0),
        Column("provider", [a["provider"] for a in att], keep=5, justify="left"),
        Column("instance", [a["instance_type"] or "-" for a in att], keep=4, justify="left"),
        Column("market", [a["market"] or "-" for a in att], keep=6, justify="left"),
        Column("$/h", format_usd_column([a["rate_micros_per_hour"] for a in att]), keep=7),
        Column("from step", [str(a["start_step"]) for a in att], keep=8),
        Column("time billed", [format_duration(a["charged_ms"] / 1000) for a in att], keep=2),
        Column("cost", format_usd_column([a["cost_micros"] for a in att]), keep=1),
        Column("ended", [a["exit_reason"] or "running" for a in att], keep=3, justify="left"),
        Column("exit", [format_number(shown_exit_code(a["exit_reason"], a["exit_code"])) for a in att], keep=9),
    ], title="attempts"))
    for a in att:
        if a["argv"] is not None:
            out.append(Text(f"attempt {a['number']} ran: {shlex.join(a['argv'])}"))
    for a in att:
        note = "; ".join(p for p in _note_parts(a) if not p.startswith(BUDGET_STOP))  # that one: "stopped:" above
        if note:
            out.append(Text(f"attempt {a['number']}: {note}"))
    if row.get("warnings"):
        count = row.get("warning_count") or len(row["warnings"])
        shown = f" (the first {len(row['warnings'])} of {count})" if count > len(row["warnings"]) else ""
        out.append(Text(f"warnings about its output{shown}:", style="yellow"))
        out.extend(Text(f"  {w}") for w in row["warnings"])
    if row["error"]:
        out.append(Text("error:", style="red"))
        out.append(Text(row["error"]))
    return out


def _verdict_word(verdict: Mapping[str, Any], row: Mapping[str, Any], *, last: bool) -> str:
    """``promoted``, ``stopped``, or ``complete`` for the last verdict of a trial that ran its whole ladder
    (judged at max_usd: it got all the money the sweep gives a trial, nothing stopped it)."""
    if verdict["promoted"]:
        return "promoted"
    return "complete" if last and row["state"] == "complete" else "stopped"


def _verdict_reason(verdict: Mapping[str, Any]) -> str | None:
    """Its stored reason; one stored by an older costtune at the top rung ("reached max_usd") in today's words."""
    reason = verdict.get("reason")
    old = "reached max_usd"
    if reason is not None and reason.startswith(old):
        reason = f"ran to max_usd ({format_usd(verdict['rung_micros'])})" + reason.removeprefix(old)
    return reason


def _note_parts(attempt: Mapping[str, Any]) -> list[str]:
    """An attempt's note in its "; "-joined parts (placement, recovery, a budget stop...)."""
    return [p for p in (attempt["note"] or "").split("; ") if p]
