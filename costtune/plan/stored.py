"""The study a sweep file would resume, read from the user's store for ``costtune plan``.

When the store already holds a study with the sweep's name, ``costtune run`` resumes it: with its
stored sampler, scheduler, chosen rungs and cap, and the money it already spent. The plan describes
that run, not the file alone. The store is only read (``costtune.plan.startup.read_rows``): a
missing store, study or table means there is nothing to resume.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from costtune.history import Mode
from costtune.plan.startup import read_rows, where_of
from costtune.store import StudyInfo

_STUDY_SQL = (
    "SELECT s.id, s.name, s.metric, s.mode, s.space_json, s.sampler_json, s.spec_json, s.budget_usd_micros, "
    "s.created_at, (SELECT COUNT(*) FROM trial t WHERE t.study_id = s.id), "
    "(SELECT COALESCE(SUM(t.cost_micros), 0) FROM trial t WHERE t.study_id = s.id) "
    "FROM study s WHERE s.name = ?"
)


@dataclass(frozen=True)
class StoredStudy:
    """A study of the sweep's name in the store: what it holds and what it spent (micro-dollars)."""

    info: StudyInfo
    where: str  # the store, for messages
    trials: int
    spent_micros: int  # charged to its trials, every run

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
    return StoredStudy(info=info, where=where_of(db_url), trials=int(trials), spent_micros=int(spent))


def _moment(value: Any) -> datetime:
    """SQLite hands a timestamp back as text, PostgreSQL as a datetime; either is UTC."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

