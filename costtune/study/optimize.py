"""``Study.optimize``: run an objective on new trials, in one thread or several, until an end.

Ends: ``n_trials`` started, ``timeout`` passed, the sampler (or a rung plan) has nothing left,
the study's cap cannot fund another trial, or the objective raised an exception not in
``catch``. ``study.stop_reason`` says which; the budget end is also logged as a warning. A trial
the cap cannot fund waits in the queue while other trials of this call run (they may free money),
and optimize ends once none runs and there is still no room.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from costtune.errors import BudgetExhausted, SpecError, StopTrial, TrialFailed, shown
from costtune.history import TrialState
from costtune.protocol import current_trial
from costtune.store.heartbeat import Heartbeat
from costtune.study.telling import REPORTED, told_metrics
from costtune.words import plural

if TYPE_CHECKING:
    from costtune.study.study import Study
    from costtune.study.trial import Trial

log = logging.getLogger("costtune.study")
Objective = Callable[["Trial"], Any]


def optimize(study: Study, objective: Objective, n_trials: int | None, *, n_jobs: int = 1,
             timeout: float | None = None, catch: tuple[type[BaseException], ...] = ()) -> None:
    """See the module docstring. Exceptions in ``catch`` fail the trial and the loop goes on; any
    other exception fails the trial and is raised; ``TrialFailed`` (a NaN objective) and
    ``StopTrial`` never stop the loop."""
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise SpecError("n_jobs", "must be an integer >= 1", n_jobs)
    if n_trials is not None and (isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 0):
        raise SpecError("n_trials", "must be an integer >= 0", n_trials)
    study.recover()
    books = study._money()
    books.share = n_jobs
    deadline = None if timeout is None else time.monotonic() + timeout
    study.stop_reason = None
    study.store.set_last_stop(study.id, None)  # `costtune studies`: no earlier run's reason while this one goes
    try:
        _optimize(study, objective, n_trials, books, n_jobs, deadline, timeout, catch)
    finally:
        if study.stop_reason:  # why this call ended, for `costtune studies`
            study.store.set_last_stop(study.id, study.stop_reason)


def _optimize(study: Study, objective: Objective, n_trials: int | None, books: Any, n_jobs: int,
              deadline: float | None, timeout: float | None, catch: tuple[type[BaseException], ...]) -> None:
    state = {"started": 0, "running": 0}
    cond = threading.Condition()
    stop = threading.Event()
    errors: list[BaseException] = []

    def end(reason: str) -> None:
        if study.stop_reason is None:
            study.stop_reason = reason
        stop.set()

    def next_trial() -> Trial | None:
        with cond:
            while True:
                if stop.is_set():
                    return None
                if n_trials is not None and state["started"] >= n_trials:
                    end(f"{plural(n_trials, 'trial')} run (n_trials)")
                    return None
                if deadline is not None and time.monotonic() >= deadline:
                    end(f"timeout of {timeout:g} s reached")
                    return None
                try:
                    if not books.room_left(study.rate_micros_per_hour):
                        raise BudgetExhausted(books.refusal(books.least(study.rate_micros_per_hour)))
                    claimed = study.claim(max_trials=study._plan_limit())
                    if claimed is None:
                        end("the sampler (or the rung plan) has nothing left to propose")
                        return None
                    trial = study._start(claimed)
                except BudgetExhausted as exc:
                    if state["running"] == 0:
                        log.warning("study %r: optimize ends: %s", study.name, exc)
                        end(str(exc))
                        return None
                    wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
                    cond.wait(wait)  # a running trial may leave money unspent when it ends
                    continue
                if trial is None:
                    continue  # a re-queued trial that had already run its whole ladder
                state["started"] += 1
                state["running"] += 1
                return trial

    def worker() -> None:
        while (trial := next_trial()) is not None:
            try:
                _run_one(study, objective, trial, catch)
            except BaseException as exc:
                errors.append(exc)
                end(f"the objective raised {type(exc).__name__}")
            finally:
                with cond:
                    state["running"] -= 1
                    cond.notify_all()

    with Heartbeat(study.store, study.owner, books.snapshot):
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
                end("interrupted")
                raise
    if errors:
        raise errors[0]


def _run_one(study: Study, objective: Objective, trial: Trial, catch: tuple[type[BaseException], ...]) -> None:
    def finish(value: Any = REPORTED, **how: Any) -> None:
        if not trial.closed:  # a failing report (or the objective itself) may have finished it already
            study.tell(trial, value, **how)

    token = current_trial.set(trial)
    try:
        result = objective(trial)
    except TrialFailed:
        finish(state=TrialState.FAILED, error=trial.failure)
    except StopTrial:
        _, complete = study.verdict(trial)
        finish(state=TrialState.COMPLETE if complete else TrialState.STOPPED)
    except KeyboardInterrupt:
        finish(state=TrialState.QUEUED)  # interrupted, not failed: it runs again
        raise
    except catch as exc:
        finish(state=TrialState.FAILED, error=f"{type(exc).__name__}: {exc}")
    except BaseException as exc:
        finish(state=TrialState.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    else:
        try:
            if result is not None:
                told_metrics(result, study.metric)  # the check tell makes, which raises to its caller
        except SpecError as exc:  # here the objective's bug, not the loop's: its trial fails with why
            finish(state=TrialState.FAILED, error=f"objective returned {shown(result)}: {exc.reason}")
        else:
            finish(REPORTED if result is None else result)  # None: the values it reported stand
    finally:
        current_trial.reset(token)
