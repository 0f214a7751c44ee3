"""Transactional operations on the store, for every backend sqlmodel speaks.

Everything that hands out something unique (a trial number, a grid combination, a queued
configuration) happens inside one transaction that holds the study's lock, so any number of
worker threads or processes on any number of machines can share a study.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import DateTime, bindparam, func, insert, inspect, text, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from costtune.errors import SamplerExhausted, SpecError, StoreError, StudyNotFound
from costtune.history import History, Mode, TrialState
from costtune.names import check_study_name
from costtune.store.admin import StudyAdmin, not_found_hint
from costtune.store.attempts import AttemptBook
from costtune.store.audit import AuditBook, AuditEntry, add_audit, current_actor
from costtune.store.caps import CAP_ACTION, CapBook, CapChange, raise_trial_budget, study_scope
from costtune.store.control import ControlBook
from costtune.store.engine import mask_url, opening, refuse_foreign_sqlite, resolve_db_url
from costtune.store.ledger import LedgerBook
from costtune.store.models import (
    ADDED_COLUMNS,
    SCHEMA_VERSION,
    AttemptRow,
    MetaRow,
    StudyRow,
    TrialRow,
    utcnow,
)
from costtune.store.orphans import OrphanBook
from costtune.store.pending import Pending
from costtune.store.policies import PolicyBook
from costtune.store.records import (
    AttemptEnd,
    AttemptInfo,
    ClaimedTrial,
    OpenAttempt,
    Orphan,
    Proposal,
    Propose,
    StudyInfo,
    _study_info,
    lock_study,
)
from costtune.store.remote import RemoteBook, RemoteConflict, RemoteState
from costtune.store.schedules import ScheduleBook
from costtune.store.trialcache import TrialCache, install_revision_triggers
from costtune.store.trialreads import TrialReads
from costtune.store.versions import ModelBook
from costtune.words import plural

__all__ = ["AttemptEnd", "AttemptInfo", "AuditEntry", "CapChange", "ClaimedTrial", "OpenAttempt", "Orphan", "Proposal",
           "Propose", "RemoteConflict", "RemoteState", "Store", "StudyInfo", "study_scope"]


_INSERT_RUNNING = text(
    "INSERT INTO trial (study_id, number, state, source, params_json, grid_index, metrics_json, cost_micros, "
    "output_dir, owner, heartbeat_at, created_at, started_at) VALUES (:study_id, :number, :state, 'sampler', "
    ":params_json, :grid_index, '{}', 0, :output_dir, :owner, :now, :now, :now) RETURNING id"
).bindparams(bindparam("now", type_=DateTime(timezone=True)))
_STUDY = StudyRow.__table__  # type: ignore[attr-defined]
_TRIAL = TrialRow.__table__  # type: ignore[attr-defined]
_LOCK_STUDY = (
    select(_STUDY.c.id, _STUDY.c.metric, _STUDY.c.mode, _STUDY.c.space_json, _STUDY.c.next_number,
           _STUDY.c.budget_usd_micros, _STUDY.c.created_at)
    .where(_STUDY.c.id == bindparam("sid"))
    .with_for_update()
)
_FIRST_QUEUED = (
    select(_TRIAL.c.id)
    .where(_TRIAL.c.study_id == bindparam("sid"), _TRIAL.c.state == str(TrialState.QUEUED))
    .order_by(_TRIAL.c.number)
    .limit(1)
)
_NEXT_NUMBER = update(_STUDY).where(_STUDY.c.id == bindparam("sid")).values(next_number=bindparam("n"))
_SCHEMA_LOCK_KEY = 0x636F7374  # pg_advisory_xact_lock key held while creating the tables ("cost")


class Store(AttemptBook, OrphanBook, LedgerBook, StudyAdmin, CapBook, AuditBook, RemoteBook, ScheduleBook, ModelBook,
            ControlBook, PolicyBook, TrialReads):
    def __init__(self, url: str | None = None) -> None:
        """Open (creating when new) the store at ``url`` (see ``resolve_db_url``).

        Raises ``StoreUnavailable`` (an ``InputError``) for a bad URL, a failed connection or a file
        that is not a costtune store; a failed open leaves no file behind.
        """
        self.url = resolve_db_url(url)
        self._batch: ContextVar[Session | None] = ContextVar(f"costtune-batch-{id(self)}", default=None)
        self.trial_cache = TrialCache()  # what claims read of each study's trials (trialcache.py)
        with opening(self.url) as engine:
            self.engine = engine
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # Workers opening a fresh database at once would race on CREATE TABLE (SQLite's
                    # BEGIN IMMEDIATE already serializes this); the lock ends with the transaction.
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK_KEY})")
                else:
                    refuse_foreign_sqlite(conn, self.display_url, known=set(SQLModel.metadata.tables))
                SQLModel.metadata.create_all(conn)
                _add_missing_columns(conn)
                install_revision_triggers(conn)
                meta = MetaRow.__table__  # type: ignore[attr-defined]
                if conn.execute(select(meta.c.key).where(meta.c.key == "schema_version")).first() is None:
                    conn.execute(insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))

    @property
    def display_url(self) -> str:
        """The URL with any password masked, for messages and listings."""
        return mask_url(self.url)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Run every store call inside this block as one transaction (nested blocks join it).

        The event loop books many small things per tick (reports, charges, decisions); one commit
        for all of them keeps a 10,000-trial simulated sweep fast, and a crash loses none of it
        half-way: the tick is in the store entirely or not at all. Reports booked in a batch are
        written together, before anything else reads or writes the store (``store.pending``).
        """
        outer = self._batch.get()
        if outer is not None:
            yield
            # A long batch would otherwise grow the session's identity map without bound, and
            # every flush walks it: hand back what this block loaded (it is all flushed first).
            if outer.identity_map or outer.new or outer.deleted:
                outer.flush()
                outer.expunge_all()
            return
        with self._tx() as session:
            token = self._batch.set(session)
            pending = Pending.attach(session)
            try:
                yield
                pending.settle()
            finally:
                pending.detach()
                self._batch.reset(token)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside ``batch``: undo only this block's writes if it raises, and the batch goes on.

        Plain SAVEPOINT statements on the batch's connection (the ORM's nested transactions cost
        several times more, and a simulated sweep takes one per attempt per tick), issued only
        when a statement runs inside the block (``store.pending``). On PostgreSQL a failed
        statement spoils the whole transaction without one."""
        outer = self._batch.get()
        pending = None if outer is None else Pending.of(outer)
        if pending is None:
            yield
            return
        point = pending.enter_savepoint()
        try:
            yield
        except BaseException:
            pending.leave_savepoint(point, failed=True)
            self.trial_cache.clear()  # it may hold rows the rollback undid
            raise
        pending.leave_savepoint(point, failed=False)

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        outer = self._batch.get()
        if outer is not None:
            pending = Pending.of(outer)
            if pending is not None:
                pending.settle()  # what was held back runs first, in the order it was asked for
            yield outer
            return
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                self.trial_cache.clear()  # it may hold rows the rollback undid
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
        output_dir: str | None = None,
    ) -> StudyInfo:
        """Create a study and queue its manual configurations in one transaction.

        ``output_dir``: the study's own directory of trial directories (``costtune.study.output``
        claims one). A cap is recorded in the audit trail as the study's first ``cap.set`` and set
        in the ledger's ``study:ID`` scope. Raises ``SpecError`` for an invalid name and
        ``StoreError`` when the name is taken.
        """
        check_study_name(name)
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
                output_dir=output_dir,
            )
            s.add(row)
            try:
                s.flush()
            except IntegrityError:  # another process created it since our check
                raise StoreError(f"study {name!r} already exists") from None
            for params in queued or []:
                self._insert_trial(s, row, params, TrialState.QUEUED, source="manual")
            if budget_usd_micros is not None:
                add_audit(s, CAP_ACTION, actor=current_actor(), study_id=row.id, detail={
                    "study": name, "from_micros": None, "to_micros": budget_usd_micros, "reason": "study created"})
            info = _study_info(row)
        if budget_usd_micros is not None:
            self.set_cap(study_scope(info.id), budget_usd_micros)
        return info

    def find_study(self, name: str) -> StudyInfo | None:
        with self._tx() as s:
            row = s.exec(select(StudyRow).where(StudyRow.name == name)).first()
            return _study_info(row) if row else None

    def get_study(self, name: str) -> StudyInfo:
        info = self.find_study(name)
        if info is None:
            hint = not_found_hint(name, [st.name for st in self.list_studies()])
            raise StudyNotFound(f"study: no study named {name!r} in {self.display_url}{hint}")
        return info

    def list_studies(self) -> list[StudyInfo]:
        with self._tx() as s:
            return [_study_info(r) for r in s.exec(select(StudyRow).order_by(col(StudyRow.id)))]

    def update_study(self, study_id: int, **fields: Any) -> None:
        """Change the mutable parts of a study (budget, spec) when a sweep is re-run."""
        with self._tx() as s:
            row = lock_study(s, study_id)
            for key, value in fields.items():
                if key in ("spec", "sampler", "space"):
                    setattr(row, f"{key}_json", json.dumps(value))
                else:
                    setattr(row, key, value)

    def add_param(self, study_id: int, trial_id: int, name: str, value: Any, dist: dict[str, Any]) -> None:
        """Define-by-run: a trial asked for a parameter the study's space did not have yet."""
        with self._tx() as s:
            study = lock_study(s, study_id)
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

    # -- trials ----------------------------------------------------------------------------
    def enqueue(self, study_id: int, params: dict[str, Any], *, source: str = "manual",
                max_trials: int | None = None, raise_trials: int | None = None,
                field: str = "--raise-trials", reason: str = "costtune enqueue --raise-trials",
                actor: str | None = None) -> int:
        """Queue a configuration; its trial number. An enqueued trial counts toward ``max_trials``
        (``budget.trials``): past it, ``SpecError`` naming budget.trials, how many it allows and how many
        the study holds, and nothing is queued. ``raise_trials`` first makes that the stored budget.trials
        (recorded in the audit trail as ``trials.set`` with ``reason``; ``InputError`` naming ``field`` if it
        raises nothing). ``field``: how the caller's user spells the raise (CLI flag or API field); ``actor``:
        who the audit entry names (default: this process's user)."""
        with self._tx() as s:
            study = lock_study(s, study_id)
            if raise_trials is not None:
                raise_trial_budget(s, study, study.next_number, raise_trials, reason=reason, field=field,
                                   actor=actor)
                max_trials = raise_trials
            if max_trials is not None and study.next_number >= max_trials:
                raise SpecError("budget.trials", f"study {study.name!r} holds {plural(study.next_number, 'trial')} and "
                                f"budget.trials allows {max_trials}; an enqueued trial counts toward it, so nothing "
                                f"was queued: pass {field} {study.next_number + 1} (or more) to raise it "
                                f"(recorded in costtune audit)")
            return self._insert_trial(s, study, params, TrialState.QUEUED, source=source).number

    def claim_next(
        self,
        study_id: int,
        propose: Propose | None,
        *,
        owner: str,
        max_trials: int | None = None,
        output_dir: Callable[[int], str] | None = None,
        needs_history: bool = True,
        skip: Collection[int] = (),
    ) -> ClaimedTrial | None:
        """Take the oldest queued trial, else a new one from ``propose``; None when nothing is left.

        ``skip``: ids of queued trials to pass over (the controller found they cannot be funded now; they
        stay queued, untouched). ``max_trials`` caps how many trials the study may hold; queued ones always
        run. Without
        ``needs_history`` the proposer gets an empty history (a random sampler never reads it, and
        reading 10,000 trials per claim would make a long sweep quadratic).
        """
        with self._tx() as s:
            study = s.execute(_LOCK_STUDY, {"sid": study_id}).first()
            if study is None:
                raise StudyNotFound(f"study id {study_id} does not exist")
            first = _FIRST_QUEUED if not skip else _FIRST_QUEUED.where(_TRIAL.c.id.not_in(list(skip)))
            queued = s.execute(first, {"sid": study_id}).scalar()
            if queued is None:
                # Numbers are handed out one by one under this lock and trials are never deleted,
                # so next_number is the study's trial count without counting rows.
                if propose is None or (max_trials is not None and study.next_number >= max_trials):
                    return None
                history = self.trial_cache.history(s, study) if needs_history else History(
                    study.metric, Mode(study.mode), (), study.budget_usd_micros)
                try:
                    proposal = propose(history, study.next_number, json.loads(study.space_json))
                except SamplerExhausted:
                    return None
                return self._insert_claimed(s, study, proposal, owner, output_dir)
            row = s.get(TrialRow, queued)
            assert row is not None  # we hold the study's lock and trials are never deleted
            now = utcnow()
            row.state = TrialState.RUNNING
            row.owner = owner
            row.heartbeat_at = now
            if row.error and row.error.startswith("waiting: "):
                row.error = None  # why a spend policy held it back (runner/admission.py): no longer so
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
                prior_cost_micros=row.cost_micros,
                last_step=row.last_step,
                value=row.value,
                metrics=json.loads(row.metrics_json),
            )

    @staticmethod
    def _insert_claimed(s: Session, study: Any, proposal: Proposal, owner: str,
                        output_dir: Callable[[int], str] | None) -> ClaimedTrial:
        """A fresh trial, inserted already running: one plain statement (claims are a hot path)."""
        number = study.next_number
        now = utcnow()
        params_json = json.dumps(proposal.params)
        folder = output_dir(number) if output_dir is not None else None
        trial_id = s.execute(_INSERT_RUNNING, {
            "study_id": study.id, "number": number, "state": str(TrialState.RUNNING), "params_json": params_json,
            "grid_index": proposal.grid_index, "owner": owner, "now": now, "output_dir": folder,
        }).scalar_one()
        s.execute(_NEXT_NUMBER, {"sid": study.id, "n": number + 1})
        return ClaimedTrial(id=trial_id, number=number, params=json.loads(params_json), source="sampler",
                            attempt_number=1, output_dir=folder, metrics={})

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


def _add_missing_columns(conn: Any) -> None:
    """Bring a store made by an older costtune up to this schema (columns only ever get added)."""
    inspector = inspect(conn)
    for table, column, ddl in ADDED_COLUMNS:
        if column not in {c["name"] for c in inspector.get_columns(table)}:
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}")
