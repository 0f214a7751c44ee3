"""Writes a batch holds back: reports, and the savepoints around them, until something else needs the store.

A simulated sweep books one report per virtual moment, and each moment's work runs inside a
savepoint (one attempt's trouble must not undo the others'). Written one by one, the three
statements of a report and the two of its savepoint are most of a forecast's time. Inside a batch
the controller's reports are therefore queued here, and a savepoint costs nothing until a statement
is really run inside it:

- any other store call in the batch first *settles*: it runs the queued reports, issuing each
  pending savepoint at its place among them, so every statement still runs in the order it was
  asked for and inside the savepoints it was asked in;
- a savepoint left with an error drops the reports queued inside it (and rolls back what it ran);
- the batch settles before it commits, and drops the queue when it rolls back.

Queued reports are written with one ``executemany`` per statement; of a trial's (and an attempt's)
running totals only the last write is made, as the ones before it would be overwritten in the same
transaction. A report's ``created_at`` is the moment the batch wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import DateTime, bindparam, text
from sqlmodel import Session

from costtune.store.models import utcnow

# The report path as plain SQL with named parameters: SQLAlchemy runs it on PostgreSQL, and on SQLite
# the DBAPI runs the very same text (sqlite3 speaks ``:name`` too).
INSERT_REPORT = ("INSERT INTO report (trial_id, attempt_id, step, metrics_json, elapsed_s, cost_micros, created_at) "
                 "VALUES (:trial_id, :attempt_id, :step, :metrics_json, :elapsed_s, :cost_micros, :created_at)")
UPDATE_TRIAL = ("UPDATE trial SET metrics_json = :merged_json, last_step = :step, value = :value, "
                "cost_micros = :cost_micros WHERE id = :trial_id")
UPDATE_ATTEMPT = ("UPDATE attempt SET billable_ms = :attempt_ms, cost_micros = :attempt_cost WHERE id = :attempt_id "
                  "AND ended_at IS NULL")
_STATEMENTS = {sql: text(sql).bindparams(bindparam("created_at", type_=DateTime(timezone=True)))
               if ":created_at" in sql else text(sql) for sql in (INSERT_REPORT, UPDATE_TRIAL, UPDATE_ATTEMPT)}
_SAVEPOINT = "costtune_step"
_KEY = "costtune_pending"


@dataclass
class _Savepoint:
    mark: int  # queued reports before it (they belong to the enclosing scope)
    issued: bool = False


class Pending:
    """The held-back writes of one batch session (see the module doc)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.reports: list[dict[str, Any]] = []
        self.savepoints: list[_Savepoint] = []
        self._dbapi: Any = None

    @staticmethod
    def of(session: Session) -> Pending | None:
        return session.info.get(_KEY)

    @staticmethod
    def attach(session: Session) -> Pending:
        pending = Pending(session)
        session.info[_KEY] = pending
        return pending

    def detach(self) -> None:
        self.session.info.pop(_KEY, None)
        self.reports.clear()
        self.savepoints.clear()

    # -- queueing ------------------------------------------------------------------------------
    def add_report(self, params: dict[str, Any]) -> None:
        self.reports.append(params)

    def enter_savepoint(self) -> _Savepoint:
        point = _Savepoint(mark=len(self.reports))
        self.savepoints.append(point)
        return point

    def leave_savepoint(self, point: _Savepoint, *, failed: bool) -> None:
        """Close ``point`` (the innermost savepoint): release it, or undo what ran and was queued in it."""
        popped = self.savepoints.pop()
        assert popped is point, "savepoints close innermost first"
        if not point.issued:
            if failed:
                del self.reports[point.mark:]
            return
        if failed:
            del self.reports[:]  # all queued since it was issued were queued inside it
            self._execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
            self._execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
            self.session.expire_all()  # what the ORM holds may be what was rolled back
            return
        self.session.flush()  # a failing write shows here, inside its savepoint
        self._execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")

    # -- writing -------------------------------------------------------------------------------
    def settle(self) -> None:
        """Run what is queued, and every pending savepoint at its place: before any other statement."""
        if not self.reports and (not self.savepoints or self.savepoints[-1].issued):
            return
        written = 0
        for point in self.savepoints:
            if point.issued:
                continue
            self.write(self.reports[written:point.mark])
            written = point.mark
            self.session.flush()
            self._execute(f"SAVEPOINT {_SAVEPOINT}")
            point.issued = True
        self.write(self.reports[written:])
        self.reports.clear()
        for point in self.savepoints:
            point.mark = 0

    def write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        now = utcnow()
        trials: dict[int, dict[str, Any]] = {}
        attempts: dict[int, dict[str, Any]] = {}
        for row in rows:
            trials[row["trial_id"]] = row  # the last write of a trial's totals is the one that stays
            attempts[row["attempt_id"]] = row
        # Attempts before trials, each by id: the order the heartbeat and closing lock them in (``AttemptBook``),
        # so two transactions of one store never wait on each other in a circle (a deadlock PostgreSQL breaks
        # by cancelling one of them).
        batches = ((INSERT_REPORT, rows), (UPDATE_ATTEMPT, [attempts[k] for k in sorted(attempts)]),
                   (UPDATE_TRIAL, [trials[k] for k in sorted(trials)]))
        self.session.flush()
        if self.session.connection().dialect.name == "sqlite":
            # The DBAPI directly, inside the same transaction: SQLAlchemy's per-statement work
            # costs several times the SQL here.
            stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's SQLite format
            cursor = self._driver().cursor()
            try:
                for sql, params in batches:
                    cursor.executemany(sql, [{**p, "created_at": stamp} for p in params] if sql is INSERT_REPORT
                                       else params)
            finally:
                cursor.close()
            return
        for sql, params in batches:
            self.session.execute(_STATEMENTS[sql], [{**p, "created_at": now} for p in params]
                                 if sql is INSERT_REPORT else params)

    def _driver(self) -> Any:
        if self._dbapi is None:
            self._dbapi = self.session.connection().connection.driver_connection  # type: ignore[union-attr]
        return self._dbapi

    def _execute(self, sql: str) -> None:
        cursor = self._driver().cursor()
        try:
            cursor.execute(sql)
        finally:
            cursor.close()


def write_report_now(session: Session, params: dict[str, Any]) -> None:
    """One report outside a batch: the same statements, at once."""
    Pending(session).write([params])
