"""Transactional operations on the store, for every backend sqlmodel speaks.

Everything that hands out something unique (a trial number, a grid combination, a queued
configuration) happens inside one transaction that holds the study's lock, so any number of
worker threads or processes on any number of machines can share a study.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from costtune.errors import SamplerExhausted, StoreError, StudyNotFound
from costtune.history import FrozenTrial, History, Mode, TrialState
from costtune.money import charge_micros
from costtune.store.engine import make_engine, resolve_db_url
from costtune.store.models import (
    SCHEMA_VERSION,
    AttemptRow,
    MetaRow,
    ReportRow,
    StudyRow,
    TrialRow,
    utcnow,
)


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


@dataclass(frozen=True)
class Orphan:
    number: int
    host: str | None
    pid: int | None


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


_SCHEMA_LOCK_KEY = 0x636F7374  # pg_advisory_xact_lock key held while creating the tables ("cost")

# (history, next trial number, the study's current space as a dict) -> proposal
Propose = Callable[[History, int, dict[str, Any]], Proposal]


class Store:
    def __init__(self, url: str | None = None) -> None:
        self.url = resolve_db_url(url)
        self.engine = make_engine(self.url)
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Workers opening a fresh database at once would race on CREATE TABLE (SQLite's
                # BEGIN IMMEDIATE already serializes this); the lock ends with the transaction.
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK_KEY})")
            SQLModel.metadata.create_all(conn)
            meta = MetaRow.__table__  # type: ignore[attr-defined]
            if conn.execute(select(meta.c.key).where(meta.c.key == "schema_version")).first() is None:
                conn.execute(insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))

    @property
    def display_url(self) -> str:
        """The URL with any password masked, for messages and listings."""
        return make_url(self.url).render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    # -- studies ---------------------------------------------------------------------------
    def create_study(
        self,
        name: str,
        *,
        metric: str,
        mode: Mode,
        space: dict[str, Any],
        sampler: dict[str, Any],
        spec: dict[str, Any] | None = None,
        budget_usd_micros: int | None = None,
        queued: list[dict[str, Any]] | None = None,
    ) -> StudyInfo:
        """Create a study and queue its manual configurations in one transaction."""
        with self._tx() as s:
            if s.exec(select(StudyRow).where(StudyRow.name == name)).first() is not None:
                raise StoreError(f"study {name!r} already exists")
            row = StudyRow(
                name=name,
                metric=metric,
                mode=str(mode),
                space_json=json.dumps(space),
                sampler_json=json.dumps(sampler),
                spec_json=json.dumps(spec or {}),
                budget_usd_micros=budget_usd_micros,
            )
            s.add(row)
            try:
                s.flush()
            except IntegrityError:  # another process created it since our check
                raise StoreError(f"study {name!r} already exists") from None
            for params in queued or []:
                self._insert_trial(s, row, params, TrialState.QUEUED, source="manual")
            return _study_info(row)

    def find_study(self, name: str) -> StudyInfo | None:
        with self._tx() as s:
            row = s.exec(select(StudyRow).where(StudyRow.name == name)).first()
            return _study_info(row) if row else None

    def get_study(self, name: str) -> StudyInfo:
        info = self.find_study(name)
        if info is None:
            known = [st.name for st in self.list_studies()]
            hint = f"; known studies: {', '.join(known)}" if known else "; the store holds no study yet"
            raise StudyNotFound(f"study: no study named {name!r} in {self.display_url}{hint}")
        return info

    def list_studies(self) -> list[StudyInfo]:
        with self._tx() as s:
            return [_study_info(r) for r in s.exec(select(StudyRow).order_by(col(StudyRow.id)))]

    def update_study(self, study_id: int, **fields: Any) -> None:
        """Change the mutable parts of a study (budget, spec) when a sweep is re-run."""
        with self._tx() as s:
            row = self._lock_study(s, study_id)
            for key, value in fields.items():
                if key in ("spec", "sampler", "space"):
                    setattr(row, f"{key}_json", json.dumps(value))
                else:
                    setattr(row, key, value)

    def add_param(self, study_id: int, trial_id: int, name: str, value: Any, dist: dict[str, Any]) -> None:
        """Define-by-run: a trial asked for a parameter the study's space did not have yet."""
        with self._tx() as s:
            study = self._lock_study(s, study_id)
            space = json.loads(study.space_json)
            if name in space and space[name] != dist:
                raise StoreError(f"space.{name}: already defined as {space[name]}, asked for {dist}")
            space[name] = dist
            study.space_json = json.dumps(space)
            trial = s.get(TrialRow, trial_id)
            if trial is None:
                raise StoreError(f"trial {trial_id} does not exist")
            params = json.loads(trial.params_json)
            params[name] = value
            trial.params_json = json.dumps(params)

    @staticmethod
    def _lock_study(s: Session, study_id: int) -> StudyRow:
        row = s.exec(select(StudyRow).where(StudyRow.id == study_id).with_for_update()).first()
        if row is None:
            raise StudyNotFound(f"study id {study_id} does not exist")
        return row

    # -- trials ----------------------------------------------------------------------------
    def enqueue(self, study_id: int, params: dict[str, Any], *, source: str = "manual") -> int:
        with self._tx() as s:
            study = self._lock_study(s, study_id)
            return self._insert_trial(s, study, params, TrialState.QUEUED, source=source).number

    def claim_next(
        self,
        study_id: int,
        propose: Propose | None,
        *,
        owner: str,
        max_trials: int | None = None,
        output_dir: Callable[[int], str] | None = None,
    ) -> ClaimedTrial | None:
        """Take the oldest queued trial, else a new one from ``propose``; None when nothing is left.

        ``max_trials`` caps how many trials the study may hold; queued ones always run.
        """
        with self._tx() as s:
            study = self._lock_study(s, study_id)
            row = s.exec(
                select(TrialRow)
                .where(TrialRow.study_id == study_id, TrialRow.state == TrialState.QUEUED)
                .order_by(col(TrialRow.number))
            ).first()
            if row is None:
                count = s.exec(select(func.count()).where(TrialRow.study_id == study_id)).one()
                if propose is None or (max_trials is not None and count >= max_trials):
                    return None
                history = self._history(s, study)
                try:
                    proposal = propose(history, study.next_number, json.loads(study.space_json))
                except SamplerExhausted:
                    return None
                row = self._insert_trial(
                    s, study, proposal.params, TrialState.RUNNING, grid_index=proposal.grid_index
                )
            now = utcnow()
            row.state = TrialState.RUNNING
            row.owner = owner
            row.heartbeat_at = now
            row.started_at = row.started_at or now
            if row.output_dir is None and output_dir is not None:
                row.output_dir = output_dir(row.number)
            attempts = s.exec(select(func.count()).where(AttemptRow.trial_id == row.id)).one()
            s.add(row)
            s.flush()
            return ClaimedTrial(
                id=row.id,  # type: ignore[arg-type]
                number=row.number,
                params=json.loads(row.params_json),
                source=row.source,
                attempt_number=attempts + 1,
                output_dir=row.output_dir,
            )

    @staticmethod
    def _insert_trial(
        s: Session,
        study: StudyRow,
        params: dict[str, Any],
        state: TrialState,
        *,
        source: str = "sampler",
        grid_index: int | None = None,
    ) -> TrialRow:
        row = TrialRow(
            study_id=study.id,  # type: ignore[arg-type]
            number=study.next_number,
            state=state,
            source=source,
            params_json=json.dumps(params),
            grid_index=grid_index,
        )
        study.next_number += 1
        s.add(study)
        s.add(row)
        s.flush()
        return row

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
            self._lock_study(s, study_id)
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

    # -- reads -----------------------------------------------------------------------------
    def history(self, study_id: int) -> History:
        with self._tx() as s:
            study = s.get(StudyRow, study_id)
            if study is None:
                raise StudyNotFound(f"study id {study_id} does not exist")
            return self._history(s, study)

    @staticmethod
    def _history(s: Session, study: StudyRow) -> History:
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
        )

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
        with self._tx() as s:
            rows = s.exec(
                select(AttemptRow)
                .join(TrialRow, col(TrialRow.id) == col(AttemptRow.trial_id))
                .where(TrialRow.study_id == study_id, TrialRow.number == number)
                .order_by(col(AttemptRow.number))
            ).all()
            return [
                AttemptInfo(
                    r.number, r.provider, r.instance_type, r.market, r.rate_micros_per_hour,
                    r.started_at, r.ended_at, r.exit_reason, r.exit_code, r.billable_ms, r.cost_micros,
                )
                for r in rows
            ]

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
    )
