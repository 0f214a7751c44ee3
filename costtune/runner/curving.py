"""Learning-curve stopping in the sweep controller (``scheduler: {type: curve}``).

A trial runs in reserved chunks as under FIFO; its deadline is pulled in to its next checkpoint
(``CurveScheduler.next_check``: multiples of its spend at this attempt's first report). At a
checkpoint its curve so far (its reports in the store, every attempt's) is judged against the best
final value of completed trials, extrapolated to the simulation's last step or, for a command
trial, to the last step of the longest completed trial. A stop is stored as a verdict (the spend
judged at, the value, not promoted) and its reason as the attempt's note, so ``costtune trials
STUDY N`` shows both. Verdicts depend only on what the store holds, so a resumed sweep needs no
replay: it judges as the first run would have.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from costtune.history import Mode, TrialState

if TYPE_CHECKING:
    from costtune.prices.billing import BillingRule
    from costtune.runner.attempts import LiveAttempt
    from costtune.schedulers import CurveScheduler
    from costtune.schedulers.curve import CurveVerdict
    from costtune.spec import SweepSpec
    from costtune.store import Store
    from costtune.study import Study

EXTEND = "extend"  # _curve_deadline: the reservation is used up, extend it as FIFO does


class Curving:
    """Mixed into ``SweepController``; uses its fields."""

    spec: SweepSpec
    study: Study
    store: Store
    billing: BillingRule
    curve: CurveScheduler | None
    _watch_deadlines: Callable[[LiveAttempt], None]

    def _curve_start(self, live: LiveAttempt, cost: int) -> None:
        """This attempt's first report, at ``cost`` micros of its own: set its first checkpoint."""
        assert self.curve is not None
        if live.target is None:
            return  # a free trial: no money to check it at
        spent = live.claimed.prior_cost_micros + cost
        live.curve_first = spent
        live.curve_check = self.curve.next_check(spent, spent)
        if self._curve_aim(live):
            self._watch_deadlines(live)

    def _curve_aim(self, live: LiveAttempt) -> bool:
        """Pull the deadline in to the next checkpoint when it comes before the end of the reservation."""
        held_to = live.claimed.prior_cost_micros + live.reserved
        if live.curve_check is None or live.curve_check >= held_to or live.curve_check >= (live.target or 0):
            return False
        live.aim(self.billing, live.curve_check, None)
        return True

    def _curve_deadline(self, live: LiveAttempt) -> str | None:
        """At a deadline: judge the trial if it reached its checkpoint. Returns "stopped", None (aimed at
        the next checkpoint within its reservation) or ``EXTEND`` (the reservation is used up)."""
        assert self.curve is not None
        spent = live.target or 0
        if live.curve_check is not None and live.curve_first is not None and spent >= live.curve_check:
            stop, reason = self._curve_judge(live)
            if stop:
                live.decision = reason
                at = live.spend(self.billing, live.deadline_ms or 0)  # what it spent by then, billed
                self.store.record_verdict(live.claimed.id, at, live.value, False, reason)
                self.store.add_attempt_note(live.attempt_id, reason)
                return "stopped"
            live.curve_check = self.curve.next_check(live.curve_first, spent)
        held_to = live.claimed.prior_cost_micros + live.reserved
        if spent < held_to:
            live.aim(self.billing, held_to, None)
            self._curve_aim(live)
            self._watch_deadlines(live)
            return None
        return EXTEND

    def _curve_judge(self, live: LiveAttempt) -> tuple[bool, str]:
        assert self.curve is not None
        sim = self.spec.resources.simulation
        verdict = judge_from_store(self.curve, self.store, self.study.id, self.study.metric, live.number,
                                   final_step=None if sim is None else sim.max_steps - 1)
        return verdict.stop, verdict.reason


def judge_from_store(curve: CurveScheduler, store: Store, study_id: int, metric: str, number: int, *,
                     final_step: int | None = None) -> CurveVerdict:
    """Judge trial ``number`` on what the store holds: its reports of ``metric`` (every attempt's), the best
    final value of the study's completed trials, and its final step (``final_step`` when the workload's
    is known, else the last step of the longest completed trial). The sweep controller and in-process
    studies both judge this way."""
    points = [(step, metrics[metric]) for step, metrics, _ in store.reports(study_id, number) if metric in metrics]
    done = [t for t in store.history(study_id).trials if t.state == TrialState.COMPLETE and t.value is not None]
    values = [t.value for t in done if t.value is not None]
    incumbent = (max(values) if curve.mode == Mode.MAX else min(values)) if values else None
    if final_step is None:
        lasts = [t.last_step for t in done if t.last_step is not None]
        final_step = max(lasts) if lasts else None
    return curve.judge(points, incumbent, final_step, number=number)
