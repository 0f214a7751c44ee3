"""Transactional operations on the store, for every backend sqlmodel speaks.

Everything that hands out something unique (a trial number, a grid combination, a queued
configuration) happens inside one transaction that holds the study's lock, so any number of
worker threads or processes on any number of machines can share a study.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import insert, inspect
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from costtune.errors import StoreError, StudyNotFound
from costtune.history import Mode, TrialState
from costtune.names import check_study_name
from costtune.store.admin import StudyAdmin, not_found_hint
from costtune.store.attempts import AttemptBook
from costtune.store.audit import AuditBook, AuditEntry, add_audit, current_actor
from costtune.store.caps import CAP_ACTION, CapBook, CapChange, study_scope
from costtune.store.claiming import TrialQueue
from costtune.store.control import ControlBook
from costtune.store.engine import mask_url, opening, refuse_foreign_sqlite, resolve_db_url
from costtune.store.ledger import LedgerBook
from costtune.store.models import (
    ADDED_COLUMNS,
    SCHEMA_VERSION,
    MetaRow,
    StudyRow,
    TrialRow,
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

__all__ = ["AttemptEnd", "AttemptInfo", "AuditEntry", "CapChange", "ClaimedTrial", "OpenAttempt", "Orphan", "Proposal",
           "Propose", "RemoteConflict", "RemoteState", "Store", "StudyInfo", "study_scope"]


_SCHEMA_LOCK_KEY = 0x636F7374  # pg_advisory_xact_lock key held while creating the tables ("cost")


class Store(AttemptBook, OrphanBook, LedgerBook, StudyAdmin, CapBook, AuditBook, RemoteBook, ScheduleBook, ModelBook,
            ControlBook, PolicyBook, TrialReads, TrialQueue):
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


def _add_missing_columns(conn: Any) -> None:
    """Bring a store made by an older costtune up to this schema (columns only ever get added)."""
    inspector = inspect(conn)
    for table, column, ddl in ADDED_COLUMNS:
        if column not in {c["name"] for c in inspector.get_columns(table)}:
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}")
