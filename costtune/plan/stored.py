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
    "SELECT t.state, CASE WHEN t.verdicts_json IS NULL OR t.verdicts_json = '[]' THEN 0 ELSE 1 END, "
    "COUNT(*), COALESCE(SUM(t.cost_micros), 0), COALESCE(SUM(1.0 * t.cost_micros * t.cost_micros), 0) "
    "FROM trial t JOIN study s ON s.id = t.study_id "
    "WHERE s.name = ? AND t.state IN ('stopped', 'complete') GROUP BY 1, 2"
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



def read_observed(db_url: str, name: str) -> Observed | None:
    """How study ``name``'s finished trials ended (read-only): stopped by a scheduler's verdict or completed,
    with their mean costs (micro-dollars); None when it has none (or there is no such study)."""
    rows = read_rows(db_url, _FINISHED_SQL, name)
    counts = {(str(state), int(judged)): (int(n), int(total)) for state, judged, n, total, _ in rows}
    stopped_n, stopped_sum = counts.get(("stopped", 1), (0, 0))
    done_n, done_sum = counts.get(("complete", 0), (0, 0))
    judged_n, judged_sum = counts.get(("complete", 1), (0, 0))  # ran to its end past a verdict to run on
    done_n, done_sum = done_n + judged_n, done_sum + judged_sum
    if not stopped_n and not done_n:
        return None
    n = stopped_n + done_n
    mean = (stopped_sum + done_sum) / n
    squares = sum(float(r[4]) for r in rows)
    spread = math.sqrt(max(0.0, squares / n - mean * mean) * n / max(1, n - 1))
    return Observed(stopped=stopped_n, completed=done_n, stopped_mean_micros=stopped_sum // max(1, stopped_n),
                    completed_mean_micros=done_sum // max(1, done_n), sd_micros=spread)
