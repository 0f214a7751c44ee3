"""What the controller makes of an attempt's reports and of its deadlines: the report rule and
the rung verdicts.

Every line a trial prints goes through ``protocol.parse_line``: a bad line is ignored with a
warning (shown, and stored with the trial), a non-finite metric is dropped with one, a non-finite
objective fails the trial. At a deadline a trial is judged at its rung on what this attempt
reported (with one first rung's worth of grace for its first report), or its reservation is
extended by a share of what the cap has left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from costtune.errors import CapExceeded
from costtune.money import format_usd
from costtune.protocol import (
    MAX_STEP,
    MetricLineError,
    MetricReport,
    TimedReport,
    nonfinite_objective,
    parse_line,
)
from costtune.runner.curving import EXTEND

if TYPE_CHECKING:
    from costtune.prices.billing import BillingRule
    from costtune.providers.base import Provider, Status
    from costtune.runner.attempts import LiveAttempt
    from costtune.schedulers import CurveScheduler, RungScheduler
    from costtune.store import Store
    from costtune.study import Study

log = logging.getLogger(__name__)
_SHOWN_WARNINGS = 5  # per attempt; the rest are stored with the trial, not printed


class Decisions:
    """Mixed into ``SweepController``; uses its fields."""

    study: Study
    store: Store
    provider: Provider
    billing: BillingRule
    rungs: RungScheduler | None
    curve: CurveScheduler | None
    _curve_deadline: Callable[[LiveAttempt], str | None]  # curving.py
    _curve_aim: Callable[[LiveAttempt], bool]
    _curve_start: Callable[[LiveAttempt, int], None]
    scope: str  # the study's ledger scope
    _live: dict[int, LiveAttempt]
    _objective_seen: bool | None
    _startup_warned: bool
    _warn: Callable[[str], None]
    _chunk: Callable[..., int]
    _full_window: Callable[..., str | None]  # admission.py: the policy window a running attempt cannot extend in
    _windows_of: dict[str, Any]  # reservation key -> the policy windows it holds money in (admission.py)
    _watch_deadlines: Callable[[LiveAttempt], None]
    _every_report: bool

    def _read(self, live: LiveAttempt, lines: Any) -> None:
        """Book what the attempt printed. One rule for every line (``protocol.parse_line``): a bad
        line is ignored with a warning, a non-finite metric dropped with one, a non-finite objective
        fails the trial. A simulator hands over ``MetricReport``s, what ``parse_line`` makes of its lines."""
        status: Status | None = None
        metric = self.study.metric
        held: tuple[dict[str, float], int, int] | None = None  # the last report, when not every one is stored
        for line in lines:
            if live.stop_reason == "failed":
                continue  # it failed on an earlier line: nothing it prints now counts
            if isinstance(line, MetricReport):
                report: MetricReport | None = line  # already a report (the simulator's fast path)
            else:
                try:
                    report = parse_line(line)
                except MetricLineError as exc:
                    self._trial_warning(live, f"ignored {exc}")
                    continue
            if report is None:
                continue
            step = report.step if report.step is not None else live.step + 1
            if step > MAX_STEP:
                self._trial_warning(live, f"ignored metric line: step {step} is past {MAX_STEP}")
                continue
            if metric in report.nonfinite:
                live.error = nonfinite_objective(metric, report.nonfinite[metric], step)
                live.stop_reason = "failed"
                continue
            for name, text in report.nonfinite.items():
                self._trial_warning(live, f"dropped {name}={text} at step {step}: not a finite number")
            if not report.metrics:
                continue
            if isinstance(report, TimedReport):
                ms = report.billable_ms  # made before this read: booked at its own moment
            else:
                status = status or self.provider.poll(live.handle)
                ms = status.billable_ms
            live.step = step
            cost = self.billing.charge(ms, live.rate)
            live.metrics.update(report.metrics)
            live.reported.update(report.metrics)
            if metric in report.metrics:
                first = live.attempt_value is None
                live.value = live.attempt_value = float(report.metrics[metric])
                self._objective_seen = True
                if first:
                    self._first_report(live, cost)
            live.report_ms = ms
            if self._every_report or not isinstance(report, TimedReport):
                self._book_report(live, report.metrics, ms, cost)
            else:
                held = (report.metrics, ms, cost)
        if held is not None:
            self._book_report(live, *held)

    def _book_report(self, live: LiveAttempt, metrics: dict[str, float], ms: int, cost: int) -> None:
        self.store.book_report(live.claimed.id, live.attempt_id, live.step, metrics, merged=live.metrics,
                               value=live.value, elapsed_s=ms / 1000,
                               trial_cost_micros=live.claimed.prior_cost_micros + cost, attempt_ms=ms,
                               attempt_cost_micros=cost)

    def _trial_warning(self, live: LiveAttempt, message: str) -> None:
        """Shown (even with --quiet) for the first few of an attempt, stored with the trial."""
        live.warned += 1
        if len(live.warnings) < 20:
            live.warnings.append(message)
        if live.warned <= _SHOWN_WARNINGS:
            self._warn(f"trial {live.number}: {message}")
        if live.warned == _SHOWN_WARNINGS + 1:
            self._warn(f"trial {live.number}: more warnings; `costtune trials {self.study.name} --format json` "
                       "lists them")

    def _at_deadline(self, live: LiveAttempt) -> str | None:
        """The trial's spend reached its target: judge it at its rung, or extend its reservation.

        A rung verdict uses what this attempt reported (a relaunched trial is not judged on a value
        from before its interruption). One that reaches its rung before its first report gets a
        grace of one first rung's worth of money for it, once, when the cap can fund that; then
        it is judged on what there is."""
        live.judge_now = False
        if self.curve is not None and live.rung is None:
            judged = self._curve_deadline(live)  # curving.py: a learning-curve checkpoint
            if judged != EXTEND:
                return judged
        if live.rung is not None and self.rungs is not None:
            if live.attempt_value is None and not live.grace and self._grace(live):
                return None
            if live.attempt_value is None and live.grace:
                spent = self.billing.charge(self.provider.poll(live.handle).billable_ms, live.rate)
                self._first_report(live, spent, late=True)
            value = live.attempt_value if live.attempt_value is not None else live.value
            decision = self.rungs.judge(live.number, live.rung, value)
            self.store.record_verdict(live.claimed.id, live.rung, value, decision.promote)  # stored as made
            live.decision = decision.reason
            if not decision.promote:
                return "completed" if live.rung == self.rungs.ladder(live.number)[-1] else "stopped"
            extra, target, rung = decision.next_rung_micros - live.rung, decision.next_rung_micros, \
                decision.next_rung_micros  # type: ignore[operator]
        else:
            windows = self._windows_of.get(live.key, ())  # policy windows it also holds money in
            extra = self._chunk(live.rate, must_fit=False, among=len(self._live),
                                caps={w.scope: p.cap_micros for p, w in windows})
            target, rung = (live.target or 0) + extra, None
            if extra == 0:
                cap, spent, held = self.store.balance(self.scope)
                study_full = cap is not None and cap - spent - held < self.billing.charge(1, live.rate)
                policy = None if study_full else self._full_window(windows, self.billing.charge(1, live.rate))
                live.decision = policy or "budget.usd reached"
                return "policy" if policy else "budget"
        try:
            self.store.extend(live.key, extra)
        except CapExceeded as exc:
            windows = self._windows_of.get(live.key, ())
            policy = None if exc.scope == self.scope else self._full_window(windows, extra, exc.scope)
            live.decision = f"{policy or 'budget.usd'}: cannot fund the next {format_usd(extra)}"
            return "policy" if policy else "budget"
        live.reserved += extra
        live.aim(self.billing, target, rung)
        if self.curve is not None:
            self._curve_aim(live)
        self._watch_deadlines(live)
        return None

    def _grace(self, live: LiveAttempt) -> bool:
        """Extend the reservation by one first rung for the attempt's first report; False if the cap cannot."""
        grace = self.rungs.ladder(live.number)[0]  # type: ignore[union-attr]
        try:
            self.store.extend(live.key, grace)
        except CapExceeded:
            return False
        live.grace = True
        live.reserved += grace
        live.aim(self.billing, (live.target or 0) + grace, live.rung)
        self._watch_deadlines(live)
        return True

    def _first_report(self, live: LiveAttempt, cost: int, *, late: bool = False) -> None:
        """This attempt's first objective value (``late``: its grace ran out without one): judge it now
        if it waited in its grace; say once when trials spend more than the first rung before they
        report anything."""
        if live.grace and not late:
            live.judge_now = True
        if self.curve is not None and live.curve_first is None:
            self._curve_start(live, cost)
        if self.rungs is None or self._startup_warned or live.start_step != 0:
            return
        first = min(self.rungs.levels())
        if cost > first:
            self._startup_warned = True
            self._warn(f"trials spend {'more than ' if late else '~'}{format_usd(cost)} before their first "
                       f"report, above the first rung {format_usd(first)}: raise scheduler.min_usd")
