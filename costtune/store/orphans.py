"""What a dead controller left open: its running trials' attempts, and how recovery closes them.

Recovery asks each open attempt's provider how it really ended (``orphaned_attempts``), then
closes them all in one transaction (``recover_orphans``). The rules, for every path:

- an attempt is never booked as ending before it started, nor for a negative time;
- without its resource's record, it is billed from its start to the last evidence that it ran: its
  controller's last heartbeat or its own last report, whichever is later (a heartbeat from before
  the attempt started is no evidence of it); with no such evidence, a process known to have run
  (a pid, a report) is billed one millisecond (one billing granule), anything else nothing;
- an attempt of a provider whose resources only their own host can see (a local process) that
  ran on another host is left open, with its trial and the money it holds: this host cannot tell
  whether it still runs. ``Orphan.left_open`` says so; its own host settles it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from costtune.history import TrialState
from costtune.money import charge_micros
from costtune.store.models import AttemptRow, ReportRow, TrialRow, utcnow
from costtune.store.owner import hostname
from costtune.store.records import AttemptEnd, OpenAttempt, Orphan, joined_note, lock_study

HOST_BOUND = frozenset({"local"})  # providers whose attempts only the host that ran them can see


def away(attempt: AttemptRow, host_bound: Collection[str]) -> bool:
    """An attempt this host cannot see: a host-bound provider's, run on another host."""
    return attempt.provider in host_bound and bool(attempt.host) and attempt.host != hostname()


class OrphanBook:
    """Mixed into ``Store``; every method is one transaction."""

    _tx: Callable[[], AbstractContextManager[Session]]
    _recost_trial: Callable[[Session, int], None]

    def orphaned_attempts(
        self, study_id: int, is_alive: Callable[[str, datetime | None], bool], *,
        host_bound: Collection[str] = HOST_BOUND,
    ) -> list[OpenAttempt]:
        """Open attempts of running trials whose controller is gone: what ``recover_orphans`` will close
        (attempts left open because another host ran them are not listed).

        Read only; recovery asks each attempt's provider how it really ended before closing it.
        """
        with self._tx() as s:
            rows = s.exec(
                select(TrialRow, AttemptRow)
                .join(AttemptRow, col(AttemptRow.trial_id) == col(TrialRow.id))
                .where(TrialRow.study_id == study_id, TrialRow.state == TrialState.RUNNING,
                       col(AttemptRow.ended_at).is_(None))
            ).all()
            return [
                OpenAttempt(attempt.id, trial.number, attempt.number, attempt.idempotency_key,  # type: ignore[arg-type]
                            attempt.provider, trial.output_dir, aware(attempt.started_at))
                for trial, attempt in rows
                if not (trial.owner and is_alive(trial.owner, trial.heartbeat_at)) and not away(attempt, host_bound)
            ]

    def recover_orphans(
        self, study_id: int, is_alive: Callable[[str, datetime | None], bool], *,
        ends: Mapping[int, AttemptEnd] | None = None, host_bound: Collection[str] = HOST_BOUND,
    ) -> list[Orphan]:
        """Re-queue running trials whose controller is gone; book their open attempts as interrupted.

        An attempt in ``ends`` (attempt id -> how it really ended, from its resource's own record) is
        billed from its resource's start to its end. Any other attempt that held a machine is billed up
        to the last evidence that it ran (see the module docstring), and its note says so; a simulated
        attempt keeps what its reports booked (its time is virtual). Either way it is charged with the
        billing rule it was launched under, and never below what was booked already. A trial with an
        attempt another host ran (``host_bound`` providers) is left as it is (``Orphan.left_open``).
        Returns what may still need killing, and what was left open.
        """
        ends = ends or {}
        orphans: list[Orphan] = []
        with self._tx() as s:
            lock_study(s, study_id)
            rows = s.exec(
                select(TrialRow).where(TrialRow.study_id == study_id, TrialRow.state == TrialState.RUNNING)
            ).all()
            for trial in rows:
                if trial.owner and is_alive(trial.owner, trial.heartbeat_at):
                    continue
                open_attempts = s.exec(
                    select(AttemptRow).where(AttemptRow.trial_id == trial.id, col(AttemptRow.ended_at).is_(None))
                ).all()
                elsewhere = [a for a in open_attempts if away(a, host_bound)]
                if elsewhere:
                    orphans.append(Orphan(trial.number, elsewhere[0].host, elsewhere[0].pid, left_open=True))
                    continue
                last_reports = dict(s.exec(
                    select(ReportRow.attempt_id, func.max(ReportRow.created_at))
                    .where(col(ReportRow.attempt_id).in_([a.id for a in open_attempts] or [-1]))
                    .group_by(col(ReportRow.attempt_id))
                ).all())
                for attempt in open_attempts:
                    _close(attempt, ends.get(attempt.id),  # type: ignore[arg-type]
                           trial.heartbeat_at, last_reports.get(attempt.id))
                    s.add(attempt)
                    orphans.append(Orphan(trial.number, attempt.host, attempt.pid))
                trial.state = TrialState.QUEUED
                trial.owner = None
                s.add(trial)
                self._recost_trial(s, trial.id)  # type: ignore[arg-type]
                if not open_attempts:
                    orphans.append(Orphan(trial.number, None, None))
        return orphans


def _close(attempt: AttemptRow, end: AttemptEnd | None, heartbeat_at: datetime | None,
           last_report_at: datetime | None) -> None:
    """Book one orphaned attempt as interrupted (see the module docstring for the rules)."""
    started = aware(attempt.started_at)
    if end is not None:
        held_ms, ended_at = max(0, end.billable_ms), max(aware(end.ended_at), started)
        attempt.exit_code, attempt.note = end.exit_code, joined_note(attempt.note, end.note or "")
    elif attempt.provider == "simulated":
        held_ms, ended_at = 0, max(aware(heartbeat_at or utcnow()), started)
    else:
        signs = [aware(t) for t in (heartbeat_at, last_report_at) if t is not None]
        last = max(signs, default=started)
        if last > started:
            held_ms, ended_at = int((last - started).total_seconds() * 1000), last
            which = "its own last report" if last_report_at is not None and aware(last_report_at) == last \
                else "its controller's last heartbeat"
            attempt.note = joined_note(attempt.note, f"billed to {which}: no record of when it ended")
        else:
            ran = last_report_at is not None or attempt.pid is not None
            held_ms = 1 if ran else 0
            ended_at = started + timedelta(milliseconds=held_ms)
            billed = "its first billing granule" if ran else "nothing (it may never have started)"
            attempt.note = joined_note(attempt.note, f"no sign of life after its start and no record of when it ended: "
                                                 f"billed {billed}")
    attempt.ended_at = ended_at
    attempt.billable_ms = max(attempt.billable_ms, held_ms)
    attempt.cost_micros = max(attempt.cost_micros, charge_micros(
        attempt.billable_ms, attempt.rate_micros_per_hour, granularity_s=attempt.bill_granule_s,
        minimum_s=attempt.bill_minimum_s))
    attempt.exit_reason = "interrupted"


def aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back without a zone; they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
