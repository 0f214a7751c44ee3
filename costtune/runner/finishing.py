"""Booking an attempt that ended: the state its trial ends in (complete, stopped, failed, or queued again
after a preemption or an interrupt), its exit reason, what it cost, the notes and events that say why.

Mixed into ``SweepController`` (controller.py), which calls ``_finish`` when an attempt's process has
ended or was stopped; the rest of the run (ending.py's fail-fast count, admission.py's policy windows)
hears of it from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from costtune.history import Mode, TrialState
from costtune.money import format_usd
from costtune.runner.status import failure_reason, stderr_tail
from costtune.schedulers.rungs import enter_finished

if TYPE_CHECKING:
    from costtune.prices.billing import BillingRule
    from costtune.providers.base import Status
    from costtune.runner.attempts import LiveAttempt
    from costtune.runner.status import RunStatus
    from costtune.schedulers import RungScheduler
    from costtune.store import Store
    from costtune.study import Study

# The stops costtune gives a running attempt: the scheduler's (a rung or curve verdict, the dashboard's
# stop), the cap's, a spend policy's, its time limit, an interrupt. One rule decides, for all of them,
# whether the attempt was cut short or had ended first (``Finishing._ended_first``).
STOPS = ("stopped", "budget", "policy", "timeout", "interrupted")
ENDED_FIRST = "it completed before the stop took effect"
_STOP_WORDS = {"timeout": "its time limit (budget.trial_seconds) was reached", "interrupted": "interrupted"}


class Finishing:
    """Mixed into ``SweepController``; uses its fields. First among its bases: the other mixins name
    ``_finish`` only as a stub."""

    spec: Any
    study: Study
    store: Store
    billing: BillingRule
    rungs: RungScheduler | None
    status: RunStatus
    _checkpoints: bool
    _live: dict[int, LiveAttempt]
    _by_key: dict[str, LiveAttempt]
    _paid: dict[int, int]  # trial number -> start-up spend of its attempts in this run
    _claimable: bool
    _trial_events: bool
    _on_event: Callable[[str], None]
    _after_charge: Callable[[str], None]  # admission.py: thresholds of the policy windows it spent in
    _count_outcome: Callable[[int, TrialState, str | None], None]  # ending.py: fail-fast
    _check_objective: Callable[[LiveAttempt, set[str]], None]  # ending.py

    def _finish(self, live: LiveAttempt, status: Status) -> None:
        ms, reason = status.billable_ms, live.stop_reason
        cost = self.billing.charge(ms, live.rate)
        waste, error = 0, None
        if reason in STOPS and self._ended_first(live, status):
            # It ran to its end before the stop took effect: complete, whichever stop it was (the verdict,
            # the cap's or a policy's reason stays on record in its attempt's note).
            state, exit_reason = TrialState.COMPLETE, "completed"
            if reason != "budget":  # the cap's stop was noted as it was decided (``Decisions._budget_stop``)
                self.store.add_attempt_note(live.attempt_id, live.decision or _STOP_WORDS.get(reason, reason))
            self.store.add_attempt_note(live.attempt_id, ENDED_FIRST)
            live.decision = f"{live.decision}; {ENDED_FIRST}".lstrip("; ")
        elif reason == "interrupted":
            state, exit_reason = TrialState.QUEUED, "interrupted"
        elif status.preempted and reason is None:
            state, exit_reason = TrialState.QUEUED, "preempted"  # not a failure: it runs again
            kept = self.billing.charge(live.report_ms, live.rate) if self._checkpoints and live.step >= 0 else 0
            waste = max(0, cost - kept)
            self.status.preemptions += 1
            self.status.waste_micros += waste
        elif reason == "timeout":
            state, exit_reason = TrialState.FAILED, "timeout"
            error = f"killed at its time limit of {self.spec.budget.trial_seconds:g} s (budget.trial_seconds)"
        elif reason == "failed":  # costtune failed it: a non-finite objective, an internal error
            state, exit_reason, error = TrialState.FAILED, "failed", live.error
        elif reason in ("stopped", "budget"):
            state, exit_reason = TrialState.STOPPED, reason
        elif reason == "policy":  # a spend policy's window cap: the policy and window are its error
            state, exit_reason, error = TrialState.STOPPED, "policy", live.decision
        elif reason == "completed" or (status.exit_code == 0 and live.value is not None):
            state = TrialState.COMPLETE if live.value is not None else TrialState.STOPPED
            exit_reason = "completed"
        else:
            state, exit_reason = TrialState.FAILED, "failed"
            error = self._failure(live, status)
        self.status.budget_stops += exit_reason == "budget"  # the cap, not the trial's own end, stopped it
        self.store.finish_attempt(live.attempt_id, exit_reason=exit_reason, exit_code=status.exit_code,
                                  billable_ms=ms, cost_micros=cost, waste_micros=waste)
        if live.reserved:
            self.store.charge(live.key, cost)
            self._after_charge(live.key)  # policy thresholds of the windows it spent in
        self.store.finish_trial(live.claimed.id, state, error=error)
        if live.base is None:  # no first report: all it spent was start-up, not counted at a rung
            self._paid[live.number] = self._paid.get(live.number, 0) + cost
        if self.rungs is not None and state == TrialState.COMPLETE and not live.judged_out and live.rung is not None:
            # It ended on its own below its next rung (a stop that came too late included): its final value
            # enters every rung it did not reach (for BOHB's model; not ranked against), as the replay does.
            enter_finished(self.rungs, live.number, live.rung, live.value)
        if live.warned:
            self.store.add_trial_warnings(live.claimed.id, live.warnings, live.warned)
        del self._live[live.attempt_id]
        self._by_key.pop(live.key, None)
        self._claimable = True  # its reservation is free again, its trial may be queued again
        self.status.running = len(self._live)
        self.status.spend_micros += cost
        if state.finished:
            self.status.finished += 1
            self.status.failed += state == TrialState.FAILED
            self.status.results += state != TrialState.FAILED and live.value is not None
            if state != TrialState.FAILED and live.value is not None:
                self._note_value(live.number, live.value)  # the best finished trial, as the leaderboard ranks
            self._count_outcome(live.number, state, error)
            if live.attempt_value is None and (state == TrialState.STOPPED or status.exit_code == 0):
                self._check_objective(live, live.reported)
        if self._trial_events:
            shown = f" {self.study.metric}={live.value:.6g}" if live.value is not None else ""
            why = f" ({live.decision})" if live.decision and state == TrialState.STOPPED else ""
            word = {"interrupted": "interrupted (re-queued)", "preempted": "preempted (re-queued)"}.get(
                exit_reason, str(state))
            self._on_event(f"trial {live.number} {word}{shown} {format_usd(cost)}{why}"
                           + (f": {error.splitlines()[0]}" if error else ""))

    @staticmethod
    def _ended_first(live: LiveAttempt, status: Status) -> bool:
        """Whether an attempt given a stop (any of ``STOPS``) ran to its end before the stop took effect: it
        exited 0 with a value, and either the stop was never sent (it had ended by the time the stop was
        decided, ``stop_step`` None) or it reported past the step it was stopped at (its last steps were on
        their way). It is complete (the stop's reason stays on record), as a trial stopped at its last rung
        is (``Decisions._at_deadline``); only an attempt really cut short is stopped."""
        return (status.exit_code == 0 and live.value is not None
                and (live.stop_step is None or live.step > live.stop_step))

    def _failure(self, live: LiveAttempt, status: Status) -> str:
        """Why an attempt that ended on its own without a value failed (first line: the reason)."""
        if status.exit_code:
            return status.error or failure_reason(status.exit_code, stderr_tail(live.trial_dir))
        others = f" (it reported {', '.join(sorted(live.reported))})" if live.reported else ""
        what = f"exited 0 but never reported metric {self.study.metric!r}{others}"
        return f"{what}\n{status.error or stderr_tail(live.trial_dir)[-1000:]}".strip()

    def _note_value(self, number: int, value: float) -> None:
        best = self.status.best_value
        better = best is None or (value < best if self.study.mode == Mode.MIN else value > best)
        if better:
            self.status.best_value, self.status.best_trial = value, number
