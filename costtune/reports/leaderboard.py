"""The leaderboard: every trial with its parameters, state, metrics and cost.

Rows are plain dicts so the same data feeds the terminal table, JSON and CSV; money goes out as an
exact decimal string (``cost_usd``) beside the integer micro-dollars (``cost_micros``). With the
study's attempts (``costs``) and rung ladder, a row also says where the trial ran, what preemptions
wasted and the highest dollar rung it was judged at (its stored verdicts), so the ranking shows what
each result cost to get.
"""

from __future__ import annotations

import csv
import io
import json
from bisect import bisect_right
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from rich.text import Text

from costtune.errors import SpecError
from costtune.history import FrozenTrial, History, Mode, TrialState
from costtune.money import format_usd_column, micros_to_usd, usd_text
from costtune.reports.fmt import format_duration, format_number, shown_state
from costtune.reports.placed import MARK, MARK_NOTE, real_placement
from costtune.reports.table import Column, FittedTable
from costtune.schedulers import rung_ladder, scheduler_config
from costtune.spec.resources import INSTANCE_PARAM, MARKET_PARAM
from costtune.store.reads import TrialCost
from costtune.words import shown

Costs = Mapping[int, TrialCost]  # trial number -> what its attempts add up to

_STATE_ORDER = {TrialState.RUNNING: 1, TrialState.QUEUED: 2, TrialState.FAILED: 3}


def ranked(history: History) -> list[FrozenTrial]:
    """Trials with a value best first (ties: cheaper first), then running, queued, failed."""
    sign = 1 if history.mode == Mode.MIN else -1
    scored = sorted(history.completed(), key=lambda t: (sign * t.value, t.cost_micros, t.number))  # type: ignore[operator]
    done = {t.number for t in scored}  # by number: comparing whole trials is quadratic and slow
    rest = sorted((t for t in history.trials if t.number not in done),
                  key=lambda t: (_STATE_ORDER.get(t.state, 0), t.number))
    return scored + rest


def study_ladder(spec: Mapping[str, Any]) -> tuple[int, ...] | None:
    """The rung levels (micros) of a study's dollar-rung scheduler; None for FIFO or no scheduler."""
    section = spec.get("scheduler")
    if not isinstance(section, dict):
        return None
    try:
        cfg = scheduler_config(section)
    except SpecError:  # a spec stored by another version: no rungs rather than no leaderboard
        return None
    if cfg["type"] in ("fifo", "curve"):  # curve: checkpoints of each trial's own spend, no ladder
        return None
    return rung_ladder(cfg["min_usd_micros"], cfg["max_usd_micros"], cfg["eta"])


def last_rung(ladder: Sequence[int] | None, spent_micros: int) -> int | None:
    """The highest rung level the spend reached (as the controller replays rungs), None below the first."""
    if not ladder:
        return None
    i = bisect_right(ladder, spent_micros)
    return ladder[i - 1] if i else None


def rows(history: History, costs: Costs | None = None, ladder: Sequence[int] | None = None,
         gone: Collection[int] = ()) -> list[dict[str, Any]]:
    """Ranked rows; placement keys are None without ``costs`` or an attempt, waste keys None without ``costs``.
    ``gone``: numbers of running trials whose controller is gone (``controller_gone`` true)."""
    out = []
    scored = {t.number for t in history.completed()}
    stored = any(t.verdicts for t in history.trials)  # verdicts are stored when made (not by older stores)
    for rank, trial in enumerate(ranked(history), start=1):
        duration = None
        if trial.started_at and trial.finished_at:
            duration = round((trial.finished_at - trial.started_at).total_seconds(), 3)
        cost = None if costs is None else costs.get(trial.number)
        if cost is not None and cost.simulated:
            duration = round(cost.billable_ms / 1000, 3)  # simulated instance time, not wall time
        # the highest rung it was judged at, as stored when judged; derived from its spend for older stores
        # (a trial never judged, in a study whose verdicts are stored, has no rung)
        if not ladder:
            rung = None
        elif trial.verdicts or stored:
            rung = max((v[0] for v in trial.verdicts), default=None)
        else:
            rung = last_rung(ladder, trial.cost_micros)
        out.append({
            "rank": rank if trial.number in scored else None,
            "trial": trial.number,
            "state": str(trial.state),
            "controller_gone": trial.number in gone,
            "value": trial.value,
            "params": trial.params,
            "metrics": trial.metrics,
            "cost_usd": str(micros_to_usd(trial.cost_micros)),
            "cost_micros": trial.cost_micros,
            "duration_s": duration,
            "charged_s": None if cost is None else cost.charged_ms / 1000,
            "attempts": trial.attempts,
            "last_step": trial.last_step,
            "source": trial.source,
            "output_dir": trial.output_dir,
            "error": (trial.error or "").splitlines()[0] if trial.error else None,
            "rung_usd": usd_text(rung),
            "rung_micros": rung,
            "instance_type": cost.instance_type if cost else None,
            "market": cost.market if cost else None,
            "ran_on": real_placement(trial.params, cost),  # searched placement params it did not run on
            "preemptions": None if costs is None else (cost.preemptions if cost else 0),
            "waste_usd": None if costs is None else usd_text(cost.waste_micros if cost else 0),
            "waste_micros": None if costs is None else (cost.waste_micros if cost else 0),
        })
    return out


def to_json(history: History, study: str, costs: Costs | None = None, ladder: Sequence[int] | None = None,
            gone: Collection[int] = ()) -> str:
    best = history.best()
    doc = {"study": study, "metric": history.metric, "mode": str(history.mode),
           "best_trial": best.number if best else None,
           "rung_levels_micros": list(ladder) if ladder else None, "trials": rows(history, costs, ladder, gone)}
    return json.dumps(doc, indent=2, default=str)


