"""The leaderboard: every trial with its parameters, state, metrics and cost.

Rows are plain dicts so the same data feeds the terminal table, JSON and CSV; money goes out as an
exact decimal string (``cost_usd``) beside the integer micro-dollars (``cost_micros``).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from rich.table import Table

from costtune.history import FrozenTrial, History, Mode, TrialState
from costtune.money import format_usd, micros_to_usd

_STATE_ORDER = {TrialState.RUNNING: 1, TrialState.QUEUED: 2, TrialState.FAILED: 3}


def ranked(history: History) -> list[FrozenTrial]:
    """Trials with a value best first (ties: cheaper first), then running, queued, failed."""
    sign = 1 if history.mode == Mode.MIN else -1
    scored = sorted(history.completed(), key=lambda t: (sign * t.value, t.cost_micros, t.number))  # type: ignore[operator]
    rest = sorted((t for t in history.trials if t not in scored),
                  key=lambda t: (_STATE_ORDER.get(t.state, 0), t.number))
    return scored + rest


def rows(history: History) -> list[dict[str, Any]]:
    out = []
    scored = {t.number for t in history.completed()}
    for rank, trial in enumerate(ranked(history), start=1):
        duration = None
        if trial.started_at and trial.finished_at:
            duration = round((trial.finished_at - trial.started_at).total_seconds(), 3)
        out.append({
            "rank": rank if trial.number in scored else None,
            "trial": trial.number,
            "state": str(trial.state),
            "value": trial.value,
            "params": trial.params,
            "metrics": trial.metrics,
            "cost_usd": str(micros_to_usd(trial.cost_micros)),
            "cost_micros": trial.cost_micros,
            "duration_s": duration,
            "attempts": trial.attempts,
            "last_step": trial.last_step,
            "source": trial.source,
            "output_dir": trial.output_dir,
            "error": (trial.error or "").splitlines()[0] if trial.error else None,
        })
    return out


def to_json(history: History, study: str) -> str:
    best = history.best()
    doc = {"study": study, "metric": history.metric, "mode": str(history.mode),
           "best_trial": best.number if best else None, "trials": rows(history)}
    return json.dumps(doc, indent=2, default=str)


def to_csv(history: History) -> str:
    data = rows(history)
    params = sorted({k for r in data for k in r["params"]})
    metrics = sorted({k for r in data for k in r["metrics"]})
    head = ["rank", "trial", "state", "value", "cost_usd", "cost_micros", "duration_s", "attempts", "last_step"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(head + [f"param.{p}" for p in params] + [f"metric.{m}" for m in metrics]
                    + ["output_dir", "error"])
    for r in data:
        writer.writerow([r[h] for h in head] + [r["params"].get(p) for p in params]
                        + [r["metrics"].get(m) for m in metrics] + [r["output_dir"], r["error"]])
    return buf.getvalue()


def to_table(history: History, title: str, limit: int | None = None) -> Table:
    data = rows(history)
    if limit is not None:
        data = data[:limit]
    params = list(dict.fromkeys(k for r in data for k in r["params"]))
    table = Table(title=title, title_justify="left")
    for name, justify in (("#", "right"), ("trial", "right"), ("state", "left"),
                          (history.metric, "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for p in params:
        table.add_column(p, justify="right", overflow="fold")
    for name in ("cost", "time", "tries"):
        table.add_column(name, justify="right")
    for r in data:
        table.add_row(
            str(r["rank"] or "-"), str(r["trial"]), _state_style(r["state"]),
            "-" if r["value"] is None else f"{r['value']:.6g}",
            *(_fmt(r["params"].get(p)) for p in params),
            format_usd(r["cost_micros"]),
            "-" if r["duration_s"] is None else f"{r['duration_s']:.1f}s",
            str(r["attempts"]),
        )
    return table


def _state_style(state: str) -> str:
    color = {"complete": "green", "stopped": "yellow", "failed": "red", "running": "cyan"}.get(state)
    return f"[{color}]{state}[/]" if color else state


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)
