"""Spend grouped the way FinOps asks: by a sweep tag (team, project, ...), study, instance type, market,
cloud or day, over a window (``costtune spend --by team --window month``).

Reads every attempt with its study's sweep tags (one query). ``spent`` is what ended attempts were
billed; ``running`` counts attempts still open (their money is held in the ledger: see
``costtune spend`` without ``--by``). Days and windows are UTC unless a time zone is given.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from costtune.policies.model import Policy, Window
from costtune.policies.windows import span

BY = ("team", "project", "study", "instance", "market", "cloud", "day")


def window_start(period: str, now: datetime, timezone: str = "UTC") -> datetime | None:
    """Start (UTC) of the ``period`` (total, day, week, month) that contains ``now``; None for total."""
    if period == "total":
        return None
    word = {"day": "daily", "week": "weekly", "month": "monthly"}[period]
    return span(Policy(name="spend", window=Window(period=word, timezone=timezone)), now).start


def spend_groups(store: Any, by: str, since: datetime | None, timezone: str = "UTC") -> list[dict[str, Any]]:
    """Rows ``{by: key, spent_micros, attempts, running}`` sorted by spend (largest first). ``by`` is one of
    ``BY`` or any sweep tag name; a study without that tag groups under ``-``."""
    from sqlmodel import Session, col, select

    from costtune.store.models import AttemptRow, StudyRow, TrialRow
    from costtune.store.records import attempt_market

    zone = ZoneInfo(timezone)
    query = (select(AttemptRow.started_at, AttemptRow.ended_at, AttemptRow.provider, AttemptRow.instance_type,
                    AttemptRow.market, AttemptRow.cost_micros, StudyRow.name, StudyRow.spec_json)
             .join(TrialRow, col(TrialRow.id) == col(AttemptRow.trial_id))
             .join(StudyRow, col(StudyRow.id) == col(TrialRow.study_id)))
    if since is not None:
        query = query.where(col(AttemptRow.started_at) >= since)
    tags_of: dict[str, dict[str, str]] = {}
    groups: dict[str, dict[str, Any]] = {}
    with Session(store.engine) as s:
        rows = s.exec(query).all()
    for started, ended, provider, itype, market, cost, study, spec_json in rows:
        if by in ("study", "instance", "market", "cloud", "day"):
            at = started if started.tzinfo else started.replace(tzinfo=UTC)
            key = {"study": study, "instance": itype or "local",
                   "market": attempt_market(provider, itype, market) or "-", "cloud": provider,
                   "day": at.astimezone(zone).date().isoformat()}[by]
        else:
            if study not in tags_of:
                tags = json.loads(spec_json or "{}").get("tags")
                tags_of[study] = {str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {}
            key = tags_of[study].get(by, "-")
        group = groups.setdefault(key, {by: key, "spent_micros": 0, "attempts": 0, "running": 0})
        group["spent_micros"] += int(cost or 0) if ended is not None else 0
        group["attempts"] += 1
        group["running"] += ended is None
    return sorted(groups.values(), key=lambda g: (-g["spent_micros"], str(g[by])))



def sweep_tags(store: Any) -> set[str]:
    """Every tag name some study's sweep carries (``tags:`` of its sweep file)."""
    from sqlmodel import Session, select

    from costtune.store.models import StudyRow

    names: set[str] = set()
    with Session(store.engine) as s:
        for spec_json in s.exec(select(StudyRow.spec_json)).all():
            tags = json.loads(spec_json or "{}").get("tags")
            if isinstance(tags, dict):
                names.update(str(k) for k in tags)
    return names
