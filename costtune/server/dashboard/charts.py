"""What the study page draws, kept per study and brought up to date incrementally.

``StudyCharts.payload()`` reads only the trials that finished since its last read (by id and by
``finished_at``) plus cheap aggregates, folds them into the finished trials it holds, and rebuilds
the series with the report code (``costtune.reports.cost``), so the page and ``costtune report``
agree. Shapes: money in integer micro-dollars, values as floats (non-finite ones left out).
A count check makes it start over when trials left the finished states (a resumed study).
"""

from __future__ import annotations

import json
import math
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, or_
from sqlmodel import Session, col, select

from costtune.history import FrozenTrial, History, Mode, TrialState
from costtune.reports.cost import best_vs_spend, cost_per_improvement, pareto_front
from costtune.reports.leaderboard import study_ladder
from costtune.store.models import AttemptRow, ReportRow, TrialRow
from costtune.store.records import attempt_market

if TYPE_CHECKING:
    from costtune.store import Store, StudyInfo

FINISHED = [str(s) for s in TrialState if s.finished]
CURVES = 12  # learning curves drawn: the best trials so far
PARALLEL_MAX = 2000  # parallel coordinates: the best this many scored trials (lines beyond are noise)


class StudyCharts:
    """The finished trials of one study and the chart series built from them (thread-safe)."""

    def __init__(self, store: Store, info: StudyInfo) -> None:
        self.store, self.info = store, info
        self._lock = threading.Lock()
        self._trials: dict[int, FrozenTrial] = {}
        self._max_id = 0
        self._since: datetime | None = None
        self._built: dict[str, Any] | None = None

    def _refresh(self, s: Session) -> bool:
        where = [TrialRow.study_id == self.info.id, col(TrialRow.state).in_(FINISHED)]
        held = s.exec(select(func.count()).select_from(TrialRow).where(*where)).one()
        if held < len(self._trials):  # trials went back to the queue: start over
            self._trials, self._max_id, self._since = {}, 0, None
        changed = [TrialRow.id > self._max_id]
        if self._since is not None:
            changed.append(col(TrialRow.finished_at) > self._since)
        rows = s.exec(select(TrialRow.id, TrialRow.number, TrialRow.state, TrialRow.params_json, TrialRow.value,
                             TrialRow.cost_micros, TrialRow.finished_at).where(*where, or_(*changed))).all()
        for tid, number, state, params, value, cost, finished in rows:  # the fields the charts use, no more
            self._trials[tid] = FrozenTrial(number=number, state=TrialState(state), params=json.loads(params),
                                            value=value, cost_micros=cost, finished_at=finished)
            self._max_id = max(self._max_id, tid)
            if finished is not None and (self._since is None or finished > self._since):
                self._since = finished
        return bool(rows) or self._built is None

    def payload(self) -> dict[str, Any]:
        """Every series of the study page (see the module docstring); rebuilt only when trials finished."""
        with self._lock, Session(self.store.engine) as s:
            if self._refresh(s) or self._built is None:
                self._built = self._build(s)
            return {**self._built, "placement": _placement(s, self.info.id)}

    def _build(self, s: Session) -> dict[str, Any]:
        info = self.info
        history = History(info.metric, Mode(info.mode), tuple(sorted(self._trials.values(), key=lambda t: t.number)),
                          info.budget_usd_micros)
        sign = 1 if info.mode == Mode.MIN else -1
        scored = [t for t in history.trials if t.value is not None and math.isfinite(t.value)
                  and t.state in (TrialState.COMPLETE, TrialState.STOPPED)]
        scored.sort(key=lambda t: (sign * t.value, t.cost_micros, t.number))  # type: ignore[operator]
        top = scored[:PARALLEL_MAX]
        params = sorted({k for t in top for k in t.params})
        best_ids = [t.number for t in scored[:CURVES]]
        return {
            "metric": info.metric, "mode": str(info.mode), "finished": len(history.trials),
            "best_vs_spend": _steps(best_vs_spend(history)),
            "improvements": cost_per_improvement(history),
            "pareto": [[t.cost_micros, t.value, t.number] for t in pareto_front(history)],
            "scatter": [[t.cost_micros, t.value, t.number] for t in scored],
            "parallel": {"params": params, "rows": [[t.number, t.value, *[_axis(t.params.get(p)) for p in params]]
                                                    for t in top]},
            "curves": _curves(s, info, best_ids),
            "rungs": list(study_ladder(info.spec) or ()),
        }


def _steps(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """The best-vs-spend step curve as [cumulative micros, best, trial] at its first point, each change
    of the best and its last point: the same steps, without 10,000 points that repeat the best."""
    out: list[list[Any]] = []
    for k, r in enumerate(rows):
        if not out or r["best"] != out[-1][1] or k == len(rows) - 1:
            out.append([r["cumulative_micros"], r["best"], r["trial"]])
    return out


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _axis(value: Any) -> Any:
    """A parameter on a parallel-coordinates axis: numbers as they are, anything else as its text."""
    number = _num(value)
    return number if number is not None else json.dumps(value) if not isinstance(value, str) else value


def _curves(s: Session, info: StudyInfo, numbers: list[int]) -> list[dict[str, Any]]:
    """The objective against the trial's spend at each report, for trials ``numbers``."""
    if not numbers:
        return []
    rows = s.exec(select(TrialRow.number, ReportRow.cost_micros, ReportRow.metrics_json)
                  .join(TrialRow, col(TrialRow.id) == col(ReportRow.trial_id))
                  .where(TrialRow.study_id == info.id, col(TrialRow.number).in_(numbers))
                  .order_by(col(TrialRow.number), col(ReportRow.id))).all()
    out: dict[int, list[list[Any]]] = {n: [] for n in numbers}
    for number, cost, metrics in rows:
        value = _num(json.loads(metrics).get(info.metric))
        if value is not None:
            out[number].append([cost, value])
    return [{"trial": n, "points": out[n]} for n in numbers]


def _placement(s: Session, study_id: int) -> list[dict[str, Any]]:
    """Spend per (provider, instance type, market): attempts, preemptions, cost and booked preemption
    waste, dearest first; one grouped query."""
    rows = s.exec(
        select(AttemptRow.provider, AttemptRow.instance_type, AttemptRow.market, func.count(),
               func.sum(func.coalesce(AttemptRow.cost_micros, 0)), func.sum(func.coalesce(AttemptRow.waste_micros, 0)),
               func.sum(case((col(AttemptRow.exit_reason) == "preempted", 1), else_=0)),
               func.sum(case((col(AttemptRow.ended_at).is_(None), 1), else_=0)))
        .join(TrialRow, col(TrialRow.id) == col(AttemptRow.trial_id))
        .where(TrialRow.study_id == study_id)
        .group_by(AttemptRow.provider, AttemptRow.instance_type, AttemptRow.market)).all()
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for p, it, m, n, c, w, pre, run in rows:  # a local trial's old "on-demand" and its no market: one row
        row = merged.setdefault((p, it, attempt_market(p, it, m)), {
            "provider": p, "instance_type": it, "market": attempt_market(p, it, m), "attempts": 0, "cost_micros": 0,
            "waste_micros": 0, "preemptions": 0, "running": 0})
        for k, v in (("attempts", n), ("cost_micros", c), ("waste_micros", w), ("preemptions", pre), ("running", run)):
            row[k] += int(v or 0)
    out = list(merged.values())
    return sorted(out, key=lambda r: (-r["cost_micros"], str(r["instance_type"])))
