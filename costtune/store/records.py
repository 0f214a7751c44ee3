"""Plain records the store hands out, and the reads shared by its parts.

They are detached from any session, so callers can keep them after the transaction ends.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from costtune.errors import StudyNotFound
from costtune.history import FrozenTrial, History, Mode, TrialState
from costtune.money import charged_ms
from costtune.store.models import AttemptRow, StudyRow, TrialRow


@dataclass(frozen=True)
class StudyInfo:
    id: int
    name: str
    metric: str
    mode: Mode
    space: dict[str, Any]
    sampler: dict[str, Any]
    spec: dict[str, Any]
    budget_usd_micros: int | None
    created_at: datetime
    output_dir: str | None = None  # the study's own directory of trial directories
    last_stop: str | None = None  # why its last run stopped (None: no run ended since the last one began)


@dataclass(frozen=True)
class Proposal:
    params: dict[str, Any]
    grid_index: int | None = None


@dataclass(frozen=True)
class ClaimedTrial:
    id: int
    number: int
    params: dict[str, Any]
    source: str
    attempt_number: int  # the attempt about to start (1 for a fresh trial)
    output_dir: str | None
    prior_cost_micros: int = 0  # what earlier attempts of a re-queued trial spent
    last_step: int | None = None  # the last step they reported (a resumed trial goes on from there)
    value: float | None = None
    metrics: dict[str, float] | None = None  # its last value of every metric so far


@dataclass(frozen=True)
class Orphan:
    number: int
    host: str | None
    pid: int | None
    left_open: bool = False  # another host ran it and only that host can see it: not closed


@dataclass(frozen=True)
class OpenAttempt:
    """An open attempt of a trial whose controller is gone: what recovery asks its provider about."""

    attempt_id: int
    trial_number: int
    number: int  # the attempt's number within its trial
    key: str  # the idempotency key it was launched with
    provider: str
    output_dir: str | None  # the trial's output directory
    started_at: datetime


@dataclass(frozen=True)
class AttemptEnd:
    """How an orphaned attempt really ended, from its resource's own record (e.g. a local supervisor's)."""

    billable_ms: int  # from the resource's start to its end
    ended_at: datetime
    exit_code: int | None = None
    note: str = ""  # where these facts come from, kept on the attempt


def attempt_market(provider: str | None, instance_type: str | None, market: str | None) -> str | None:
    """The market an attempt ran on, or None when it has none: a local trial priced at
    ``resources.usd_per_hour`` (provider local, no instance type). Stores written before this rule
    hold ``on-demand`` for such attempts; every reader maps them through here."""
    if provider == "local" and not instance_type:
        return None
    return market


@dataclass(frozen=True)
class AttemptInfo:
    number: int
    provider: str
    instance_type: str | None
    market: str | None
    rate_micros_per_hour: int
    started_at: datetime
    ended_at: datetime | None
    exit_reason: str | None
    exit_code: int | None
    billable_ms: int
    cost_micros: int
    start_step: int = 0  # resumed at this step (a checkpoint), 0 for a fresh start
    waste_micros: int = 0  # work lost to a preemption after the last checkpoint
    region: str | None = None
    argv: tuple[str, ...] | None = None  # the command line it ran; None for simulated or in-process trials
    note: str | None = None  # how recovery after a crash billed it
    granularity_s: int = 1  # its billing rule: whole granules of this many seconds (0: milliseconds)
    minimum_s: int = 0  # and the minimum charge

    @property
    def charged_ms(self) -> int:
        """The time it was charged for: held time with started granules and the minimum charge."""
        return charged_ms(self.billable_ms, granularity_s=self.granularity_s, minimum_s=self.minimum_s)


# (history, next trial number, the study's current space as a dict) -> proposal
Propose = Callable[[History, int, dict[str, Any]], Proposal]


def lock_study(s: Session, study_id: int) -> StudyRow:
    # populate_existing: within a batch, plain UPDATEs (claims) may have changed the row under the ORM
    row = s.exec(
        select(StudyRow).where(StudyRow.id == study_id).with_for_update().execution_options(populate_existing=True)
    ).first()
    if row is None:
        raise StudyNotFound(f"study id {study_id} does not exist")
    return row


def read_history(s: Session, study: StudyRow) -> History:
    trials = s.exec(
        select(TrialRow).where(TrialRow.study_id == study.id).order_by(col(TrialRow.number))
    ).all()
    counts = dict(
        s.exec(
            select(AttemptRow.trial_id, func.count())
            .join(TrialRow, col(TrialRow.id) == col(AttemptRow.trial_id))
            .where(TrialRow.study_id == study.id)
            .group_by(col(AttemptRow.trial_id))
        ).all()
    )
    return History(
        metric=study.metric,
        mode=Mode(study.mode),
        trials=tuple(_frozen(t, counts.get(t.id, 0)) for t in trials),
        budget_micros=study.budget_usd_micros,
    )


def _study_info(row: StudyRow) -> StudyInfo:
    return StudyInfo(
        id=row.id,  # type: ignore[arg-type]
        name=row.name,
        metric=row.metric,
        mode=Mode(row.mode),
        space=json.loads(row.space_json),
        sampler=json.loads(row.sampler_json),
        spec=json.loads(row.spec_json),
        budget_usd_micros=row.budget_usd_micros,
        created_at=row.created_at,
        output_dir=row.output_dir,
        last_stop=row.last_stop,
    )


def _frozen(row: TrialRow, attempts: int) -> FrozenTrial:
    return FrozenTrial(
        number=row.number,
        state=TrialState(row.state),
        params=json.loads(row.params_json),
        value=row.value,
        metrics=json.loads(row.metrics_json),
        cost_micros=row.cost_micros,
        last_step=row.last_step,
        grid_index=row.grid_index,
        source=row.source,
        attempts=attempts,
        started_at=row.started_at,
        finished_at=row.finished_at,
        output_dir=row.output_dir,
        error=row.error,
        **_warnings(row.warnings_json),
        verdicts=tuple((int(level), value, bool(up)) for level, value, up in json.loads(row.verdicts_json or "[]")),
        verdict_reasons=tuple(sorted((int(level), str(reason))
                                     for level, reason in json.loads(row.verdict_reasons_json or "{}").items())),
    )


def _warnings(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    data = json.loads(text)
    return {"warnings": tuple(data.get("first", ())), "warning_count": int(data.get("count", 0))}


def joined_note(kept: str | None, note: str) -> str | None:
    """An attempt's note with ``note`` added: "; "-joined after what it already says, unless ``kept``
    already says it (the whole of ``note``, as one or more of its "; "-separated parts in a row)."""
    note = note.strip()
    if not note:
        return kept or None
    if not kept:
        return note
    if f"; {note}; " in f"; {kept}; ":
        return kept
    return f"{kept}; {note}"
