"""The study a sweep file would resume, read from the user's store for ``costtune plan``.

When the store already holds a study with the sweep's name, ``costtune run`` resumes it: with its
stored sampler, scheduler, chosen rungs and cap, and the money it already spent. The plan describes
that run, not the file alone. The store is only read (``costtune.plan.startup.read_rows``): a
missing store, study or table means there is nothing to resume.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from costtune.history import Mode
from costtune.plan.curve import Observed
from costtune.plan.startup import read_rows, where_of
from costtune.store import StudyInfo

_STUDY_SQL = (
    "SELECT s.id, s.name, s.metric, s.mode, s.space_json, s.sampler_json, s.spec_json, s.budget_usd_micros, "
    "s.created_at, (SELECT COUNT(*) FROM trial t WHERE t.study_id = s.id), "
    "(SELECT COALESCE(SUM(t.cost_micros), 0) FROM trial t WHERE t.study_id = s.id) "
    "FROM study s WHERE s.name = ?"
)

_FINISHED_COSTS_SQL = ("SELECT t.number, t.cost_micros FROM trial t JOIN study s ON s.id = t.study_id "
                       "WHERE s.name = ? AND t.state IN ('stopped', 'complete', 'failed')")


# Finished trials by how they ended: curve-stopped ones (state stopped with a verdict on record) and completed ones.
_FINISHED_SQL = (
    "SELECT t.number, t.state, CASE WHEN t.verdicts_json IS NULL OR t.verdicts_json = '[]' THEN 0 ELSE 1 END, "
    "t.cost_micros FROM trial t JOIN study s ON s.id = t.study_id "
    "WHERE s.name = ? AND t.state IN ('stopped', 'complete')"
)


@dataclass(frozen=True)
class StoredStudy:
    """A study of the sweep's name in the store: what it holds and what it spent (micro-dollars)."""

    info: StudyInfo
    where: str  # the store, for messages
    trials: int
    spent_micros: int  # charged to its trials, every run
    # trial number -> what it was charged, for the trials that finished (stopped, complete, failed); the others
    # (queued, running, preempted) are the ones a resume runs again
    finished_costs: dict[int, int] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        """Trials that have run (stopped, complete, failed): what the study has "already run"."""
        return len(self.finished_costs)

    @property
    def unfinished(self) -> int:
        """Trials the study holds that have not finished: the next run runs them first."""
        return max(0, self.trials - len(self.finished_costs))

    def left_micros(self, cap_micros: int | None) -> int | None:
        """What the cap (the stored one, or the file's with --change-cap) has left; None without one (never < 0)."""
        return None if cap_micros is None else max(0, cap_micros - self.spent_micros)


def read_stored_study(db_url: str, name: str) -> StoredStudy | None:
    """The study ``name`` in the store at ``db_url`` (read-only), or None when there is none to resume."""
    rows = read_rows(db_url, _STUDY_SQL, name)
    if not rows:
        return None
    sid, study, metric, mode, space, sampler, spec, cap, created, trials, spent = rows[0]
    info = StudyInfo(id=int(sid), name=study, metric=metric, mode=Mode(mode), space=json.loads(space),
                     sampler=json.loads(sampler), spec=json.loads(spec),
                     budget_usd_micros=None if cap is None else int(cap), created_at=_moment(created))
    costs = {int(n): int(c) for n, c in read_rows(db_url, _FINISHED_COSTS_SQL, name)}
    return StoredStudy(info=info, where=where_of(db_url), trials=int(trials), spent_micros=int(spent),
                       finished_costs=costs)


def _moment(value: Any) -> datetime:
    """SQLite hands a timestamp back as text, PostgreSQL as a datetime; either is UTC."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)



def read_observed(db_url: str, name: str, workers: int = 1) -> Observed | None:
    """How study ``name``'s finished trials ended (read-only): stopped by a scheduler's verdict or completed,
    with their mean costs (micro-dollars); None when it has none (or there is no such study).

    The first ``workers`` trials (numbers below it) start before any trial has completed, so curve stopping
    has nothing to judge them against and they run to their end: they give ``first_full_micros`` and are left
    out of the share and costs of the later trials, which can be stopped (unless they are all there is).
    Trials stopped without a verdict (by the budget, or asked to stop) count in neither."""
    rows = [(int(n), str(state), int(judged), int(cost or 0)) for n, state, judged, cost in
            read_rows(db_url, _FINISHED_SQL, name)]
    ended = [(n, state == "stopped", cost) for n, state, judged, cost in rows if judged or state == "complete"]
    first = [cost for n, stopped, cost in ended if n < workers and not stopped]
    later = [(stopped, cost) for n, stopped, cost in ended if n >= workers]
    if not later:
        later = [(stopped, cost) for _n, stopped, cost in ended]
    if not later:
        return None
    stopped = [c for s, c in later if s]
    done = [c for s, c in later if not s]
    costs = [c for _s, c in later]
    n, mean = len(costs), sum(costs) / len(costs)
    spread = math.sqrt(sum((c - mean) ** 2 for c in costs) / max(1, n - 1))
    return Observed(stopped=len(stopped), completed=len(done), stopped_mean_micros=sum(stopped) // max(1, len(stopped)),
                    completed_mean_micros=sum(done) // max(1, len(done)), sd_micros=spread,
                    first_full_micros=sum(first) // len(first) if first else None)
