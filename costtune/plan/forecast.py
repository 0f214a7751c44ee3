"""The Monte Carlo half of ``costtune plan``: run a simulated sweep many times, nothing kept.

Each run is the real controller on the simulator (the same loop, store code and ledger as
``costtune run``), with its own preemption seed and sampler seed, on an in-memory SQLite store, so
the forecast includes everything the controller does (rungs, reservations, preemptions, the cap)
and neither the user's store nor the disk is touched. Runs go in worker processes (one per core
by default) and come back as each finishes; run ``k`` gives the same result whichever worker runs it.

A model-based sampler (bayes, and BOHB's model) costs a Gaussian-process fit per trial: tens of
seconds a run, where the rest of a run takes about one. Unless ``exact_sampler`` is set, such runs
draw configurations at random instead; the forecast says so (``Forecast.stand_in``).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np

from costtune.errors import CosttuneError
from costtune.spec import SweepSpec, parse_sweep

CAP_SHARE = 0.99  # a run "reaches the cap" when it spends at least this share of budget.usd
DEFAULT_RUNS = 20  # the most runs of a settling forecast (`costtune plan` without --runs)
MIN_SETTLE_RUNS = 8  # a settling forecast makes at least this many runs
SETTLE_WINDOW = 4  # ... and stops when the figures of its runs equal those of all but the last 4
COUNTS = ("trials", "preemptions")  # RunSample fields that count things: their percentiles are whole
SPEND_TOLERANCE = 0.02  # spend percentiles: within 2% of the cap
P_CAP_TOLERANCE = 0.05  # P(reach cap): within 0.05
BEST_TOLERANCE = 0.10  # median best value: within 10% of the best values' p10-p90 spread
BEST_TAIL_TOLERANCE = 0.25  # their p10 and p90, estimated from few runs: within 25% of that spread
MEMORY_STORE = "sqlite:///:memory:"
MODEL_SAMPLERS = ("bayes",)
_PARENT_CHECK_S = 0.5


@dataclass(frozen=True)
class RunSample:
    seed: int
    spend_micros: int
    best_value: float | None
    preemptions: int
    waste_micros: int
    trials: int
    sim_seconds: float


@dataclass(frozen=True)
class Forecast:
    """``runs`` in run-index order; ``stand_in``: the sampler the runs used in place of the sweep's
    own (None when they used the sweep's own); ``settled``: it stopped before ``most`` runs."""

    runs: tuple[RunSample, ...]
    cap_micros: int | None
    sampler: str = "random"
    stand_in: str | None = None
    settled: bool = False  # stopped before ``most`` runs: the figures had stopped moving (see ``settled``)
    moving: bool = False  # asked to settle, made ``most`` runs and its figures were still moving
    most: int = 0  # the most runs it would have made (0: as many as it holds)

    def spend(self, q: float) -> int:
        return round(float(np.percentile([r.spend_micros for r in self.runs], q)))

    @property
    def p_cap(self) -> float | None:
        """Share of runs that spent at least 99% of budget.usd; None without a cap."""
        if self.cap_micros is None:
            return None
        return sum(r.spend_micros >= CAP_SHARE * self.cap_micros for r in self.runs) / len(self.runs)

    def best(self, q: float) -> float | None:
        values = [r.best_value for r in self.runs if r.best_value is not None]
        return float(np.percentile(values, q)) if values else None

    def quantile(self, attr: str, q: float) -> float:
        """The ``q``th percentile of ``attr`` over the runs; of a count (trials, preemptions) a count some run had
        (the ranges' ends outward: p10 the lower, p90 the higher observed value; the median the nearest)."""
        values = [getattr(r, attr) for r in self.runs]
        if attr in COUNTS:
            method = "nearest" if q == 50 else "lower" if q < 50 else "higher"
            return float(np.percentile(values, q, method=method))
        return float(np.percentile(values, q))


def uses_model(spec: SweepSpec) -> bool:
    """True when the sweep's trials are proposed by a fitted model (bayes, or BOHB's rung model)."""
    return spec.sampler["type"] in MODEL_SAMPLERS or spec.scheduler["type"] == "bohb"


def seeded_raw(spec: SweepSpec, k: int) -> dict[str, Any]:
    """The sweep file of run ``k``: preemption and sampler seeds moved on by ``k``, nothing written."""
    raw: dict[str, Any] = json.loads(json.dumps(spec.raw))
    sim = raw["resources"]["simulation"]
    base = spec.resources.simulation.seed if spec.resources.simulation else 0
    sim["seed"] = base + k
    sampler = dict(raw.get("sampler") or {"type": spec.sampler["type"]})
    if "seed" in spec.sampler:
        sampler["seed"] = spec.sampler["seed"] + k  # the file's seed, or the one drawn when it gave none
    raw["sampler"] = sampler
    raw.pop("output_dir", None)  # simulated trials write no files
    return raw


def seeded_spec(spec: SweepSpec, k: int) -> SweepSpec:
    """The same sweep with preemption and sampler seeds moved on by ``k``."""
    return parse_sweep(seeded_raw(spec, k))


def simulate_once(raw: dict[str, Any], *, exact_sampler: bool = True,
                  rules: Sequence[dict[str, Any]] = ()) -> RunSample:
    """One full simulated run of the sweep file ``raw`` on an in-memory store.

    ``exact_sampler=False`` swaps a model-based sampler for random draws (see the module doc). ``rules``: spend
    policy bodies the in-memory store holds, so the controller admits (allows, amends or denies) each launch as
    ``costtune run`` does (``costtune.plan.rules``: launch rules only).
    """
    from costtune.history import TrialState
    from costtune.policies import parse_policy
    from costtune.providers import make_provider
    from costtune.runner.admission import DENIED_PREFIX
    from costtune.runner.controller import SweepController
    from costtune.runner.session import open_sweep
    from costtune.samplers import RandomSampler
    from costtune.store import Store

    run_spec = parse_sweep(raw)
    stand_in = not exact_sampler and uses_model(run_spec)
    store = Store(MEMORY_STORE)
    try:
        if rules:
            store.apply_policies([parse_policy(dict(body)) for body in rules])
        # The stand-in from the start: the model's sampler is never built (nor scipy imported).
        first = RandomSampler() if stand_in and run_spec.sampler["type"] in MODEL_SAMPLERS else None
        study, _ = open_sweep(store, run_spec, sampler=first)
        provider = make_provider(run_spec.resources.provider, simulation=run_spec.resources.simulation,
                                 metric=run_spec.metric)
        controller = SweepController(run_spec, study, provider, trial_events=False, every_report=False)
        if stand_in:
            study.sampler = RandomSampler()  # also replaces BOHB's rung model, set up by the controller
        status = controller.run()
        # trials started (a trial the cap left queued, or a policy denied, never launched, is not one the run runs)
        trials = sum(1 for t in study.history().trials if t.attempts or (
            t.state != TrialState.QUEUED and not (t.error or "").startswith(DENIED_PREFIX)))
    finally:
        store.close()
    seed = run_spec.resources.simulation.seed if run_spec.resources.simulation else 0
    return RunSample(seed=seed, spend_micros=status.spend_micros, best_value=status.best_value,
                     preemptions=status.preemptions, waste_micros=status.waste_micros, trials=trials,
                     sim_seconds=status.sim_seconds)


def default_jobs() -> int:
    return os.cpu_count() or 1


def settled(runs: Sequence[RunSample], cap_micros: int | None) -> bool:
    """True when the forecast of ``runs`` (in index order) says what it said ``SETTLE_WINDOW`` runs
    earlier: the 10th, 50th and 90th percentile of spend within ``SPEND_TOLERANCE`` of the cap (of
    the median spend without a cap), P(reach cap) within ``P_CAP_TOLERANCE``, and the median best
    value within ``BEST_TOLERANCE`` of the best values' 10-90 spread (their 10th and 90th
    percentiles within ``BEST_TAIL_TOLERANCE`` of it). Never before
    ``MIN_SETTLE_RUNS`` runs. A rule of thumb for when more runs stop moving the printed figures,
    not a confidence interval."""
    n = len(runs)
    if n < MIN_SETTLE_RUNS:
        return False
    now, before = Forecast(tuple(runs), cap_micros), Forecast(tuple(runs[:n - SETTLE_WINDOW]), cap_micros)
    scale = cap_micros or max(1, now.spend(50))
    if any(abs(now.spend(q) - before.spend(q)) > SPEND_TOLERANCE * scale for q in (10, 50, 90)):
        return False
    if cap_micros is not None and abs((now.p_cap or 0.0) - (before.p_cap or 0.0)) > P_CAP_TOLERANCE:
        return False
    if (now.best(50) is None) != (before.best(50) is None):
        return False
    if now.best(50) is not None:
        spread = (now.best(90) or 0.0) - (now.best(10) or 0.0)
        tolerance = {10: BEST_TAIL_TOLERANCE, 50: BEST_TOLERANCE, 90: BEST_TAIL_TOLERANCE}
        if any(abs((now.best(q) or 0.0) - (before.best(q) or 0.0)) > tolerance[q] * abs(spread) for q in tolerance):
            return False
    return True


def forecast(spec: SweepSpec, runs: int, *, jobs: int | None = None, exact_sampler: bool = False,
             on_run: Callable[[int, RunSample], None] | None = None, settle: bool = False,
             rules: Sequence[dict[str, Any]] = ()) -> Forecast:
    """``runs`` simulated runs of the sweep in ``jobs`` worker processes (default: one per core), each admitting
    its launches under the spend policies ``rules`` (``simulate_once``).

    With ``settle``, ``runs`` is the most it runs: it stops at the first run count (counted in
    index order) at which the figures have ``settled``, and leaves out any later run already done,
    so the result still does not depend on ``jobs`` (``Forecast.settled`` says it stopped early).
    ``on_run(k, sample)`` is called in this process as each run finishes (in finishing order: a
    progress bar); the result holds the runs in index order, so it does not depend on ``jobs``.
    Ctrl-C (KeyboardInterrupt) kills the workers before it propagates: nothing is left running.
    Raises ValueError when ``runs`` or ``jobs`` is < 1.
    """
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    exact = exact_sampler or not uses_model(spec)
    raws = [seeded_raw(spec, k) for k in range(runs)]
    samples: dict[int, RunSample] = {}
    cap = spec.budget.usd_micros
    kept = runs  # how many runs, from index 0, the forecast holds
    checked = 0  # prefixes up to this length were checked for settling

    def done(k: int, sample: RunSample) -> bool:
        """Record run ``k``; True when the forecast has what it needs."""
        nonlocal kept, checked
        samples[k] = sample
        if on_run is not None:
            on_run(k, sample)
        if not settle:
            return False
        while checked < runs and checked in samples:
            checked += 1
            if settled([samples[i] for i in range(checked)], cap):
                kept = checked
                return True
        return False

    workers = min(jobs, runs)
    if workers == 1:
        for k, raw in enumerate(raws):
            if done(k, simulate_once(raw, exact_sampler=exact, rules=rules)):
                break
    else:
        _in_processes(raws, workers, exact, done, rules)
    model = "bohb" if spec.scheduler["type"] == "bohb" else spec.sampler["type"]
    return Forecast(runs=tuple(samples[k] for k in range(kept)), cap_micros=cap,
                    sampler=model if exact else "random", stand_in=None if exact else model,
                    settled=settle and kept < runs, moving=settle and kept == runs, most=runs)


def _in_processes(raws: list[dict[str, Any]], workers: int, exact: bool,
                  done: Callable[[int, RunSample], bool], rules: Sequence[dict[str, Any]] = ()) -> None:
    """Run every ``raws[k]`` in a pool of fresh (spawned) processes; ``done`` as each one finishes
    (when it returns True, the runs not finished yet are dropped and the workers killed).

    Ctrl-C or SIGTERM kills the workers; a worker whose parent is gone exits on its own.
    """
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=(os.getpid(),))
    restore = _term_as_interrupt()
    try:
        with _workers_ignore_ctrl_c():  # submit starts the workers
            pending: dict[Future[RunSample], int] = {
                pool.submit(simulate_once, raw, exact_sampler=exact, rules=list(rules)): k
                for k, raw in enumerate(raws)}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                if done(pending.pop(future), future.result()):
                    _kill(pool)
                    return
    except BrokenProcessPool as exc:
        _kill(pool)
        raise CosttuneError(f"forecast: a worker process died ({exc}); --jobs 1 runs the forecast in this "
                            "process") from None
    except BaseException:
        _kill(pool)
        raise
    finally:
        restore()
    pool.shutdown(wait=True)