_CSV_COST = ["rung_usd", "rung_micros", "instance_type", "market", "preemptions", "waste_usd", "waste_micros",
             "charged_s"]


def to_csv(history: History, costs: Costs | None = None, ladder: Sequence[int] | None = None,
           gone: Collection[int] = ()) -> str:
    """Columns as before, the cost breakdown appended at the end so positional readers keep working."""
    data = [{**r, "state": shown_state(r)} for r in rows(history, costs, ladder, gone)]
    params = sorted({k for r in data for k in r["params"]})
    metrics = sorted({k for r in data for k in r["metrics"]})
    head = ["rank", "trial", "state", "value", "cost_usd", "cost_micros", "duration_s", "attempts", "last_step"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(head + [f"param.{p}" for p in params] + [f"metric.{m}" for m in metrics]
                    + ["output_dir", "error"] + _CSV_COST)
    for r in data:
        writer.writerow([r[h] for h in head] + [r["params"].get(p) for p in params]
                        + [r["metrics"].get(m) for m in metrics] + [r["output_dir"], r["error"]]
                        + [r[c] for c in _CSV_COST])
    return buf.getvalue()


def to_table(history: History, title: str, limit: int | None = None, costs: Costs | None = None,
             ladder: Sequence[int] | None = None, gone: Collection[int] = (), for_all: str = "") -> FittedTable:
    """The terminal leaderboard, fitted to the console: whole columns are left out, numbers never cut.

    Columns, most important first: trial, objective, cost, state, rank, one per parameter (a searched
    instance type ranks with them), $ at the rung reached, instance and market (only when trials ran
    on a typed instance), preemptions and re-run money (only when some trial has them), last step,
    time billed (what the cost pays for; simulated instance time for simulated trials) and tries.
    The JSON and CSV formats keep all.
    Cut to ``limit`` rows, a note under the table says how many are shown and ``for_all`` (how to
    see every row: "10 of 16 shown; costtune leaderboard NAME for all").
    """
    data = rows(history, costs, ladder, gone)
    total = len(data)
    if limit is not None:
        data = data[:limit]
    params = list(dict.fromkeys(k for r in data for k in r["params"]))
    placed = any(r["instance_type"] for r in data)  # local runs at usd_per_hour have no instance: no columns
    searched = placed and INSTANCE_PARAM in params  # then the instance column ranks with the parameters
    if placed:  # the instance and market columns show these search dimensions
        params = [p for p in params if p not in (INSTANCE_PARAM, MARKET_PARAM)]
    place_keep = 9 if searched else 10 + len(params)
    preempted = any(r["preemptions"] for r in data)
    wasted = any(r["waste_micros"] for r in data)
    columns = [
        Column("#", [str(r["rank"] or "-") for r in data], keep=4),
        Column("trial", [str(r["trial"]) for r in data], keep=0),
        Column("state", [_state(shown_state(r)) for r in data], keep=3, justify="left"),
        Column(history.metric, [format_number(r["value"]) for r in data], keep=1),
        *(Column(p, [_fmt(r["params"].get(p)) for r in data], keep=10 + i) for i, p in enumerate(params)),
        Column("cost", format_usd_column([r["cost_micros"] for r in data]), keep=2),
    ]
    if ladder:
        columns.append(Column("$ at rung", format_usd_column([r["rung_micros"] for r in data]), keep=40))
    if placed:  # one instance type or market for every trial says little per row: it goes early
        one_type, one_market = len({r["instance_type"] for r in data}) < 2, len({r["market"] for r in data}) < 2
        columns += [Column("instance", [_ran(r, "instance_type") for r in data], keep=43 if one_type else place_keep,
                           justify="left"),
                    Column("market", [_ran(r, "market") for r in data], keep=43 if one_market else place_keep + 1,
                           justify="left")]
    if preempted:
        columns.append(Column("preempt", [_fmt(r["preemptions"]) for r in data], keep=44))
    if wasted:
        columns.append(Column("re-run $", format_usd_column([r["waste_micros"] for r in data]), keep=45))
    columns += [
        Column("last step", [_fmt(r["last_step"]) for r in data], keep=41),
        Column(*time_cells(data), keep=42),
        Column("tries", [str(r["attempts"]) for r in data], keep=46),
    ]
    note = shown(len(data), total, for_all or f"{total} in all")
    if placed and any(r["ran_on"] for r in data):
        note = f"{note}\n{MARK_NOTE}" if note else MARK_NOTE
    return FittedTable(columns, title=title, note=note)


def _ran(row: Mapping[str, Any], name: str) -> str:
    """Where it ran (its last attempt), marked when its params proposed another placement."""
    return _fmt(row[name]) + (MARK if name in row["ran_on"] else "")


def time_cells(data: Sequence[Mapping[str, Any]]) -> tuple[str, list[str]]:
    """Header and cells of the time column: the time each trial was charged for (its attempts' billable
    time with started seconds and minimum charges: what the cost column pays for), or wall time, so
    labelled, when no attempt is known."""
    if any(r["charged_s"] is not None for r in data):
        return "time billed", [format_duration(r["charged_s"]) for r in data]
    return "wall time", [format_duration(r["duration_s"]) for r in data]


def _state(state: str) -> Text:
    color = {"complete": "green", "stopped": "yellow", "failed": "red", "running": "cyan"}.get(state, "magenta")
    return Text(state, style=color or "")


def _fmt(value: Any) -> str:
    return format_number(value, 4)
