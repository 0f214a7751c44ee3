"""Deleting and renaming a study, each in one transaction that holds the study's lock.

What deleting does to the books (the ledger keeps its history consistent):

- the study's own scope (``study:<id>``) closes: its cap and balance rows go with the study, and so
  do reservations that counted against no other scope. A study id can be handed out again, so
  nothing keyed by it may outlive the study;
- money spent stays in the books of every other scope (a team, a day, a month): their balance rows
  are not touched, and a reservation that also counted against them stays as their history,
  detached from the deleted attempt (``attempt_id`` NULL), without the study's scope, and under a
  key marked ``@deleted-<study name>-<id>-<nonce>`` so no later launch can collide with it;
- a reservation still held by a dead controller is settled first: charged at what its attempt
  booked (released when no attempt was booked), so the spend reaches those scopes. ``costtune
  studies delete`` first settles the study exactly as a run's recovery does
  (``costtune.runner.settle``: leftover trees stopped, open attempts billed from their own facts),
  so what its attempts booked is what they really held.

A live controller (``costtune.store.owner.is_alive``) running any of the study's trials makes
deletion fail with ``StudyBusy`` and changes nothing.
"""

from __future__ import annotations

import difflib
import json
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, update
from sqlmodel import Session, col, select

from costtune.errors import StoreError
from costtune.history import TrialState
from costtune.store.control import StudyPauseRow, TrialStopRow
from costtune.store.ledger import HELD
from costtune.store.ledger_models import ReservationRow, ScopeBalanceRow, ScopeCapRow
from costtune.store.models import AttemptRow, ReportRow, StudyRow, TrialRow
from costtune.store.owner import is_alive as owner_alive
from costtune.store.records import lock_study
from costtune.store.remote import delete_remote


class StudyBusy(StoreError):
    """A live controller runs trials of the study: it cannot be deleted or renamed now."""


@dataclass(frozen=True)
class GoneHold:
    """Money held in one scope for attempts whose controller is gone (``StudyAdmin.gone_holds``)."""

    held_micros: int
    cost_micros: int  # what those attempts were charged so far, not yet booked as spent
    owners: tuple[str, ...]  # the dead controllers (``host:pid:start``; empty when a trial names none)


@dataclass(frozen=True)
class DeletedStudy:
    """What ``delete_study`` removed; ``output_dirs`` are the trials' folders (left on disk)."""

    name: str
    trials: int
    attempts: int
    reports: int
    spent_micros: int
    reservations_removed: int
    reservations_kept: int  # history of other scopes, detached from the study
    output_dirs: tuple[str, ...]


def study_scope(study_id: int) -> str:
    """The ledger scope of a study's own cap and spend."""
    return f"study:{study_id}"