def _kill(pool: ProcessPoolExecutor) -> None:
    """Stop a pool at once: queued runs are dropped and the workers killed (they hold nothing); returns once
    the pool's manager thread has ended too.

    ``shutdown(wait=False)`` leaves that thread winding down (closing its wake-up pipe) while the caller
    goes on: when the interpreter then exited, its exit hook could write to the pipe as the thread closed it
    ("Exception ignored ... OSError: [Errno 9] Bad file descriptor" after `costtune plan`, exit 0).
    Joining the thread here leaves nothing of the pool for the exit hook to race with.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public way before 3.14
    manager = getattr(pool, "_executor_manager_thread", None)  # shutdown() forgets it: taken first
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(timeout=5)
    if manager is not None:
        manager.join(timeout=10)  # the workers are dead: it sees them gone and ends


@contextlib.contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Processes started in this block begin with SIGINT ignored (inherited through exec).

    A worker is in the terminal's process group until its initializer moves it out; a Ctrl-C in
    that moment would otherwise print a worker's KeyboardInterrupt traceback.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _term_as_interrupt() -> Callable[[], None]:
    """While the pool runs, SIGTERM stops it like Ctrl-C (main thread only); returns the undo."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _worker_init(parent: int) -> None:
    """A worker leaves Ctrl-C to its parent, which kills it; and exits when that parent is gone."""
    if hasattr(os, "setpgrp"):
        os.setpgrp()  # out of the terminal's process group: the terminal's Ctrl-C reaches the parent only

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="costtune-plan-parent", daemon=True).start()
