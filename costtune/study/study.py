"""In-process studies with the feel of Optuna: create or load, optimize, or ask/tell.

A study is a name in the store plus a sampler and a scheduler rebuilt from what the store holds,
so any number of processes can open the same study and share its trials. In-process trials are
charged for their wall time at the study's rate, hold their money in the ledger like any other
trial, and are judged at dollar rungs as they report (``books.py``). Here: identity, proposals and
starting trials; their reports and ends are booked by ``telling.py`` (mixed in).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from costtune.errors import BudgetExhausted, InputError, SamplerExhausted, SpecError, StoreError
from costtune.history import FrozenTrial, History, Mode, TrialState
from costtune.money import micros_to_usd, rate_to_micros, usd_to_micros
from costtune.names import check_config_names
from costtune.samplers import Sampler, make_sampler
from costtune.samplers.novelty import avoid_repeat, finite_size
from costtune.schedulers import (
    FifoScheduler,
    RungScheduler,
    Scheduler,
    make_curve_scheduler,
    make_rung_scheduler,
)
from costtune.schedulers.replay import replay_rungs
from costtune.space import SearchSpace
from costtune.store import CapChange, ClaimedTrial, Proposal, Store, StudyInfo
from costtune.store.owner import controller_id, hostname, is_alive
from costtune.study.books import IN_PROCESS_BILLING, Books, Running
from costtune.study.output import claim_output_dir, default_output_root
from costtune.study.telling import Telling, screen_metrics
from costtune.study.trial import Trial

__all__ = ["Study", "screen_metrics"]  # screen_metrics: telling.py, kept importable from here


class Study(Telling):
    def __init__(self, store: Store, info: StudyInfo, *, sampler: Sampler | None = None,
                 scheduler: Scheduler | None = None, usd_per_hour: Any = None,
                 output_root: str | Path | None = None) -> None:
        self.store = store
        self.info = info
        if sampler is None and info.sampler.get("type") == "custom":
            raise InputError(f"study {info.name!r} was made with a custom sampler object; pass sampler=")
        self.sampler: Sampler = sampler or make_sampler(info.sampler)
        self.scheduler: Scheduler = scheduler or FifoScheduler()
        self.seed: int = int(info.sampler.get("seed", 0))
        if usd_per_hour is None:  # the rate stored with the study
            usd_per_hour = (info.spec.get("resources") or {}).get("usd_per_hour") or 0
        self.rate_micros_per_hour = rate_to_micros(usd_per_hour, "usd_per_hour")
        self.output_root = Path(output_root) if output_root else None  # where a directory is claimed if it has none
        self.owner = controller_id()
        self.stop_reason: str | None = None  # why the last optimize() ended
        self._space = dict(info.space)
        self._parsed: tuple[dict[str, Any], SearchSpace] | None = None
        self._books: Books | None = None

    # -- identity ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.info.name

    @property
    def id(self) -> int:
        return self.info.id

    @property
    def metric(self) -> str:
        return self.info.metric

    @property
    def mode(self) -> Mode:
        return self.info.mode

    @property
    def budget_usd(self) -> Decimal | None:
        """The study's stored dollar cap (None: no cap)."""
        return None if self.info.budget_usd_micros is None else micros_to_usd(self.info.budget_usd_micros)

    def space_dict(self) -> dict[str, Any]:
        return dict(self._space)

    @property
    def output_dir(self) -> Path:
        """The study's own directory: its trial directories are ``trial-NNNN`` inside."""
        if self.info.output_dir:
            return Path(self.info.output_dir)
        return Path(self.output_root or default_output_root()) / self.name  # not claimed yet (simulated)

    def trial_dir(self, number: int) -> str:
        return str(self.output_dir / f"trial-{number:04d}")

    def ensure_output_dir(self) -> Path:
        """Claim the study's directory if it has none recorded yet (a study made by an older costtune)."""
        if not self.info.output_dir:
            folder = claim_output_dir(self.output_root, self.name, store=self.store.display_url)
            self.store.update_study(self.id, output_dir=str(folder))
            self.info = self.store.get_study(self.name)
        return Path(self.info.output_dir)  # type: ignore[arg-type]

    def set_cap(self, usd: Any, *, reason: str | None = None) -> CapChange:
        """Change the study's dollar cap (None removes it), recorded in the audit trail.

        Takes effect at once for every process and controller of the study (the ledger holds it).
        Raises ``InputError`` for a cap below what the study has spent plus what it holds.
        """
        micros = None if usd is None else usd_to_micros(usd, "budget_usd")
        change = self.store.change_study_cap(self.id, micros, reason=reason or "Study.set_cap", field="budget_usd")
        self.info = self.store.get_study(self.name)
        return change

    # -- proposals -----------------------------------------------------------------------
    def enqueue(self, params: dict[str, Any]) -> int:
        """Queue a configuration of the user's own; queued trials run before sampled ones."""
        if not isinstance(params, dict):
            raise SpecError("params", "must be a mapping of parameter names to values", params)
        check_config_names(params, self._space, "params")  # the sweep file's name rule
        space = SearchSpace.from_dict(self._space) if self._space else None
        config = space.coerce_config(params, path="params") if space else dict(params)
        return self.store.enqueue(self.id, config)

    def claim(self, *, max_trials: int | None = None, with_output_dir: bool = True, skip: Collection[int] = (),
              propose: bool = True) -> ClaimedTrial | None:
        """Reserve the next trial for this process (queued first, then a fresh proposal).

        ``with_output_dir=False`` for trials that write nothing (simulated ones); ``skip``: ids of queued
        trials to pass over (they stay queued); ``propose=False``: no fresh proposal, only queued trials.
        """
        if with_output_dir:
            self.ensure_output_dir()
        needs = getattr(self.sampler, "uses_history", True) or self._finite()
        return self.store.claim_next(self.id, self._propose if propose else None, owner=self.owner,
                                     max_trials=max_trials, output_dir=self.trial_dir if with_output_dir else None,
                                     needs_history=needs, skip=skip)

    def _parse(self, space_dict: dict[str, Any]) -> SearchSpace:
        if self._parsed is None or self._parsed[0] != space_dict:  # parse once, not on every claim
            self._parsed = (dict(space_dict), SearchSpace.from_dict(space_dict))
        return self._parsed[1]

    def _finite(self) -> bool:
        """A finite space: the no-repeat rule needs the trials even when the sampler does not."""
        return bool(self._space) and finite_size(self._parse(self._space)) is not None

    def _propose(self, history: History, number: int, space_dict: dict[str, Any]) -> Proposal:
        """The sampler's proposal under the no-repeat rule (``samplers/novelty.py``)."""
        self._space = dict(space_dict)
        if not space_dict:
            return Proposal({})
        space = self._parse(space_dict)
        names = set(space.names)
        usable = History(history.metric, history.mode,
                         tuple(t for t in history.trials if names <= set(t.params)), history.budget_micros)
        rng = np.random.default_rng([self.seed, number])
        indexed = getattr(self.sampler, "suggest_indexed", None)
        if indexed is not None:  # a grid: never repeats by construction
            params, index = indexed(space, usable, rng)
            return Proposal(params, grid_index=index)
        params = self.sampler.suggest(space, usable, rng)
        return Proposal(avoid_repeat(space, params, (t.params for t in history.trials), rng))

    # -- in-process trials ---------------------------------------------------------------
    def _money(self) -> Books:
        """The books of this process's in-process trials, with the rung scheduler rebuilt from the store."""
        if self._books is None:
            rungs = self._rung_scheduler()
            if rungs is not None and self.rate_micros_per_hour == 0:
                raise SpecError("usd_per_hour", f"study {self.name!r} judges trials at dollar rungs: "
                                "give a rate > 0", 0)
            self.store.sync_study_cap(self.id)  # a study made before its cap was kept in the ledger
            curve = make_curve_scheduler(self.info.spec.get("scheduler") or {"type": "fifo"}, mode=str(self.mode))
            if curve is not None and self.rate_micros_per_hour == 0:
                raise SpecError("usd_per_hour", f"study {self.name!r} judges trials at checkpoints of their spend: "
                                "give a rate > 0", 0)
            self._books = Books(self.store, self.id, rungs=rungs, curve=curve, metric=self.metric)
        return self._books

    def _rung_scheduler(self) -> RungScheduler | None:
        cfg = self.info.spec.get("scheduler")
        if not isinstance(cfg, dict) or cfg.get("type", "fifo") == "fifo":
            return None
        rungs = make_rung_scheduler(cfg, mode=str(self.mode), budget_micros=self.info.budget_usd_micros)
        if rungs is None:
            return None
        history = self.history()
        cover = getattr(rungs, "cover", None)
        if cover is not None:  # iterations a sweep added hold trials of their own
            cover(len(history.trials))
        replay_rungs(rungs, history, self.store.rung_reports(self.id), judged_after=True)
        manual = self.info.sampler.get("type") == "manual"  # stored before manual + bohb was refused: only its configs
        if rungs.kind == "bohb" and not manual and not hasattr(self.sampler, "rung_history"):
            from costtune.samplers.rung_model import RungModelSampler

            inner = self.sampler if self.info.sampler.get("type") == "bayes" else make_sampler({"type": "bayes"})
            self.sampler = RungModelSampler(inner, rungs, min_points=cfg.get("min_points"))
        return rungs

    def _plan_limit(self) -> int | None:
        rungs = self._money().rungs
        return rungs.max_trials() if rungs is not None else None

    def ask(self) -> Trial:
        """Start the next trial. Raises ``SamplerExhausted`` when nothing is left to propose and
        ``BudgetExhausted`` when the study's cap cannot fund it (the trial waits in the queue)."""
        books = self._money()
        while True:
            if not books.room_left(self.rate_micros_per_hour):
                raise BudgetExhausted(f"study {self.name!r}: " + books.refusal(books.least(self.rate_micros_per_hour)))
            claimed = self.claim(max_trials=self._plan_limit())
            if claimed is None:
                raise SamplerExhausted(f"study {self.name!r}: the sampler has nothing left to propose")
            trial = self._start(claimed)
            if trial is not None:
                return trial

    def _start(self, claimed: ClaimedTrial) -> Trial | None:
        """Reserve the trial's first segment and book its attempt; None when it has nothing left to run.

        Raises ``BudgetExhausted`` (after putting the trial back in the queue) when the cap cannot fund it.
        """
        books, rate = self._money(), self.rate_micros_per_hour
        key = f"{self.id}-{claimed.id}-{claimed.attempt_number}"
        try:
            segment = books.first_segment(claimed, rate)
            if segment is None:  # a re-queued trial that already spent its whole ladder
                done = TrialState.COMPLETE if claimed.value is not None else TrialState.STOPPED
                self.store.finish_trial(claimed.id, done)
                return None
            amount, rung = segment
            books.reserve(key, amount)
        except BudgetExhausted:
            self.store.finish_trial(claimed.id, TrialState.QUEUED)
            raise
        try:
            attempt_id = self.store.start_attempt(claimed.id, claimed.attempt_number, idempotency_key=key,
                                                  provider="inprocess", rate_micros_per_hour=rate, host=hostname(),
                                                  granularity_s=IN_PROCESS_BILLING.granularity_s,
                                                  minimum_s=IN_PROCESS_BILLING.minimum_s)
        except BaseException:
            if amount:
                self.store.release(key)
            self.store.finish_trial(claimed.id, TrialState.QUEUED)
            raise
        books.add(Running(claimed.id, claimed.number, attempt_id, key, rate, claimed.prior_cost_micros,
                          started=time.monotonic(), reserved=amount, rung=rung, value=claimed.value))
        return Trial(self, claimed.id, claimed.number, claimed.params, attempt_id, claimed.output_dir)

    def recover(self) -> list[int]:
        """Re-queue trials whose controller died and settle the money they held; returns their numbers."""
        numbers = [o.number for o in self.store.recover_orphans(self.id, is_alive)]
        self.store.settle_reservations(f"study:{self.id}")
        return numbers

    def optimize(self, objective: Callable[[Trial], Any], n_trials: int | None = None, *, n_jobs: int = 1,
                 timeout: float | None = None, catch: Iterable[type[BaseException]] = ()) -> None:
        """Run ``objective`` on new trials until ``n_trials`` ran, time or budget ran out, or the
        sampler is exhausted; ``study.stop_reason`` says which. See ``costtune.study.optimize``."""
        from costtune.study.optimize import optimize

        optimize(self, objective, n_trials, n_jobs=n_jobs, timeout=timeout, catch=tuple(catch))

    # -- reads ---------------------------------------------------------------------------
    def history(self) -> History:
        return self.store.history(self.id)

    @property
    def trials(self) -> list[FrozenTrial]:
        return list(self.history().trials)

    @property
    def best_trial(self) -> FrozenTrial:
        best = self.history().best()
        if best is None:
            raise StoreError(f"study {self.name!r} has no finished trial with a value yet")
        return best

    @property
    def best_value(self) -> float:
        return float(self.best_trial.value)  # type: ignore[arg-type]

    @property
    def best_params(self) -> dict[str, Any]:
        return self.best_trial.params

    def spend_micros(self) -> int:
        return self.store.spend_micros(self.id)

    def pareto_front(self) -> list[FrozenTrial]:
        """Trials no other trial beats on both the metric and the money it cost (cheapest first)."""
        from costtune.reports.cost import pareto_front

        return pareto_front(self.history())

    def add_param(self, trial_id: int, name: str, value: Any, dist: dict[str, Any]) -> None:
        self.store.add_param(self.id, trial_id, name, value, dist)
        self._space[name] = dist

