"""In-process studies with the feel of Optuna: create or load, optimize, or ask/tell.

A study is a name in the store plus a sampler and a scheduler rebuilt from what the store holds,
so any number of processes can open the same study and share its trials. In-process trials are
charged for their wall time at the study's rate, hold their money in the ledger like any other
trial, and are judged at dollar rungs as they report (``books.py``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from costtune.errors import BudgetExhausted, InputError, SamplerExhausted, SpecError, StoreError, TrialFailed
from costtune.history import FrozenTrial, History, Mode, TrialState
from costtune.money import micros_to_usd, rate_to_micros, usd_to_micros
from costtune.names import check_config_names
from costtune.protocol import nonfinite_objective, value_text
from costtune.samplers import Sampler, make_sampler
from costtune.samplers.novelty import avoid_repeat, finite_size
from costtune.schedulers import (
    Decision,
    FifoScheduler,
    RungScheduler,
    Scheduler,
    make_curve_scheduler,
    make_rung_scheduler,
)
from costtune.schedulers.replay import replay_rungs
from costtune.schedulers.rungs import enter_finished
from costtune.space import SearchSpace
from costtune.store import CapChange, ClaimedTrial, Proposal, Store, StudyInfo
from costtune.store.owner import controller_id, hostname, is_alive
from costtune.study.books import IN_PROCESS_BILLING, Books, Running
from costtune.study.output import claim_output_dir, default_output_root
from costtune.study.trial import Trial
from costtune.words import BUDGET_STOP

log = logging.getLogger("costtune.study")
_EXIT = {TrialState.COMPLETE: "completed", TrialState.STOPPED: "stopped", TrialState.QUEUED: "interrupted"}


def screen_metrics(metrics: dict[str, Any], objective: str, step: int,
                   number: int) -> tuple[dict[str, float], str | None]:
    """The one rule for non-finite values, for ``trial.report`` and ``Study.tell`` alike.

    Returns (the finite metrics, why the trial fails or None): a NaN or infinite objective fails
    the trial ("objective val_loss was NaN at step 3"); any other non-finite metric is dropped
    with a warning.
    """
    kept: dict[str, float] = {}
    for name, value in metrics.items():
        try:
            number_ = float(value)
        except OverflowError:  # an int beyond float range
            number_ = math.inf if value > 0 else -math.inf
        if math.isfinite(number_):
            kept[name] = number_
        elif name == objective:
            return kept, nonfinite_objective(name, value_text(value), step)
        else:
            log.warning("trial %d: metric %s was %s at step %d; dropped", number, name, value_text(value), step)
    return kept, None


class Study:
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

    def claim(self, *, max_trials: int | None = None, with_output_dir: bool = True) -> ClaimedTrial | None:
        """Reserve the next trial for this process (queued first, then a fresh proposal).

        ``with_output_dir=False`` for trials that write nothing (simulated ones).
        """
        if with_output_dir:
            self.ensure_output_dir()
        needs = getattr(self.sampler, "uses_history", True) or self._finite()
        return self.store.claim_next(self.id, self._propose, owner=self.owner, max_trials=max_trials,
                                     output_dir=self.trial_dir if with_output_dir else None, needs_history=needs)

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

    def record_report(self, trial: Trial, step: int, metrics: dict[str, Any]) -> str | None:
        """Store one report of a running trial and judge it; returns why it must stop, or None."""
        if trial.closed:
            raise TrialFailed(trial.failure or f"trial {trial.number} has already ended")
        kept, failure = screen_metrics(metrics, self.metric, step, trial.number)
        if failure is not None:
            self.tell(trial, state=TrialState.FAILED, error=failure)
            trial.failure = failure
            raise TrialFailed(failure)
        if not kept:
            return None
        books = self._money()
        run = books.running.get(trial.attempt_id or -1)
        ms = run.ms() if run else 0
        spend = None
        if run is not None:
            cost = books.billing.charge(ms, run.rate)
            spend = (run.prior + cost, ms, cost)
        frozen = self.store.add_report(trial.id, trial.attempt_id, step, kept, objective=self.metric,
                                       elapsed_s=ms / 1000, spend=spend)
        trial.last_report = frozen
        if run is not None:
            books.on_report(run, ms, kept.get(self.metric))
            if run.stop is not None:
                return run.stop
        if self.scheduler.on_report(frozen, self.history) == Decision.STOP:
            return "the scheduler said stop"
        return None

    def tell(self, trial: Trial, value: float | dict[str, float] | None = None, *,
             state: TrialState = TrialState.COMPLETE, error: str | None = None) -> FrozenTrial:
        """Finish a trial with its objective value (a number, or a dict of metrics).

        A NaN or infinite objective fails it (the same rule as ``trial.report``). Raises
        ``InputError`` for a trial that already finished (told before, or failed by a report),
        naming its state, and for a stored record (``FrozenTrial``) instead of the ``Trial`` from
        ``ask()``; nothing is changed.
        """
        if isinstance(trial, FrozenTrial):  # a stored record (study.trials), not the trial ask() handed out
            if trial.state not in (TrialState.RUNNING, TrialState.QUEUED):
                raise InputError(f"trial {trial.number} has already finished ({trial.state}); a finished trial "
                                 "cannot be told again")
            raise InputError(f"tell takes the Trial that ask() returned, not the stored record of trial "
                             f"{trial.number} (a FrozenTrial)")
        if trial.closed:
            stored = self.store.trial(self.id, trial.number)
            raise InputError(f"trial {trial.number} has already finished ({stored.state}); a finished trial "
                             "cannot be told again")
        if value is not None and state != TrialState.FAILED:
            metrics = value if isinstance(value, dict) else {self.metric: value}
            step = (trial.last_report.last_step or 0) + 1 if trial.last_report else 0
            if any(isinstance(v, bool) or not isinstance(v, int | float) for v in metrics.values()):
                state, error = TrialState.FAILED, f"objective returned {value!r}, not a number or a dict of numbers"
            else:
                kept, failure = screen_metrics(metrics, self.metric, step, trial.number)
                if failure is not None:
                    state, error = TrialState.FAILED, failure
                elif kept:
                    self.store.add_report(trial.id, trial.attempt_id, step, kept, objective=self.metric)
        if state == TrialState.COMPLETE and self.store.trial(self.id, trial.number).value is None:
            state, error = TrialState.FAILED, f"no value for metric {self.metric!r} was reported or returned"
        self._close(trial, state, error)
        return self.store.trial(self.id, trial.number)

    def _close(self, trial: Trial, state: TrialState, error: str | None) -> None:
        """Close the attempt at its wall-clock cost, charge its reservation, finish the trial: one transaction."""
        trial.closed = True
        books = self._money()
        run = books.running.get(trial.attempt_id or -1)
        ms = run.ms() if run else 0
        books.remove(trial.attempt_id or -1, ms)
        cost = books.billing.charge(ms, run.rate) if run else 0
        reason = _EXIT.get(state, "failed")
        if run is not None and state == TrialState.STOPPED and run.stop and run.stop.startswith("budget_usd"):
            reason = "budget"
            if trial.attempt_id is not None:  # `costtune trials STUDY N` shows why it stopped
                self.store.add_attempt_note(trial.attempt_id, f"{BUDGET_STOP}: {run.stop}")
        with self.store.batch():
            if trial.attempt_id is not None:
                self.store.finish_attempt(trial.attempt_id, exit_reason=reason, billable_ms=ms, cost_micros=cost)
            if run is not None and run.reserved:
                self.store.charge(run.key, cost)
            self.store.finish_trial(trial.id, state, error=error)
        if (state == TrialState.COMPLETE and run is not None and run.stop is None and run.rung is not None
                and books.rungs is not None):  # ended on its own below a rung: it enters the ones it missed
            with books.lock:
                enter_finished(books.rungs, run.number, run.rung, self.store.trial(self.id, trial.number).value)

    def verdict(self, trial: Trial) -> tuple[str | None, bool]:
        """(why it must stop or None, whether it ran its whole ladder) for a running trial."""
        run = self._money().running.get(trial.attempt_id or -1)
        return (run.stop, run.complete) if run else (trial.stop_reason, False)

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