class StudyAdmin:
    """Mixed into ``Store``; each method is one transaction."""

    _tx: Callable[[], AbstractContextManager[Session]]
    batch: Callable[[], AbstractContextManager[None]]
    charge: Callable[..., Any]
    release: Callable[..., Any]

    def live_owners(self, study_id: int,
                    is_alive: Callable[[str, datetime | None], bool] = owner_alive) -> dict[str, list[int]]:
        """Controller -> numbers of the study's running trials it owns, for controllers still alive."""
        with self._tx() as s:
            rows = s.exec(select(TrialRow.number, TrialRow.owner, TrialRow.heartbeat_at).where(
                TrialRow.study_id == study_id, TrialRow.state == str(TrialState.RUNNING),
                col(TrialRow.owner).is_not(None))).all()
        out: dict[str, list[int]] = {}
        for number, owner, heartbeat in rows:
            if is_alive(owner, heartbeat):
                out.setdefault(owner, []).append(number)
        return out

    def gone_trials(self, study_id: int,
                    is_alive: Callable[[str, datetime | None], bool] = owner_alive) -> set[int]:
        """Numbers of the study's trials marked running whose controller is gone (read only): nothing
        watches them now; the study's next run (or ``studies delete``) settles them."""
        with self._tx() as s:
            rows = s.exec(select(TrialRow.number, TrialRow.owner, TrialRow.heartbeat_at).where(
                TrialRow.study_id == study_id, TrialRow.state == str(TrialState.RUNNING))).all()
        return {number for number, owner, heartbeat in rows if not (owner and is_alive(owner, heartbeat))}

    def held_by_gone(self, is_alive: Callable[[str, datetime | None], bool] = owner_alive) -> dict[str, int]:
        """Scope -> micro-dollars held for attempts whose controller is gone (read only): money the
        next run of their study settles. A reservation with no attempt booked yet is not counted."""
        return {scope: gone.held_micros for scope, gone in self.gone_holds(is_alive).items()}

    def gone_holds(self, is_alive: Callable[[str, datetime | None], bool] = owner_alive) -> dict[str, GoneHold]:
        """Scope -> what attempts whose controller is gone hold there (read only, settled by the next run of
        their study): the money held, what those attempts were charged so far (the running figure a trial's
        cost shows; the ledger books it as spent only when they are settled), and the dead controllers."""
        with self._tx() as s:
            rows = s.exec(
                select(ReservationRow.scopes_json, ReservationRow.amount_micros, TrialRow.state, TrialRow.owner,
                       TrialRow.heartbeat_at, AttemptRow.cost_micros)
                .join(AttemptRow, col(AttemptRow.idempotency_key) == col(ReservationRow.key))
                .join(TrialRow, col(TrialRow.id) == col(AttemptRow.trial_id))
                .where(ReservationRow.state == HELD)).all()
        out: dict[str, GoneHold] = {}
        for scopes, amount, state, owner, heartbeat, cost in rows:
            if state == str(TrialState.RUNNING) and owner and is_alive(owner, heartbeat):
                continue
            for scope in json.loads(scopes):
                was = out.get(scope, GoneHold(0, 0, ()))
                owners = was.owners if not owner or owner in was.owners else (*was.owners, owner)
                out[scope] = GoneHold(was.held_micros + amount, was.cost_micros + cost, owners)
        return out

    def delete_study(self, study_id: int, *,
                     is_alive: Callable[[str, datetime | None], bool] = owner_alive) -> DeletedStudy:
        """Remove a study with its trials, attempts, reports and its own ledger scope, all or nothing.

        Raises ``StudyBusy`` while a live controller runs one of its trials. Files are left alone:
        the returned ``output_dirs`` say where the trials wrote.
        """
        scope = study_scope(study_id)
        with self.batch(), self._tx() as s:
            study = lock_study(s, study_id)  # claims take this lock too: no trial starts meanwhile
            self._refuse_while_live(study_id, study.name, "and delete it afterwards", is_alive)
            trial_ids = select(TrialRow.id).where(TrialRow.study_id == study_id)
            trials = s.exec(select(TrialRow.output_dir, TrialRow.cost_micros).where(
                TrialRow.study_id == study_id).order_by(col(TrialRow.number))).all()
            attempts = s.exec(select(AttemptRow.id, AttemptRow.idempotency_key, AttemptRow.cost_micros).where(
                col(AttemptRow.trial_id).in_(trial_ids))).all()
            booked = {key: cost for _id, key, cost in attempts}
            reservations = s.exec(select(ReservationRow).where(or_(
                col(ReservationRow.key).in_(list(booked) or [""]),
                col(ReservationRow.scopes_json).contains(json.dumps(scope))))).all()
            removed = kept = 0
            for r in reservations:
                scopes = json.loads(r.scopes_json)
                if scope not in scopes and r.key not in booked:
                    continue
                if r.state == HELD:  # a dead controller's: settle it so other scopes get the spend
                    if r.key in booked:
                        self.charge(r.key, booked[r.key])
                    else:
                        self.release(r.key)
                others = [x for x in scopes if x != scope]
                if others:
                    s.execute(update(ReservationRow).where(col(ReservationRow.id) == r.id).values(
                        attempt_id=None, scopes_json=json.dumps(others),
                        key=f"{r.key}@deleted-{study.name}-{study_id}-{uuid.uuid4().hex[:8]}"[:200]))
                    kept += 1
                else:
                    s.execute(delete(ReservationRow).where(col(ReservationRow.id) == r.id))
                    removed += 1
            s.execute(delete(ScopeCapRow).where(col(ScopeCapRow.scope) == scope))
            s.execute(delete(ScopeBalanceRow).where(col(ScopeBalanceRow.scope) == scope))
            reports = s.execute(delete(ReportRow).where(col(ReportRow.trial_id).in_(trial_ids))).rowcount
            delete_remote(s, [a_id for a_id, _key, _cost in attempts])
            s.execute(delete(AttemptRow).where(col(AttemptRow.trial_id).in_(trial_ids)))
            s.execute(delete(TrialStopRow).where(col(TrialStopRow.study_id) == study_id))
            s.execute(delete(StudyPauseRow).where(col(StudyPauseRow.study_id) == study_id))
            s.execute(delete(TrialRow).where(col(TrialRow.study_id) == study_id))
            s.execute(delete(StudyRow).where(col(StudyRow.id) == study_id))
            s.expunge_all()
            return DeletedStudy(name=study.name, trials=len(trials), attempts=len(attempts), reports=reports,
                                spent_micros=sum(cost for _dir, cost in trials), reservations_removed=removed,
                                reservations_kept=kept,
                                output_dirs=tuple(d for d, _cost in trials if d))

    def _refuse_while_live(self, study_id: int, name: str, then: str,
                           is_alive: Callable[[str, datetime | None], bool]) -> None:
        """Raise ``StudyBusy`` naming each live controller of the study and its trials; ``then``: what to do next."""
        busy = self.live_owners(study_id, is_alive)
        if busy:
            who = "; ".join(f"{owner} (trials {', '.join(map(str, sorted(n)))})" for owner, n in busy.items())
            raise StudyBusy(f"study {name!r} is being run by a live controller: {who}; stop that "
                            f"`costtune run` (Ctrl-C) {then}")

    def rename_study(self, study_id: int, new_name: str, *,
                     is_alive: Callable[[str, datetime | None], bool] = owner_alive) -> None:
        """Give a study another name; raises ``StoreError`` when a study already has it, and ``StudyBusy``
        while a live controller runs one of its trials (it knows the study by its old name).

        The stored sweep (``spec``) takes the new name too, so its sweep file resumes under it. Trials
        keep the output directories recorded with them, and the study its recorded output directory,
        so `logs`, `trials` and a resume find them. The name is not validated here: callers check it
        like a sweep file's ``name``.
        """
        with self.batch(), self._tx() as s:
            study = lock_study(s, study_id)  # claims take this lock too: no trial starts meanwhile
            self._refuse_while_live(study_id, study.name, "or let it finish, then rename it", is_alive)
            taken = s.exec(select(StudyRow.id).where(StudyRow.name == new_name)).first()
            if taken is not None and taken != study_id:
                raise StoreError(f"study {new_name!r} already exists; pick another name or delete it first")
            spec = json.loads(study.spec_json)
            if isinstance(spec, dict) and "name" in spec:
                spec["name"] = new_name
            study.name, study.spec_json = new_name, json.dumps(spec)
            s.add(study)


def not_found_hint(name: str, known: list[str], shown: int = 10) -> str:
    """``; did you mean 'digits-mlp'?`` for close names, else the names the store holds (the first ``shown``)."""
    if not known:
        return "; the store holds no study yet"
    lowered = {k.lower(): k for k in reversed(known)}  # names differing only in case: the first one
    close = [lowered[k] for k in difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)]
    if close:
        return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    more = f" and {len(known) - shown} more (costtune studies)" if len(known) > shown else ""
    return f"; known studies: {', '.join(known[:shown])}{more}"
