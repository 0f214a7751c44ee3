"""In-process studies with the feel of Optuna: create or load, optimize, or ask/tell.

A study is a name in the store plus a sampler and a scheduler rebuilt from what the store holds,
so any number of processes can open the same study and share its trials.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from costtune.errors import InputError, SamplerExhausted, SpecError, StopTrial, StoreError
from costtune.history import FrozenTrial, History, Mode, TrialState
from costtune.money import charge_micros, usd_to_micros
from costtune.protocol import current_trial
from costtune.samplers import Sampler, make_sampler, sampler_config
from costtune.schedulers import Decision, Scheduler, make_scheduler
from costtune.space import SearchSpace
from costtune.store import ClaimedTrial, Proposal, Store, StudyInfo, costtune_home
from costtune.store.heartbeat import Heartbeat
from costtune.store.owner import controller_id, hostname, is_alive
from costtune.study.trial import Trial

Objective = Callable[[Trial], float | dict[str, float] | None]


@dataclass
class _Running:
    attempt_id: int
    started: float  # time.monotonic() at launch
    rate_micros_per_hour: int


@dataclass
class _Charges:
    """Running attempts of this process and what they have cost so far."""

    running: dict[int, _Running] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> dict[int, tuple[int, int]]:
        now = time.monotonic()
        with self.lock:
            items = list(self.running.items())
        out = {}
        for attempt_id, run in items:
            ms = int((now - run.started) * 1000)
            out[attempt_id] = (ms, charge_micros(ms, run.rate_micros_per_hour))
        return out


def create_study(
    name: str,
    *,
    storage: str | Store | None = None,
    metric: str = "value",
    mode: str = "min",
    space: dict[str, Any] | SearchSpace | None = None,
    sampler: str | dict[str, Any] | Sampler = "random",
    scheduler: dict[str, Any] | Scheduler | None = None,
    budget_usd: Any = None,
    usd_per_hour: Any = 0,
    load_if_exists: bool = False,
) -> Study:
    """Create a study (or, with ``load_if_exists``, open the existing one of that name)."""
    store = storage if isinstance(storage, Store) else Store(storage)
    if mode not in ("min", "max"):
        raise SpecError("mode", "must be min or max", mode)
    info = store.find_study(name)
    if info is not None and not load_if_exists:
        raise StoreError(f"study {name!r} already exists; pass load_if_exists=True to continue it")
    if info is None:
        search_space = space if isinstance(space, SearchSpace) else (
            SearchSpace.from_dict(space) if space else None
        )
        sampler_cfg = {"type": "custom"} if isinstance(sampler, Sampler) else sampler_config(
            {"type": sampler} if isinstance(sampler, str) else sampler, search_space or SearchSpace({})
        )
        try:
            info = store.create_study(
                name, metric=metric, mode=Mode(mode), space=search_space.to_dict() if search_space else {},
                sampler=sampler_cfg,
                spec={"scheduler": scheduler} if isinstance(scheduler, dict) else {},
                budget_usd_micros=None if budget_usd is None else usd_to_micros(budget_usd, "budget_usd"),
                queued=sampler_cfg.get("configs", []),
            )
        except StoreError:
            if not load_if_exists:
                raise
            info = store.get_study(name)  # another worker created it between our check and insert
    return Study(store, info, sampler=sampler if isinstance(sampler, Sampler) else None,
                 scheduler=scheduler if not isinstance(scheduler, dict) else None, usd_per_hour=usd_per_hour)


def load_study(name: str, *, storage: str | Store | None = None, sampler: Sampler | None = None,
               usd_per_hour: Any = 0) -> Study:
    store = storage if isinstance(storage, Store) else Store(storage)
    return Study(store, store.get_study(name), sampler=sampler, usd_per_hour=usd_per_hour)


class Study:
    def __init__(self, store: Store, info: StudyInfo, *, sampler: Sampler | None = None,
                 scheduler: Scheduler | None = None, usd_per_hour: Any = 0,
                 output_root: str | Path | None = None) -> None:
        self.store = store
        self.info = info
        if sampler is None and info.sampler.get("type") == "custom":
            raise InputError(f"study {info.name!r} was made with a custom sampler object; pass sampler=")
        self.sampler: Sampler = sampler or make_sampler(info.sampler)
        self.scheduler: Scheduler = scheduler or make_scheduler(info.spec.get("scheduler"))
        self.seed: int = int(info.sampler.get("seed", 0))
        self.rate_micros_per_hour = usd_to_micros(usd_per_hour, "usd_per_hour")
        self.output_root = Path(output_root) if output_root else costtune_home() / "runs" / info.name
        self.owner = controller_id()
        self._space = dict(info.space)
        self._parsed: tuple[dict[str, Any], SearchSpace] | None = None
        self._charges = _Charges()

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

    def space_dict(self) -> dict[str, Any]:
        return dict(self._space)

    def trial_dir(self, number: int) -> str:
        return str(self.output_root / f"trial-{number:04d}")

    # -- the loop ------------------------------------------------------------------------
    def enqueue(self, params: dict[str, Any]) -> int:
        """Queue a configuration of the user's own; queued trials run before sampled ones."""
        space = SearchSpace.from_dict(self._space) if self._space else None
        config = space.coerce_config(params, path="params") if space else dict(params)
        return self.store.enqueue(self.id, config)

    def claim(self, *, max_trials: int | None = None, with_output_dir: bool = True) -> ClaimedTrial | None:
        """Reserve the next trial for this process (queued first, then a fresh proposal).

        ``with_output_dir=False`` for trials that write nothing (simulated ones).
        """
        return self.store.claim_next(self.id, self._propose, owner=self.owner, max_trials=max_trials,
                                     output_dir=self.trial_dir if with_output_dir else None,
                                     needs_history=getattr(self.sampler, "uses_history", True))

    def _propose(self, history: History, number: int, space_dict: dict[str, Any]) -> Proposal:
        self._space = dict(space_dict)
        if not space_dict:
            return Proposal({})
        if self._parsed is None or self._parsed[0] != space_dict:  # parse once, not on every claim
            self._parsed = (dict(space_dict), SearchSpace.from_dict(space_dict))
        space = self._parsed[1]
        names = set(space.names)
        usable = History(history.metric, history.mode,
                         tuple(t for t in history.trials if names <= set(t.params)), history.budget_micros)
        rng = np.random.default_rng([self.seed, number])
        indexed = getattr(self.sampler, "suggest_indexed", None)
        if indexed is not None:
            params, index = indexed(space, usable, rng)
            return Proposal(params, grid_index=index)
        return Proposal(self.sampler.suggest(space, usable, rng))

    def ask(self) -> Trial:
        claimed = self.claim()
        if claimed is None:
            raise SamplerExhausted(f"study {self.name!r}: the sampler has nothing left to propose")
        return self._start(claimed)

    def _start(self, claimed: ClaimedTrial) -> Trial:
        attempt_id = self.store.start_attempt(
            claimed.id, claimed.attempt_number, idempotency_key=f"{self.id}-{claimed.id}-{claimed.attempt_number}",
            provider="inprocess", rate_micros_per_hour=self.rate_micros_per_hour, host=hostname(),
        )
        with self._charges.lock:
            self._charges.running[attempt_id] = _Running(attempt_id, time.monotonic(), self.rate_micros_per_hour)
        return Trial(self, claimed.id, claimed.number, claimed.params, attempt_id, claimed.output_dir)

    def tell(self, trial: Trial, value: float | dict[str, float] | None = None, *,
             state: TrialState = TrialState.COMPLETE, error: str | None = None) -> FrozenTrial:
        """Finish a trial with its objective value (a number, or a dict of metrics)."""
        if value is not None and state != TrialState.FAILED:
            metrics = value if isinstance(value, dict) else {self.metric: value}
            if any(not isinstance(v, int | float) or not math.isfinite(v) for v in metrics.values()):
                state, error = TrialState.FAILED, f"objective returned a non-finite value: {metrics!r}"
            else:
                step = (trial.last_report.last_step or 0) + 1 if trial.last_report else 0
                self.store.add_report(trial.id, trial.attempt_id, step, {k: float(v) for k, v in metrics.items()},
                                      objective=self.metric)
        if state == TrialState.COMPLETE and self.store.trial(self.id, trial.number).value is None:
            state, error = TrialState.FAILED, f"no value for metric {self.metric!r} was reported or returned"
        self._close_attempt(trial, {TrialState.COMPLETE: "completed", TrialState.STOPPED: "stopped",
                                    TrialState.QUEUED: "interrupted"}.get(state, "failed"))
        self.store.finish_trial(trial.id, state, error=error)
        return self.store.trial(self.id, trial.number)

    def _close_attempt(self, trial: Trial, reason: str) -> None:
        if trial.attempt_id is None:
            return
        with self._charges.lock:
            run = self._charges.running.pop(trial.attempt_id, None)
        ms = int((time.monotonic() - run.started) * 1000) if run else 0
        self.store.finish_attempt(trial.attempt_id, exit_reason=reason, billable_ms=ms,
                                  cost_micros=charge_micros(ms, run.rate_micros_per_hour if run else 0))

    def record_report(self, trial_id: int, attempt_id: int | None, step: int, metrics: dict[str, float],
                       *, elapsed_s: float = 0.0) -> tuple[FrozenTrial, Decision]:
        frozen = self.store.add_report(trial_id, attempt_id, step, metrics, objective=self.metric,
                                       elapsed_s=elapsed_s)
        return frozen, self.scheduler.on_report(frozen, self.history)

    def recover(self) -> list[int]:
        """Re-queue trials whose controller died; returns their numbers."""
        return [o.number for o in self.store.recover_orphans(self.id, is_alive)]

    def optimize(self, objective: Objective, n_trials: int | None = None, *, n_jobs: int = 1,
                 timeout: float | None = None, catch: Iterable[type[BaseException]] = ()) -> None:
        """Run ``objective`` on new trials until ``n_trials`` ran, time or budget ran out, or the
        sampler is exhausted. Exceptions in ``catch`` mark the trial failed and the loop goes on;
        any other exception marks it failed and is raised."""
        if n_jobs < 1:
            raise SpecError("n_jobs", "must be >= 1", n_jobs)
        self.recover()
        catch = tuple(catch)
        deadline = None if timeout is None else time.monotonic() + timeout
        started = [0]
        lock = threading.Lock()
        stop = threading.Event()
        errors: list[BaseException] = []

        def next_trial() -> Trial | None:
            with lock:
                if stop.is_set() or (n_trials is not None and started[0] >= n_trials):
                    return None
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                budget = self.info.budget_usd_micros
                if budget is not None and self.store.spend_micros(self.id) >= budget:
                    return None
                claimed = self.claim()
                if claimed is None:
                    return None
                started[0] += 1
            return self._start(claimed)

        def worker() -> None:
            while (trial := next_trial()) is not None:
                try:
                    self._run_one(objective, trial, catch)
                except BaseException as exc:
                    errors.append(exc)
                    stop.set()

        with Heartbeat(self.store, self.owner, self._charges.snapshot):
            if n_jobs == 1:
                worker()
            else:
                # Wait on events, not Thread.join: a Ctrl-C that interrupts join() can leave a live
                # thread marked stopped (CPython 3.11). On Ctrl-C no new trial starts; trials still
                # running in other threads are re-queued by the next optimize() or run.
                ended = [threading.Event() for _ in range(n_jobs)]

                def guarded(done: threading.Event) -> None:
                    try:
                        worker()
                    finally:
                        done.set()

                for done in ended:
                    threading.Thread(target=guarded, args=(done,), daemon=True).start()
                try:
                    for done in ended:
                        while not done.wait(0.2):
                            pass
                except KeyboardInterrupt:
                    stop.set()
                    raise
        if errors:
            raise errors[0]

    def _run_one(self, objective: Objective, trial: Trial, catch: tuple[type[BaseException], ...]) -> None:
        token = current_trial.set(trial)
        try:
            result = objective(trial)
        except StopTrial:
            self.tell(trial, state=TrialState.STOPPED)
        except KeyboardInterrupt:
            self.tell(trial, state=TrialState.QUEUED)  # interrupted, not failed: it runs again
            raise
        except catch as exc:
            self.tell(trial, state=TrialState.FAILED, error=f"{type(exc).__name__}: {exc}")
        except BaseException as exc:
            self.tell(trial, state=TrialState.FAILED, error=f"{type(exc).__name__}: {exc}")
            raise
        else:
            self.tell(trial, result)
        finally:
            current_trial.reset(token)

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
