"""Schedules and their runs in the store: each fire time is claimed exactly once.

A claim is one transaction that locks the schedule row (``SELECT ... FOR UPDATE`` on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite), reads its ``next_fire_s``, records what became of every due fire
time (a run to start, ``skipped`` by coalescing or overlap, ``missed`` beyond the grace) and moves
``next_fire_s`` past now. A second scheduler process that claims the same schedule a moment later
finds nothing due and backs off; the unique (schedule, fire time) pair refuses a double claim even
if the lock were bypassed. Times are whole epoch seconds from the caller's clock (injectable).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from costtune.clock import iso
from costtune.errors import InputError, StoreError
from costtune.spec.schedule_settings import ScheduleSettings
from costtune.spec.schedule_timing import Trigger, fire_times, next_fire
from costtune.store.models import utcnow
from costtune.store.schedule_models import ScheduleRow, ScheduleRunRow

ACTIVE = ("claimed", "running")
MISSED_ROWS = 20  # at most this many missed fire times get a row each per claim; the newest is told the count


@dataclass(frozen=True)
class ScheduleInfo:
    id: int
    name: str
    trigger: Trigger
    sweep: dict[str, Any]
    sweep_source: str | None
    settings: ScheduleSettings
    paused: bool
    next_fire_s: int | None


@dataclass(frozen=True)
class RunInfo:
    id: int
    schedule_id: int
    fire_s: int
    manual: bool
    state: str
    reason: str | None
    study_name: str | None
    owner: str | None
    heartbeat_s: int | None
    finished_s: int | None
    summary: dict[str, Any] | None


def _schedule(row: ScheduleRow) -> ScheduleInfo:
    return ScheduleInfo(row.id, row.name, Trigger.from_dict(json.loads(row.trigger_json)),  # type: ignore[arg-type]
                        json.loads(row.sweep_json), row.sweep_source,
                        ScheduleSettings.from_dict(json.loads(row.settings_json)), row.paused, row.next_fire_s)


def _run(row: ScheduleRunRow) -> RunInfo:
    return RunInfo(row.id, row.schedule_id, row.fire_s, row.manual, row.state, row.reason,  # type: ignore[arg-type]
                   row.study_name, row.owner, row.heartbeat_s, row.finished_s,
                   None if row.summary_json is None else json.loads(row.summary_json))


def _next_s(trigger: Trigger, after_s: int) -> int | None:
    nxt = next_fire(trigger, datetime.fromtimestamp(after_s, UTC))
    return None if nxt is None else int(nxt.timestamp())


class ScheduleBook:
    """Mixed into ``Store``; every method is one transaction."""

    _tx: Callable[[], AbstractContextManager[Session]]

    # -- schedules -------------------------------------------------------------------------
    def add_schedule(self, name: str, *, trigger: Trigger, sweep: dict[str, Any], sweep_source: str | None,
                     settings: ScheduleSettings, now_s: int, paused: bool = False) -> ScheduleInfo:
        """Store a schedule; ``InputError`` when the name is taken (nothing stored)."""
        with self._tx() as s:
            if s.exec(select(ScheduleRow).where(ScheduleRow.name == name)).first() is not None:
                raise InputError(f"schedule: {name!r} already exists (use `costtune schedule update {name}`)")
            row = ScheduleRow(name=name, trigger_json=json.dumps(trigger.to_dict()), sweep_json=json.dumps(sweep),
                              sweep_source=sweep_source, settings_json=json.dumps(settings.to_dict()),
                              paused=paused, next_fire_s=_next_s(trigger, now_s))
            s.add(row)
            try:
                s.flush()
            except IntegrityError:
                raise InputError(f"schedule: {name!r} already exists") from None
            return _schedule(row)

    def find_schedule(self, name: str) -> ScheduleInfo | None:
        with self._tx() as s:
            row = s.exec(select(ScheduleRow).where(ScheduleRow.name == name)).first()
            return None if row is None else _schedule(row)

    def get_schedule(self, name: str) -> ScheduleInfo:
        info = self.find_schedule(name)
        if info is None:
            names = [i.name for i in self.list_schedules()]
            same = [n for n in names if n.lower() == name.lower()]
            hint = f"; names are case-sensitive, like study names: did you mean {same[0]!r}?" if same else ""
            raise InputError(f"schedule: no schedule named {name!r} (schedules: {', '.join(names) or 'none'}){hint}")
        return info

    def list_schedules(self) -> list[ScheduleInfo]:
        with self._tx() as s:
            return [_schedule(r) for r in s.exec(select(ScheduleRow).order_by(col(ScheduleRow.name)))]

    def update_schedule(self, name: str, *, now_s: int, trigger: Trigger | None = None,
                        sweep: dict[str, Any] | None = None, sweep_source: str | None = None,
                        settings: ScheduleSettings | None = None, paused: bool | None = None) -> ScheduleInfo:
        """Change what is given. A new trigger, or resuming a paused schedule, sets the next fire
        time from ``now_s``: fire times that passed while paused are not run."""
        with self._tx() as s:
            row = self._lock(s, name)
            if trigger is not None:
                row.trigger_json = json.dumps(trigger.to_dict())
            if sweep is not None:
                row.sweep_json = json.dumps(sweep)
                row.sweep_source = sweep_source
            if settings is not None:
                row.settings_json = json.dumps(settings.to_dict())
            if trigger is not None or (paused is False and row.paused):
                row.next_fire_s = _next_s(Trigger.from_dict(json.loads(row.trigger_json)), now_s)
            if paused is not None:
                row.paused = paused
            row.updated_at = utcnow()
            s.add(row)
            return _schedule(row)

    def remove_schedule(self, name: str) -> int:
        """Delete a schedule and its run records (studies and model versions stay); the runs removed.
        ``InputError`` while one of its runs is active."""
        with self._tx() as s:
            row = self._lock(s, name)
            runs = s.exec(select(ScheduleRunRow).where(ScheduleRunRow.schedule_id == row.id)).all()
            active = [r for r in runs if r.state in ACTIVE]
            if active:
                raise InputError(f"schedule: {name!r} has a run in progress (study {active[0].study_name}); "
                                 "pause it and remove it when the run has ended")
            for r in runs:
                s.delete(r)
            s.flush()
            s.delete(row)
            return len(runs)

    @staticmethod
    def _lock(s: Session, name: str) -> ScheduleRow:
        row = s.exec(select(ScheduleRow).where(ScheduleRow.name == name).with_for_update()
                     .execution_options(populate_existing=True)).first()
        if row is None:
            raise InputError(f"schedule: no schedule named {name!r}")
        return row

    # -- claims ----------------------------------------------------------------------------
    def claim_due(self, name: str, *, now_s: int, owner: str, stale_s: int = 300) -> RunInfo | None:
        """The run this process must start now for schedule ``name``, or None (nothing due, paused,
        claimed by another process, or recorded as skipped / missed / queued).

        Due fire times in ``(last claim, now]`` are settled here: older than the grace, ``missed``;
        with coalescing, all but the newest ``skipped``; while another run is active, the newest is
        ``skipped`` or ``queued`` (the ``overlap`` setting). Then, when nothing is active, a
        resumable run (``interrupted``, ``queued``, or active with a heartbeat older than
        ``stale_s``) is taken over before anything new.
        """
        try:
            with self._tx() as s:
                row = self._lock(s, name)
                settings = ScheduleSettings.from_dict(json.loads(row.settings_json))
                trigger = Trigger.from_dict(json.loads(row.trigger_json))
                runs = s.exec(select(ScheduleRunRow).where(ScheduleRunRow.schedule_id == row.id)
                              .order_by(col(ScheduleRunRow.fire_s))).all()
                active = [r for r in runs if r.state in ACTIVE and (r.heartbeat_s or 0) > now_s - stale_s]
                resume = None if active else _resumable(runs, now_s, stale_s)
                start: list[ScheduleRunRow] = []
                if not row.paused and row.next_fire_s is not None and row.next_fire_s <= now_s:
                    unfinished = bool(active) or resume is not None  # oldest first: it goes before new ones
                    start = self._settle_due(s, row, trigger, settings, now_s, busy=unfinished)
                    row.next_fire_s = _next_s(trigger, now_s)
                    s.add(row)
                if active:
                    return None
                pick = resume if resume is not None else (start[0] if start else None)
                if pick is None:
                    return None
                pick.state, pick.owner, pick.heartbeat_s, pick.claimed_s = "claimed", owner, now_s, now_s
                s.add(pick)
                s.flush()
                return _run(pick)
        except IntegrityError:  # another scheduler claimed the same fire time first: back off
            return None

    @staticmethod
    def _settle_due(s: Session, row: ScheduleRow, trigger: Trigger, settings: ScheduleSettings, now_s: int,
                    *, busy: bool) -> list[ScheduleRunRow]:
        after = datetime.fromtimestamp(row.next_fire_s - 1, UTC)  # type: ignore[operator]
        due = [int(t.timestamp()) for t in fire_times(trigger, after, datetime.fromtimestamp(now_s, UTC))]
        late = [f for f in due if now_s - f > settings.misfire_grace_s]
        timely = [f for f in due if now_s - f <= settings.misfire_grace_s]
        for i, f in enumerate(late[-MISSED_ROWS:]):
            note = f"misfire: {now_s - f}s late, more than misfire_grace {settings.misfire_grace_s}s"
            if i == len(late[-MISSED_ROWS:]) - 1 and len(late) > MISSED_ROWS:
                note += f" ({len(late)} fire times missed in all)"
            s.add(ScheduleRunRow(schedule_id=row.id, fire_s=f, state="missed", reason=note, finished_s=now_s))
        if settings.coalesce and len(timely) > 1:
            for f in timely[:-1]:
                s.add(ScheduleRunRow(schedule_id=row.id, fire_s=f, state="skipped", finished_s=now_s,
                                     reason=f"coalesced into the run of {iso(timely[-1])}"))
            timely = timely[-1:]
        out: list[ScheduleRunRow] = []
        for f in timely:
            if busy or out:
                state = "queued" if settings.overlap == "queue" else "skipped"
                reason = "the previous run was still running" + (" (overlap: queue)" if state == "queued" else "")
                s.add(ScheduleRunRow(schedule_id=row.id, fire_s=f, state=state, reason=reason,
                                     finished_s=None if state == "queued" else now_s))
            else:
                run = ScheduleRunRow(schedule_id=row.id, fire_s=f, state="claimed")
                s.add(run)
                out.append(run)
        s.flush()  # a fire time claimed by another process raises IntegrityError here
        return out

    def claim_manual(self, name: str, *, now_s: int, owner: str, stale_s: int = 300) -> RunInfo:
        """A run for ``schedule run-now`` at ``now_s``; ``InputError`` while another run is active
        (with ``overlap: queue`` it is queued instead and returned in state ``queued``)."""
        with self._tx() as s:
            row = self._lock(s, name)
            settings = ScheduleSettings.from_dict(json.loads(row.settings_json))
            runs = s.exec(select(ScheduleRunRow).where(ScheduleRunRow.schedule_id == row.id)).all()
            active = [r for r in runs if r.state in ACTIVE and (r.heartbeat_s or 0) > now_s - stale_s]
            fire = max([now_s] + [r.fire_s + 1 for r in runs if r.fire_s >= now_s])
            if active and settings.overlap == "skip":
                raise InputError(f"schedule: {name!r} has a run in progress (study {active[0].study_name}); "
                                 "runs of one schedule never overlap")
            run = ScheduleRunRow(schedule_id=row.id, fire_s=fire, manual=True,
                                 state="queued" if active else "claimed", owner=None if active else owner,
                                 heartbeat_s=None if active else now_s, claimed_s=now_s,
                                 reason="run-now" + (" (queued behind the running one)" if active else ""))
            s.add(run)
            s.flush()
            return _run(run)

    def update_run(self, run_id: int, *, owner: str, state: str | None = None, reason: str | None = None,
                   study_name: str | None = None, summary: dict[str, Any] | None = None,
                   heartbeat_s: int | None = None, finished_s: int | None = None) -> RunInfo:
        """Change a run this process owns; ``StoreError`` when another process took it over.
        ``None`` leaves a field as it is; ``reason=""`` clears the reason."""
        with self._tx() as s:
            row = s.exec(select(ScheduleRunRow).where(ScheduleRunRow.id == run_id).with_for_update()).first()
            if row is None or row.owner != owner:
                raise StoreError(f"schedule run {run_id} is no longer owned by this scheduler")
            for key, value in (("state", state), ("reason", reason), ("study_name", study_name),
                               ("heartbeat_s", heartbeat_s), ("finished_s", finished_s)):
                if value is not None:
                    setattr(row, key, value)
            if reason == "":
                row.reason = None
            if summary is not None:
                row.summary_json = json.dumps(summary, default=str)
            s.add(row)
            return _run(row)

    def schedule_runs(self, schedule_id: int, limit: int | None = None) -> list[RunInfo]:
        """The schedule's runs, newest fire time first."""
        with self._tx() as s:
            query = select(ScheduleRunRow).where(ScheduleRunRow.schedule_id == schedule_id) \
                .order_by(col(ScheduleRunRow.fire_s).desc())
            if limit is not None:
                query = query.limit(limit)
            return [_run(r) for r in s.exec(query)]


def _resumable(runs: Any, now_s: int, stale_s: int) -> ScheduleRunRow | None:
    """An interrupted or crashed run first (its study resumes), else the oldest queued one."""
    for r in runs:
        if r.state == "interrupted" or (r.state in ACTIVE and (r.heartbeat_s or 0) <= now_s - stale_s):
            return r
    return next((r for r in runs if r.state == "queued"), None)
