"""Queueing and claiming trials (mixed into ``Store``): ``enqueue``, ``claim_next``.

Everything here hands out something unique (a trial number, a queued configuration) inside one
transaction that holds the study's lock, so any number of workers on any number of machines can
share a study without two of them running the same trial.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import DateTime, bindparam, func, text, update
from sqlmodel import Session, select

from costtune.errors import SamplerExhausted, SpecError, StudyNotFound
from costtune.history import History, Mode, TrialState
from costtune.store.caps import raise_trial_budget
from costtune.store.models import AttemptRow, StudyRow, TrialRow, utcnow
from costtune.store.records import ClaimedTrial, Proposal, Propose, lock_study
from costtune.store.trialcache import TrialCache
from costtune.words import plural

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


class TrialQueue:
    """Mixed into ``Store``: the trial queue and the claim of the next trial to run."""

    _tx: Callable[[], AbstractContextManager[Session]]
    trial_cache: TrialCache

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
