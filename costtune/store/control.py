"""Requests to a running sweep from outside its controller: pause/resume launches, stop a trial; and
what its runs leave for others to read: why the last one stopped (``set_last_stop``).

The dashboard (or any process sharing the store) writes them; every controller of the study reads
them about once a second (``controls``) and obeys: a paused study launches nothing new (running
trials go on), a trial asked to stop is terminated and booked ``stopped`` (its money charged as
usual). Each request is one row and one audit entry (``study.pause``, ``study.resume``,
``trial.stop``) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Field, Session, SQLModel, col, select

from costtune.errors import StoreError, StudyNotFound
from costtune.store.audit import add_audit
from costtune.store.models import StudyRow, TrialRow, utcnow
from costtune.store.records import lock_study

FINISHED = ("complete", "stopped", "failed")


class StudyPauseRow(SQLModel, table=True):
    """A study whose launches are paused (no row: not paused)."""

    __tablename__ = "study_pause"
    study_id: int = Field(primary_key=True)
    actor: str = Field(max_length=300)
    at: datetime = Field(default_factory=utcnow)


class TrialStopRow(SQLModel, table=True):
    """A request to stop one trial, kept until the trial has ended."""

    __tablename__ = "trial_stop"
    trial_id: int = Field(primary_key=True)
    study_id: int = Field(index=True)
    actor: str = Field(max_length=300)
    at: datetime = Field(default_factory=utcnow)


@dataclass(frozen=True)
class Controls:
    """What a study's controllers are asked: ``paused`` launches (by whom, and when: UTC), trial ids to ``stop``."""

    paused: bool
    stop: frozenset[int]
    paused_by: str | None = None
    paused_at: datetime | None = None


class ControlBook:
    """Mixed into ``Store``."""

    _tx: Callable[[], AbstractContextManager[Session]]

    def set_paused(self, study_id: int, paused: bool, *, actor: str) -> bool:
        """Pause (or resume) a study's launches; False when it already was. Audited as study.pause/resume."""
        with self._tx() as s:
            study = s.get(StudyRow, study_id)
            if study is None:
                raise StudyNotFound(f"study id {study_id} does not exist")
            row = s.get(StudyPauseRow, study_id)
            if (row is not None) == paused:
                return False
            if paused:
                s.add(StudyPauseRow(study_id=study_id, actor=actor))
            else:
                s.delete(row)
            add_audit(s, "study.pause" if paused else "study.resume", actor=actor, study_id=study_id,
                      detail={"study": study.name})
            return True

    def request_stop(self, study_id: int, number: int, *, actor: str) -> str:
        """Ask the study's controller to stop trial ``number``; a queued trial is stopped at once.

        Returns the trial's state after the request ("stopping" or "stopped"). Raises
        ``StudyNotFound`` for no such trial and ``StoreError`` for a trial that already ended.
        Audited as trial.stop.
        """
        with self._tx() as s:
            lock_study(s, study_id)  # claims take this lock: a queued trial is stopped or claimed, never both
            trial = s.exec(select(TrialRow).where(TrialRow.study_id == study_id, TrialRow.number == number)
                           .with_for_update()).first()
            if trial is None:
                raise StudyNotFound(f"trial: the study has no trial number {number}")
            if trial.state in FINISHED:
                raise StoreError(f"trial {number} already ended ({trial.state})")
            outcome = "stopping"
            if trial.state == "queued":
                trial.state, trial.finished_at, outcome = "stopped", utcnow(), "stopped"
                trial.error = None
                s.add(trial)
            elif s.get(TrialStopRow, trial.id) is None:
                s.add(TrialStopRow(trial_id=trial.id, study_id=study_id, actor=actor))
            add_audit(s, "trial.stop", actor=actor, study_id=study_id, detail={"trial": number, "was": "queued"
                      if outcome == "stopped" else "running"})
            return outcome

    def controls(self, study_id: int) -> Controls:
        """The study's pause flag (with who paused it and when) and the ids of its running trials asked to
        stop (requests for trials that have ended are dropped here)."""
        with self._tx() as s:
            pause = s.get(StudyPauseRow, study_id)
            rows = s.exec(select(TrialStopRow.trial_id, TrialRow.state)
                          .join(TrialRow, col(TrialRow.id) == col(TrialStopRow.trial_id))
                          .where(TrialStopRow.study_id == study_id)).all()
            done = [tid for tid, state in rows if state in FINISHED]
            for tid in done:
                row = s.get(TrialStopRow, tid)
                if row is not None:
                    s.delete(row)
            return Controls(pause is not None, frozenset(tid for tid, state in rows if state not in FINISHED),
                            None if pause is None else pause.actor, None if pause is None else pause.at)

    def set_last_stop(self, study_id: int, reason: str | None) -> None:
        """Record why the study's run stopped (``reason``, as the run said it), or clear it (None) as a run
        starts, so `costtune studies` never shows an earlier run's reason for one that goes on or died."""
        with self._tx() as s:
            s.execute(update(StudyRow).where(col(StudyRow.id) == study_id).values(last_stop=reason))

    def paused_studies(self) -> set[int]:
        with self._tx() as s:
            return set(s.exec(select(StudyPauseRow.study_id)).all())


__all__ = ["ControlBook", "Controls", "StudyPauseRow", "TrialStopRow"]
