"""Attempts, reports and the money they book: the part of the store a running trial talks to."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, bindparam, func, insert, text, update
from sqlmodel import Session, col, select

from costtune.errors import StoreError
from costtune.history import FrozenTrial, TrialState
from costtune.store.models import AttemptRow, ReportRow, TrialRow, utcnow
from costtune.store.pending import Pending, write_report_now
from costtune.store.records import _frozen, joined_note

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.\-/]+\Z")  # nothing json.dumps would escape
_RECOST_TRIAL = text(
    "UPDATE trial SET cost_micros = (SELECT COALESCE(SUM(cost_micros), 0) FROM attempt WHERE trial_id = :id) "
    "WHERE id = :id"
)
_FINISH_TRIAL = text(
    "UPDATE trial SET state = :state, owner = NULL, finished_at = :finished_at, error = COALESCE(:error, error) "
    "WHERE id = :id"
).bindparams(bindparam("finished_at", type_=DateTime(timezone=True)))


_ATTEMPT = AttemptRow.__table__  # type: ignore[attr-defined]
_INSERT_ATTEMPT = insert(_ATTEMPT).values(
    trial_id=bindparam("trial_id"), number=bindparam("number"), idempotency_key=bindparam("idempotency_key"),
    provider=bindparam("provider"), rate_micros_per_hour=bindparam("rate"), region=bindparam("region"),
    instance_type=bindparam("instance_type"), market=bindparam("market"), host=bindparam("host"),
    start_step=bindparam("start_step"), started_at=bindparam("now"), billable_ms=0, cost_micros=0, waste_micros=0,
    bill_granule_s=bindparam("granularity_s"), bill_minimum_s=bindparam("minimum_s"),
).returning(_ATTEMPT.c.id)
# Closing is first-wins: only an open attempt is closed, and RETURNING says whether this call did it.
_CLOSE_ATTEMPT = (
    update(_ATTEMPT)
    .where(_ATTEMPT.c.id == bindparam("a_id"), _ATTEMPT.c.ended_at.is_(None))
    .values(ended_at=bindparam("a_ended"), exit_reason=bindparam("a_reason"), exit_code=bindparam("a_code"),
            billable_ms=bindparam("a_ms"), cost_micros=bindparam("a_cost"), waste_micros=bindparam("a_waste"))
    .returning(_ATTEMPT.c.trial_id)
)
# A running figure (a heartbeat's, a report's) is booked only on an attempt still open, checked in the same
# statement: on PostgreSQL an UPDATE that waited for a close re-checks ``ended_at`` once the close commits,
# where a read-then-write would put a figure from before the close over the close's final books.
_BOOK_RUNNING = (
    update(_ATTEMPT)
    .where(_ATTEMPT.c.id == bindparam("a_id"), _ATTEMPT.c.ended_at.is_(None))
    .values(billable_ms=bindparam("a_ms"), cost_micros=bindparam("a_cost"))
    .returning(_ATTEMPT.c.trial_id)
)


class AttemptBook:
    """Mixed into ``Store``; every method is one transaction."""

    _tx: Callable[[], AbstractContextManager[Session]]
    _batch: ContextVar[Session | None]

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
        start_step: int = 0,
        granularity_s: int = 1,
        minimum_s: int = 0,
    ) -> int:
        """Open an attempt; ``granularity_s`` / ``minimum_s`` are its provider's billing rule (whole
        granules, minimum charge in seconds), kept so that recovery after a crash bills it the same way."""
        with self._tx() as s:
            return s.execute(_INSERT_ATTEMPT, {
                "trial_id": trial_id, "number": number, "idempotency_key": idempotency_key, "provider": provider,
                "rate": rate_micros_per_hour, "region": region, "instance_type": instance_type, "market": market,
                "host": host, "start_step": start_step, "now": utcnow(), "granularity_s": granularity_s,
                "minimum_s": minimum_s,
            }).scalar_one()

    def set_attempt_pid(self, attempt_id: int, pid: int) -> None:
        with self._tx() as s:
            row = s.get(AttemptRow, attempt_id)
            if row is not None:
                row.pid = pid

    def set_attempt_argv(self, attempt_id: int, argv: Sequence[str]) -> None:
        """Record the command line an attempt runs (its placeholders filled in), for `costtune trials`."""
        with self._tx() as s:
            s.execute(update(AttemptRow).where(col(AttemptRow.id) == attempt_id)
                      .values(argv_json=json.dumps(list(argv))))

    def set_attempt_placement(self, attempt_id: int, *, rate_micros_per_hour: int, market: str,
                              region: str | None) -> None:
        """Record where a cloud launch really placed an attempt and the rate snapshotted there (micro-dollars
        an hour): the market fail-over ended on (spot or on-demand), its region, that offer's price."""
        with self._tx() as s:
            s.execute(update(AttemptRow).where(col(AttemptRow.id) == attempt_id).values(
                rate_micros_per_hour=rate_micros_per_hour, market=market, region=region))

    def add_attempt_note(self, attempt_id: int, note: str) -> None:
        """Add ``note`` to the attempt's note, for `costtune trials STUDY N`: notes accumulate in the order
        they were added, joined by "; " (how it was placed, why the scheduler or the budget stopped it, that it
        completed first), and one already there is not added again. Blank notes and unknown attempts are
        ignored; the stored note keeps its first 2,000 characters."""
        if not note.strip():
            return
        with self._tx() as s:
            kept = s.execute(select(AttemptRow.note).where(col(AttemptRow.id) == attempt_id)).scalar_one_or_none()
            joined = joined_note(kept, note) or ""
            if joined != kept:
                s.execute(update(AttemptRow).where(col(AttemptRow.id) == attempt_id).values(note=joined[:2000]))

    # Older names: both add (a placement note, a stop's reason and a budget stop all belong on the record).
    set_attempt_note = add_attempt_note
    append_attempt_note = add_attempt_note

    def add_report(
        self,
        trial_id: int,
        attempt_id: int | None,
        step: int,
        metrics: dict[str, float],
        *,
        objective: str,
        elapsed_s: float = 0.0,
        spend: tuple[int, int, int] | None = None,
    ) -> FrozenTrial:
        """Store one report (the in-process path; the controller books through ``book_report``).

        ``spend``: (trial spend, attempt billable ms, attempt cost) now, booked with the report;
        without it the report carries the trial's spend as last booked.
        """
        with self._tx() as s:
            booked = None  # the attempt's row first, then the trial's: the order closing locks them in
            if spend is not None and attempt_id is not None:
                booked = self._book_running(s, attempt_id, spend[1], spend[2])
            trial = s.get(TrialRow, trial_id)
            if trial is None:
                raise StoreError(f"trial {trial_id} does not exist")
            if spend is not None and booked is not None:
                trial.cost_micros = spend[0]
            s.add(
                ReportRow(
                    trial_id=trial_id,
                    attempt_id=attempt_id,
                    step=step,
                    metrics_json=json.dumps(metrics),
                    elapsed_s=elapsed_s,
                    cost_micros=trial.cost_micros,  # its spend as booked so far
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

    def book_report(
        self,
        trial_id: int,
        attempt_id: int,
        step: int,
        metrics: dict[str, float],
        *,
        merged: dict[str, float],
        value: float | None,
        elapsed_s: float,
        trial_cost_micros: int,
        attempt_ms: int,
        attempt_cost_micros: int,
    ) -> None:
        """The controller's report path: the caller already knows the merged metrics and the money.

        Three plain statements, no reads; inside a batch they are queued and written with the
        batch's other reports (``store.pending``): a simulated sweep books tens of thousands.
        """
        metrics_json = _metrics_json(metrics)
        same = merged.items() == metrics.items() and list(merged) == list(metrics)  # one metric: the usual case
        params = {"trial_id": trial_id, "attempt_id": attempt_id, "step": step, "metrics_json": metrics_json,
                  "elapsed_s": elapsed_s, "cost_micros": trial_cost_micros,
                  "merged_json": metrics_json if same else json.dumps(merged),
                  "value": value, "attempt_ms": attempt_ms, "attempt_cost": attempt_cost_micros}
        batch = self._batch.get()
        pending = None if batch is None else Pending.of(batch)
        if pending is not None:
            pending.add_report(params)
            return
        with self._tx() as s:
            write_report_now(s, params)

    def heartbeat(self, owner: str, charges: dict[int, tuple[int, int]]) -> None:
        """Keep ``owner``'s trials alive and book the running cost of its attempts.

        ``charges`` maps attempt id -> (billable ms so far, cost in micro-dollars so far).
        """
        now = utcnow()
        with self._tx() as s:
            for attempt_id, (billable_ms, cost) in sorted(charges.items()):  # by id, as the report batch locks
                trial_id = self._book_running(s, attempt_id, billable_ms, cost)
                if trial_id is not None:  # a closed attempt keeps its final books
                    self._recost_trial(s, trial_id)
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
        waste_micros: int = 0,
    ) -> None:
        with self._tx() as s:
            s.flush()
            trial_id = s.execute(_CLOSE_ATTEMPT, {
                "a_id": attempt_id, "a_ended": ended_at or utcnow(), "a_reason": exit_reason, "a_code": exit_code,
                "a_ms": billable_ms, "a_cost": cost_micros, "a_waste": waste_micros,
            }).scalar()
            if trial_id is None:
                return  # closing twice is a no-op: the first close holds the books
            attempt = s.identity_map.get(s.identity_key(AttemptRow, attempt_id))  # type: ignore[arg-type]
            if attempt is not None:
                s.refresh(attempt)
            self._recost_trial(s, trial_id)

    @staticmethod
    def _book_running(s: Session, attempt_id: int, billable_ms: int, cost_micros: int) -> int | None:
        """Book an open attempt's running ms and cost; its trial's id, or None for a closed or unknown attempt."""
        s.flush()
        trial_id = s.execute(_BOOK_RUNNING, {"a_id": attempt_id, "a_ms": billable_ms, "a_cost": cost_micros}).scalar()
        attempt = s.identity_map.get(s.identity_key(AttemptRow, attempt_id))  # type: ignore[arg-type]
        if trial_id is not None and attempt is not None:
            s.refresh(attempt)
        return trial_id

    @staticmethod
    def _recost_trial(s: Session, trial_id: int) -> None:
        s.flush()
        s.execute(_RECOST_TRIAL, {"id": trial_id})
        trial = s.identity_map.get(s.identity_key(TrialRow, trial_id))  # type: ignore[arg-type]
        if trial is not None:
            s.refresh(trial, ["cost_micros"])

    def finish_trial(self, trial_id: int, state: TrialState, *, error: str | None = None) -> None:
        with self._tx() as s:
            s.flush()
            done = s.execute(_FINISH_TRIAL, {"id": trial_id, "state": str(state), "error": error,
                                             "finished_at": utcnow() if state.finished else None})
            if done.rowcount == 0:  # type: ignore[attr-defined]
                raise StoreError(f"trial {trial_id} does not exist")
            trial = s.identity_map.get(s.identity_key(TrialRow, trial_id))  # type: ignore[arg-type]
            if trial is not None:
                s.refresh(trial)

    def replace_params(self, trial_id: int, params: dict[str, Any], *, owner: str) -> None:
        """Give a claimed trial other params before its first launch (the controller moving it to a
        searched placement the budget can fund): only while ``owner`` holds it and no attempt exists, so
        no attempt ever ran on params other than the trial's own. ``StoreError`` otherwise."""
        with self._tx() as s:
            s.flush()
            launched = select(AttemptRow.id).where(AttemptRow.trial_id == trial_id).exists()
            done = s.execute(update(TrialRow).where(
                col(TrialRow.id) == trial_id, col(TrialRow.owner) == owner,
                col(TrialRow.state) == str(TrialState.RUNNING), ~launched).values(params_json=json.dumps(params)))
            if done.rowcount == 0:  # type: ignore[attr-defined]
                raise StoreError(f"trial {trial_id}: its params change only before its first launch, while "
                                 f"this controller holds it")
            trial = s.identity_map.get(s.identity_key(TrialRow, trial_id))  # type: ignore[arg-type]
            if trial is not None:
                s.refresh(trial)

    def record_verdict(self, trial_id: int, rung_micros: int, value: float | None, promoted: bool,
                       reason: str | None = None) -> None:
        """Store a rung verdict when it is made: the level (micro-dollars), the value judged, whether the
        trial was promoted and why (``reason``, as the controller said it; ``costtune trials STUDY N`` shows
        it). A verdict at a level already judged replaces it, reason included. Raises ``StoreError`` for an
        unknown trial."""
        with self._tx() as s:  # column reads and an UPDATE: no ORM row left behind in the controller's batch
            found = s.exec(select(TrialRow.id, TrialRow.verdicts_json, TrialRow.verdict_reasons_json)
                           .where(TrialRow.id == trial_id)).first()
            if found is None:
                raise StoreError(f"trial {trial_id} does not exist")
            kept = [v for v in json.loads(found[1] or "[]") if v[0] != rung_micros]
            text_ = json.dumps(sorted([*kept, [rung_micros, value, promoted]], key=lambda v: v[0]))
            reasons = {k: v for k, v in json.loads(found[2] or "{}").items() if k != str(rung_micros)}
            if reason:
                reasons[str(rung_micros)] = reason
            s.execute(update(TrialRow).where(col(TrialRow.id) == trial_id).values(
                verdicts_json=text_, verdict_reasons_json=json.dumps(reasons) if reasons else None))

    def add_trial_warnings(self, trial_id: int, messages: list[str], count: int, *, keep: int = 20) -> None:
        """Add ``count`` warnings about a trial's output, keeping the first ``keep`` messages."""
        if count <= 0:
            return
        with self._tx() as s:
            trial = s.get(TrialRow, trial_id)
            if trial is None:
                raise StoreError(f"trial {trial_id} does not exist")
            data = json.loads(trial.warnings_json) if trial.warnings_json else {"count": 0, "first": []}
            data["first"] = (data["first"] + list(messages))[:keep]
            data["count"] += count
            trial.warnings_json = json.dumps(data)
            s.add(trial)


def _metrics_json(metrics: dict[str, float]) -> str:
    """``json.dumps(metrics)``, written directly for the usual report: one finite float under a plain name."""
    if len(metrics) == 1:
        ((name, value),) = metrics.items()
        if type(value) is float and math.isfinite(value) and _PLAIN_NAME.match(name):
            return f'{{"{name}": {value!r}}}'  # what json.dumps writes: repr of the float, no escapes needed
    return json.dumps(metrics)


def _aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back without a zone; they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
