"""How an in-process trial's reports and end are booked: each report stored and judged (rungs, curve
checks, a custom scheduler), the trial told its value or failure, its attempt closed at its wall-clock
cost with its reservation charged. One rule for non-finite values (``screen_metrics``) serves reports
and ``tell`` alike.

Mixed into ``Study`` (study.py), which asks, starts and claims trials; ``costtune.study.study``
re-exports ``screen_metrics``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from costtune.errors import InputError, SpecError, TrialFailed
from costtune.history import FrozenTrial, History, TrialState
from costtune.protocol import MetricLineError, format_line, nonfinite_objective, value_text
from costtune.schedulers import Decision
from costtune.schedulers.rungs import enter_finished
from costtune.study.trial import Trial
from costtune.words import BUDGET_STOP

if TYPE_CHECKING:
    from costtune.schedulers import Scheduler
    from costtune.store import Store, StudyInfo
    from costtune.study.books import Books

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


def told_metrics(value: Any, objective: str) -> dict[str, Any]:
    """The metrics a told (or returned) objective value stands for: a number is the objective's.

    The checks a report gets (``trial.report``): raises ``SpecError`` naming ``value`` for anything but a
    number or a dict of metric names to numbers (text, a list, a bool, ``"0.5"``). NaN and infinite
    numbers pass: ``screen_metrics`` decides what they mean (a non-finite objective fails the trial).
    """
    if isinstance(value, dict):
        try:
            format_line(None, {k: 0.0 if isinstance(v, float) and not math.isfinite(v) else v
                               for k, v in value.items()})
        except MetricLineError as exc:
            raise SpecError("value", str(exc).removeprefix("metric line: ")) from None
        return dict(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError("value", "must be a number or a dict of metric names to numbers", value)
    return {objective: value}


class _Reported:
    """The value ``tell`` is given when none is: the trial ends on what it reported."""

    def __repr__(self) -> str:
        return "REPORTED"


REPORTED: Any = _Reported()


class Telling:
    """Mixed into ``Study``; uses its fields."""

    store: Store
    info: StudyInfo
    scheduler: Scheduler
    _money: Callable[[], Books]  # the books of this process's in-process trials (study.py)
    history: Callable[[], History]

    def record_report(self, trial: Trial, step: int, metrics: dict[str, Any]) -> str | None:
        """Store one report of a running trial and judge it; returns why it must stop, or None."""
        if trial.closed:
            raise TrialFailed(trial.failure or f"trial {trial.number} has already ended")
        kept, failure = screen_metrics(metrics, self.info.metric, step, trial.number)
        if failure is not None:
            self.fail(trial, failure)
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
        frozen = self.store.add_report(trial.id, trial.attempt_id, step, kept, objective=self.info.metric,
                                       elapsed_s=ms / 1000, spend=spend)
        trial.last_report = frozen
        if run is not None:
            books.on_report(run, ms, kept.get(self.info.metric))
            if run.stop is not None:
                return run.stop
        if self.scheduler.on_report(frozen, self.history) == Decision.STOP:
            return "the scheduler said stop"
        return None

    def fail(self, trial: Trial, error: str) -> None:
        """Fail a running trial of this study with ``error`` as its reason (its money settled as ``tell`` does);
        nothing happens to a trial that already ended."""
        if not trial.closed:
            self.tell(trial, state=TrialState.FAILED, error=error)
            trial.failure = error

    def tell(self, trial: Trial, value: Any = REPORTED, *,
             state: TrialState = TrialState.COMPLETE, error: str | None = None) -> FrozenTrial:
        """Finish a trial with its objective value (a number, or a dict of metrics).

        With ``value`` left out the trial ends on what it reported (failed when it reported no value of
        the objective), as when an objective of ``optimize`` returns None. The value is booked at the
        trial's last reported step (step 0 when it reported nothing), so its last step stays the last step
        it reported. A NaN or infinite objective fails it (the same
        rule as ``trial.report``). Raises ``InputError`` (``SpecError`` naming ``trial`` or ``value``),
        with nothing changed in any study, for: a ``trial`` that is not the ``Trial`` from ``ask()``
        (a trial number, a stored ``FrozenTrial``), a trial of another study, a trial that already
        finished (told before, or failed by a report; the message names its state), and a ``value``
        that is not a number or a dict of metric names to numbers, None included (the trial stays
        running: tell it again with a number). A trial asked through another ``Study`` object of this same study is
        told through that object (its money is booked there).
        """
        if isinstance(trial, FrozenTrial):  # a stored record (study.trials), not the trial ask() handed out
            if trial.state not in (TrialState.RUNNING, TrialState.QUEUED):
                raise InputError(f"trial {trial.number} has already finished ({trial.state}); a finished trial "
                                 "cannot be told again")
            raise InputError(f"tell takes the Trial that ask() returned, not the stored record of trial "
                             f"{trial.number} (a FrozenTrial)")
        if not isinstance(trial, Trial):
            raise SpecError("trial", "must be the Trial that ask() returned (a costtune.Trial)", trial)
        host = trial.study
        if host is not self:
            if (isinstance(host, Telling) and host.info.id == self.info.id
                    and host.store.display_url == self.store.display_url):
                return host.tell(trial, value, state=state, error=error)  # the same study: its books are there
            raise SpecError("trial", f"trial {trial.number} belongs to study {trial.study_name!r}, not "
                            f"{self.name!r}; tell it with the study that asked for it")
        if trial.closed:
            stored = self.store.trial(self.info.id, trial.number)
            raise InputError(f"trial {trial.number} has already finished ({stored.state}); a finished trial "
                             "cannot be told again")
        if value is not REPORTED and state != TrialState.FAILED:
            metrics = told_metrics(value, self.info.metric)  # a wrong type raises here, before anything is stored
            step = trial.last_report.last_step if trial.last_report and trial.last_report.last_step is not None else 0
            kept, failure = screen_metrics(metrics, self.info.metric, step, trial.number)
            if failure is not None:
                state, error = TrialState.FAILED, failure
            elif kept:
                self.store.add_report(trial.id, trial.attempt_id, step, kept, objective=self.info.metric)
        if state == TrialState.COMPLETE and self.store.trial(self.info.id, trial.number).value is None:
            state, error = TrialState.FAILED, f"no value for metric {self.info.metric!r} was reported or returned"
        self._close(trial, state, error)
        return self.store.trial(self.info.id, trial.number)

    def _close(self, trial: Trial, state: TrialState, error: str | None) -> None:
        """Close the attempt at its wall-clock cost, charge its reservation, finish the trial: one transaction."""
        trial.closed = True
        trial.ended_as = str(state)
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
                enter_finished(books.rungs, run.number, run.rung, self.store.trial(self.info.id, trial.number).value)

    def verdict(self, trial: Trial) -> tuple[str | None, bool]:
        """(why it must stop or None, whether it ran its whole ladder) for a running trial."""
        run = self._money().running.get(trial.attempt_id or -1)
        return (run.stop, run.complete) if run else (trial.stop_reason, False)
