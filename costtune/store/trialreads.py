"""The store's reads of one study's trials, reports and attempts (mixed into ``Store``).

Each method is one read transaction; none writes. Study-wide folds for reports and the leaderboard
live in ``reads.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from costtune.errors import StoreError, StudyNotFound
from costtune.history import FrozenTrial, History, TrialState
from costtune.store.ledger_models import ReservationRow
from costtune.store.models import AttemptRow, ReportRow, StudyRow, TrialRow
from costtune.store.records import AttemptInfo, _frozen, attempt_market, read_history

_TRIAL = TrialRow.__table__  # type: ignore[attr-defined]


class TrialReads:
    """Mixed into ``Store``; every method is one read transaction."""

    _tx: Callable[[], AbstractContextManager[Session]]

    def running_elsewhere(self, study_id: int, owner: str) -> list[tuple[str, Any]]:
        """(owner, last heartbeat) of the study's running trials that ``owner`` does not run."""
        with self._tx() as s:
            rows = s.execute(
                select(_TRIAL.c.owner, _TRIAL.c.heartbeat_at).where(
                    _TRIAL.c.study_id == study_id, _TRIAL.c.state == str(TrialState.RUNNING),
                    (_TRIAL.c.owner != owner) | _TRIAL.c.owner.is_(None))
            ).all()
            return [(o or "", hb) for o, hb in rows]

    def trial_count(self, study_id: int) -> int:
        """How many trials the study holds, in any state (one COUNT, no rows read)."""
        with self._tx() as s:
            return int(s.execute(select(func.count()).select_from(_TRIAL).where(_TRIAL.c.study_id == study_id))
                       .scalar() or 0)

    def history(self, study_id: int) -> History:
        with self._tx() as s:
            study = s.get(StudyRow, study_id)
            if study is None:
                raise StudyNotFound(f"study id {study_id} does not exist")
            return read_history(s, study)

    def trial(self, study_id: int, number: int) -> FrozenTrial:
        with self._tx() as s:
            row = s.exec(
                select(TrialRow).where(TrialRow.study_id == study_id, TrialRow.number == number)
            ).first()
            if row is None:
                raise StudyNotFound(f"trial: study has no trial number {number}")
            n = s.exec(select(func.count()).where(AttemptRow.trial_id == row.id)).one()
            return _frozen(row, n)

    def trial_state(self, trial_id: int) -> TrialState:
        with self._tx() as s:
            row = s.get(TrialRow, trial_id)
            if row is None:
                raise StoreError(f"trial {trial_id} does not exist")
            return TrialState(row.state)

    def reports(self, study_id: int, number: int) -> list[tuple[int, dict[str, float], float]]:
        with self._tx() as s:
            rows = s.exec(
                select(ReportRow)
                .join(TrialRow, col(TrialRow.id) == col(ReportRow.trial_id))
                .where(TrialRow.study_id == study_id, TrialRow.number == number)
                .order_by(col(ReportRow.id))
            ).all()
            return [(r.step, json.loads(r.metrics_json), r.elapsed_s) for r in rows]

    def attempts(self, study_id: int, number: int) -> list[AttemptInfo]:
        return self.attempts_by_trial(study_id, number).get(number, [])

    def attempts_by_trial(self, study_id: int, number: int | None = None) -> dict[int, list[AttemptInfo]]:
        """Trial number -> its attempts in order; every trial's in one query unless ``number`` is given."""
        query = (
            select(TrialRow.number, AttemptRow)
            .join(TrialRow, col(TrialRow.id) == col(AttemptRow.trial_id))
            .where(TrialRow.study_id == study_id)
            .order_by(col(TrialRow.number), col(AttemptRow.number))
        )
        if number is not None:
            query = query.where(TrialRow.number == number)
        out: dict[int, list[AttemptInfo]] = {}
        with self._tx() as s:
            for n, r in s.exec(query).all():
                out.setdefault(n, []).append(AttemptInfo(
                    r.number, r.provider, r.instance_type, attempt_market(r.provider, r.instance_type, r.market),
                    r.rate_micros_per_hour,
                    r.started_at, r.ended_at, r.exit_reason, r.exit_code, r.billable_ms, r.cost_micros,
                    r.start_step, r.waste_micros, r.region,
                    None if r.argv_json is None else tuple(json.loads(r.argv_json)),
                    note=r.note, granularity_s=r.bill_granule_s, minimum_s=r.bill_minimum_s,
                ))
        return out

    def rung_reports(self, study_id: int) -> dict[int, list[tuple[int, float | None]]]:
        """Per trial number, its reports as (trial spend then, objective value): what rungs replay from."""
        with self._tx() as s:
            study = s.get(StudyRow, study_id)
            if study is None:
                raise StudyNotFound(f"study id {study_id} does not exist")
            rows = s.exec(
                select(TrialRow.number, ReportRow.cost_micros, ReportRow.metrics_json)
                .join(TrialRow, col(TrialRow.id) == col(ReportRow.trial_id))
                .where(TrialRow.study_id == study_id)
                .order_by(col(TrialRow.number), col(ReportRow.id))
            ).all()
        out: dict[int, list[tuple[int, float | None]]] = {}
        for number, cost, metrics in rows:
            value = json.loads(metrics).get(study.metric)
            out.setdefault(number, []).append((cost, None if value is None else float(value)))
        return out

    def attempt_cost_by_key(self, key: str) -> tuple[int, bool] | None:
        """(booked cost, closed?) of the attempt launched with ``key``; settles a dead controller's reservation."""
        with self._tx() as s:
            row = s.exec(select(AttemptRow).where(AttemptRow.idempotency_key == key)).first()
            return None if row is None else (row.cost_micros, row.ended_at is not None)

    def unledgered_spend(self, study_id: int) -> int:
        """Money the study's attempts spent without a ledger reservation (in-process or older runs)."""
        with self._tx() as s:
            keys = select(ReservationRow.key)
            query = (
                select(func.coalesce(func.sum(AttemptRow.cost_micros), 0))
                .join(TrialRow, col(TrialRow.id) == col(AttemptRow.trial_id))
                .where(TrialRow.study_id == study_id, col(AttemptRow.idempotency_key).not_in(keys))
            )
            return int(s.exec(query).one())

    def spend_micros(
        self, study_id: int, *, exclude_attempts: set[int] | frozenset[int] = frozenset()
    ) -> int:
        """Money booked on the study's attempts (running ones as of their last heartbeat)."""
        with self._tx() as s:
            query = (
                select(func.coalesce(func.sum(AttemptRow.cost_micros), 0))
                .join(TrialRow, col(TrialRow.id) == col(AttemptRow.trial_id))
                .where(TrialRow.study_id == study_id)
            )
            if exclude_attempts:
                query = query.where(col(AttemptRow.id).not_in(list(exclude_attempts)))
            return int(s.exec(query).one())
