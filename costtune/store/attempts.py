"""Attempts, reports and the money they book: the part of the store a running trial talks to."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from costtune.errors import StoreError
from costtune.history import FrozenTrial, TrialState
from costtune.money import charge_micros
from costtune.store.models import AttemptRow, ReportRow, TrialRow, utcnow
from costtune.store.records import Orphan, _frozen, lock_study


class AttemptBook:
    """Mixed into ``Store``; every method is one transaction."""

    _tx: Callable[[], AbstractContextManager[Session]]

    def start_attempt(
        self,
        trial_id: int,
        number: int,
        *,
        idempotency_key: str,
        provider: str,
        rate_micros_per_hour: int,
        region: str | None = None,
        instance_type: str | None = None,
        market: str | None = None,
        host: str | None = None,
    ) -> int:
        with self._tx() as s:
            row = AttemptRow(
                trial_id=trial_id,
                number=number,
                idempotency_key=idempotency_key,
                provider=provider,
                rate_micros_per_hour=rate_micros_per_hour,
                region=region,
                instance_type=instance_type,
                market=market,
                host=host,
            )
            s.add(row)
            s.flush()
            return row.id  # type: ignore[return-value]

    def set_attempt_pid(self, attempt_id: int, pid: int) -> None:
        with self._tx() as s:
            row = s.get(AttemptRow, attempt_id)
            if row is not None:
                row.pid = pid

    def add_report(
        self,
        trial_id: int,
        attempt_id: int | None,
        step: int,
        metrics: dict[str, float],
        *,
        objective: str,
        elapsed_s: float = 0.0,
    ) -> FrozenTrial:
        with self._tx() as s:
            trial = s.get(TrialRow, trial_id)
            if trial is None:
                raise StoreError(f"trial {trial_id} does not exist")
            s.add(
                ReportRow(
                    trial_id=trial_id,
                    attempt_id=attempt_id,
                    step=step,
                    metrics_json=json.dumps(metrics),
                    elapsed_s=elapsed_s,
                )
            )
            merged = json.loads(trial.metrics_json)
            merged.update(metrics)
            trial.metrics_json = json.dumps(merged)
            trial.last_step = step
            if objective in metrics:
                trial.value = float(metrics[objective])
            s.add(trial)
            s.flush()
            attempts = s.exec(select(func.count()).where(AttemptRow.trial_id == trial_id)).one()
            return _frozen(trial, attempts=attempts)

    def heartbeat(self, owner: str, charges: dict[int, tuple[int, int]]) -> None:
        """Keep ``owner``'s trials alive and book the running cost of its attempts.

        ``charges`` maps attempt id -> (billable ms so far, cost in micro-dollars so far).
        """
        now = utcnow()
        with self._tx() as s:
            for attempt_id, (billable_ms, cost) in charges.items():
                attempt = s.get(AttemptRow, attempt_id)
                if attempt is None or attempt.ended_at is not None:
                    continue
                attempt.billable_ms, attempt.cost_micros = billable_ms, cost
                self._recost_trial(s, attempt.trial_id)
            for trial in s.exec(
                select(TrialRow).where(TrialRow.owner == owner, TrialRow.state == TrialState.RUNNING)
            ):
                trial.heartbeat_at = now
                s.add(trial)

    def finish_attempt(
        self,
        attempt_id: int,
        *,
        exit_reason: str,
        billable_ms: int,
        cost_micros: int,
        exit_code: int | None = None,
        ended_at: datetime | None = None,
    ) -> None:
        with self._tx() as s:
            row = s.get(AttemptRow, attempt_id)
            if row is None or row.ended_at is not None:
                return  # closing twice is a no-op: the first close holds the books
            row.ended_at = ended_at or utcnow()
            row.exit_reason, row.exit_code = exit_reason, exit_code
            row.billable_ms, row.cost_micros = billable_ms, cost_micros
            s.add(row)
            self._recost_trial(s, row.trial_id)

    @staticmethod
    def _recost_trial(s: Session, trial_id: int) -> None:
        s.flush()
        total = s.exec(
            select(func.coalesce(func.sum(AttemptRow.cost_micros), 0)).where(AttemptRow.trial_id == trial_id)
        ).one()
        trial = s.get(TrialRow, trial_id)
        if trial is not None:
            trial.cost_micros = int(total)
            s.add(trial)

    def finish_trial(self, trial_id: int, state: TrialState, *, error: str | None = None) -> None:
        with self._tx() as s:
            trial = s.get(TrialRow, trial_id)
            if trial is None:
                raise StoreError(f"trial {trial_id} does not exist")
            trial.state = state
            trial.owner = None
            trial.finished_at = utcnow() if state.finished else None
            if error is not None:
                trial.error = error
            s.add(trial)

    def recover_orphans(
        self, study_id: int, is_alive: Callable[[str, datetime | None], bool]
    ) -> list[Orphan]:
        """Re-queue running trials whose controller is gone; book their open attempts as interrupted.

        The open attempt is charged up to its trial's last heartbeat, the last moment we know
        the process held the machine. Returns what may still need killing.
        """
        orphans: list[Orphan] = []
        with self._tx() as s:
            lock_study(s, study_id)
            rows = s.exec(
                select(TrialRow).where(TrialRow.study_id == study_id, TrialRow.state == TrialState.RUNNING)
            ).all()
            for trial in rows:
                if trial.owner and is_alive(trial.owner, trial.heartbeat_at):
                    continue
                last_seen = trial.heartbeat_at or utcnow()
                open_attempts = s.exec(
                    select(AttemptRow).where(
                        AttemptRow.trial_id == trial.id, col(AttemptRow.ended_at).is_(None)
                    )
                ).all()
                for attempt in open_attempts:
                    held_ms = max(0, int((last_seen - attempt.started_at).total_seconds() * 1000))
                    attempt.billable_ms = max(attempt.billable_ms, held_ms)
                    attempt.cost_micros = max(
                        attempt.cost_micros, charge_micros(attempt.billable_ms, attempt.rate_micros_per_hour)
                    )
                    attempt.ended_at = last_seen
                    attempt.exit_reason = "interrupted"
                    s.add(attempt)
                    orphans.append(Orphan(trial.number, attempt.host, attempt.pid))
                trial.state = TrialState.QUEUED
                trial.owner = None
                s.add(trial)
                self._recost_trial(s, trial.id)  # type: ignore[arg-type]
                if not open_attempts:
                    orphans.append(Orphan(trial.number, None, None))
        return orphans
