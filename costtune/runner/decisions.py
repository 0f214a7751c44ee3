"""What the controller makes of an attempt's reports and of its deadlines: the report rule and
the rung verdicts.

Every line a trial prints goes through ``protocol.parse_line``: a bad line is ignored with a
warning (shown, and stored with the trial), a non-finite metric is dropped with one, a non-finite
objective fails the trial. At a deadline a trial is judged at its rung on what this attempt
reported, or its reservation is extended by a share of what the cap has left.

Rungs are start-up-aware: a rung level counts the money a trial spent after its attempt's first
report (plus the level it had been promoted to before a relaunch), so a trial on an instance with a
long start-up gets as much training at a rung as one that starts fast. Until the first report comes,
an attempt's deadline holds an estimate of its start-up (the median time to first report seen on its
instance type, at first the simulated ``startup_seconds`` and the workload's first step for its configuration,
as ``costtune plan`` counts them); the first report re-aims it exactly. An
attempt whose start-up outruns that gets graces (each the larger of the first rung and the estimate) until
its spend before a first report reaches its top rung's money: it is never judged on nothing while it may
still report."""

from __future__ import annotations

import logging
import statistics
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
from costtune.runner.attempts import STARTUP_SEEN
from costtune.runner.curving import EXTEND
from costtune.words import BUDGET_STOP

if TYPE_CHECKING:
    from costtune.prices.billing import BillingRule
    from costtune.providers.base import Provider, Status
    from costtune.runner.attempts import LiveAttempt
    from costtune.runner.firststeps import FirstSteps
    from costtune.schedulers import CurveScheduler, RungScheduler
    from costtune.store import ClaimedTrial, Store
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
    _warn: Callable[[str], None]
    _chunk: Callable[..., int]
    _full_window: Callable[..., str | None]  # admission.py: the policy window a running attempt cannot extend in
    _windows_of: dict[str, Any]  # reservation key -> the policy windows it holds money in (admission.py)
    _watch_deadlines: Callable[[LiveAttempt], None]
    _every_report: bool
    _credited: dict[int, int]  # trial number -> the rung level it was last promoted at
    _paid: dict[int, int]  # trial number -> start-up spend of its earlier attempts in this run (not counted)
    _first_ms: dict[str | None, list[int]]  # instance type -> billable ms at attempts' first reports
    _first_steps: FirstSteps | None  # a simulated sweep's time to a first report, before any is measured
    _count_unreported: Callable[[LiveAttempt], None]  # ending.py
    spec: Any

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
                    self._first_report(live, cost, ms)
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
        from before its interruption), after the rung's worth of money past its first report. One
        that reaches its deadline before its first report (a start-up longer than estimated) gets a
        grace for it, and more up to its top rung's money (``_grace``), when the cap can fund them; then it
        is judged on what there is."""
        live.judge_now = False
        if self.curve is not None and live.rung is None:
            judged = self._curve_deadline(live)  # curving.py: a learning-curve checkpoint
            if judged != EXTEND:
                return judged
        if live.rung is not None and self.rungs is not None:
            if live.attempt_value is None and not live.grace_capped and self._grace(live):
                return None
            if live.attempt_value is None and (not live.grace or live.grace_capped):
                # the cap, not the rung, ended it: no money to carry it to a first report (its own took
                # longer than the estimate); not judged on nothing
                return self._budget_reached(live)
            if live.attempt_value is None and live.grace:
                spent = self.billing.charge(self.provider.poll(live.handle).billable_ms, live.rate)
                self._first_report(live, spent, None, late=True)
                self._count_unreported(live)  # ending.py: none ever reports -> stop launching
            value = live.attempt_value if live.attempt_value is not None else live.value
            decision = self.rungs.judge(live.number, live.rung, value)
            live.decision = self._compared(live, decision.reason)
            self.store.record_verdict(live.claimed.id, live.rung, value, decision.promote,  # stored as made
                                      live.decision)
            if not decision.promote:
                live.judged_out = True
                return "completed" if live.rung == self.rungs.ladder(live.number)[-1] else "stopped"
            nxt = decision.next_rung_micros
            assert nxt is not None
            self._credited[live.number] = live.rung
            # The next rung is as far past this one in money after the first report as in levels.
            target = (live.target or 0) + nxt - live.rung
            extra, rung = max(0, target - live.claimed.prior_cost_micros - live.reserved), nxt
        else:
            windows = self._windows_of.get(live.key, ())  # policy windows it also holds money in
            extra = self._chunk(live.rate, must_fit=False, among=len(self._live),
                                caps={w.scope: p.cap_micros for p, w in windows})
            target, rung = (live.target or 0) + extra, None
            if extra == 0:
                cap, spent, held = self.store.balance(self.scope)
                study_full = cap is not None and cap - spent - held < self.billing.charge(1, live.rate)
                policy = None if study_full else self._full_window(windows, self.billing.charge(1, live.rate))
                if policy:
                    live.decision = policy
                    return "policy"
                return self._budget_reached(live)
        try:
            if extra:
                self.store.extend(live.key, extra)
        except CapExceeded as exc:
            windows = self._windows_of.get(live.key, ())
            policy = None if exc.scope == self.scope else self._full_window(windows, extra, exc.scope)
            if policy is None:
                money = _cap_words(exc.cap_micros, exc.spent_micros, exc.reserved_micros, own=live.reserved)
                return self._budget_stop(live, f"budget.usd: cannot fund the next {format_usd(extra)}, {money}")
            live.decision = f"{policy}: cannot fund the next {format_usd(extra)}"
            return "policy"
        live.reserved += extra
        live.aim(self.billing, target, rung)
        if self.curve is not None:
            self._curve_aim(live)
        self._watch_deadlines(live)
        return None

    def _grace(self, live: LiveAttempt) -> bool:
        """Extend the reservation for the attempt's first report, by the larger of the first rung and
        the start-up estimate (or what the cap has left when that is less but at least the first rung).

        An attempt is never judged on nothing while it may still report: a start-up that outruns the
        estimate (a command trial's, before any attempt measured one, is estimated at 0) gets graces
        until its spend before a first report reaches what bounds the whole trial, its top rung's money
        past what it is credited (budget.trial_seconds and the cap bound it too); the first grace is given
        whole. False when that is spent (it is then judged on what there is) or the cap cannot fund one
        (``grace_capped``: it stops, "budget")."""
        ladder = self.rungs.ladder(live.number)  # type: ignore[union-attr]
        guess = self._startup_guess(live.instance_type, live.rate, live.claimed.params, max(live.start_step, 0))
        grace = max(ladder[0], guess)
        if live.grace:  # a start-up longer than the estimate and a grace: on, up to the whole trial's money
            bound = live.claimed.prior_cost_micros + max(ladder[-1] - live.credited, 0) + guess
            grace = min(grace, bound - (live.target or 0))
            if grace <= 0:
                return False
        first_rung = ladder[0]
        try:
            self.store.extend(live.key, grace)
        except CapExceeded:
            # Not the whole grace: what the cap has left, when that is at least a rung's worth (a first
            # report is often a step away; judging the trial on nothing would waste all it has spent).
            cap, spent, held = self.store.balance(self.scope)
            grace = 0 if cap is None else cap - spent - held
            if grace < max(first_rung, self.billing.charge(1, live.rate)):
                live.grace_capped = live.grace  # after a grace: the cap, not the rung, ends it
                return False
            try:
                self.store.extend(live.key, grace)
            except CapExceeded:
                live.grace_capped = live.grace
                return False
            live.grace_capped = True  # what the cap had left: a trial still without a report is the budget's
        live.grace = True
        live.reserved += grace
        live.aim(self.billing, (live.target or 0) + grace, live.rung)
        self._watch_deadlines(live)
        return True

    def _startup_guess(self, instance_type: str | None, rate: int, params: dict[str, Any] | None = None,
                       step: int = 0) -> int:
        """Estimated spend of an attempt on ``instance_type`` at ``rate`` before its first report, micros:
        the billing rule's charge for the median time to first report of the latest attempts on that
        type in this run, or, before any, what ``costtune plan`` counts for it (``runner.firststeps.FirstSteps``):
        the simulation's ``startup_seconds`` and the workload's time for the first step (``step``) of the
        configuration ``params`` on that type (start-up alone without ``params``; 0 when nothing is known)."""
        seen = self._first_ms.get(instance_type)
        if seen:
            ms = round(statistics.median(seen[-STARTUP_SEEN:]))
        elif self._first_steps is not None:
            ms = self._first_steps.first_report_ms(params, instance_type, step)
        else:
            ms = 0
        return self.billing.charge(ms, rate) if ms > 0 else 0

    def _counted(self, claimed: ClaimedTrial, instance_type: str | None, rate: int, start_step: int) -> int:
        """The money a (relaunched) trial spent that counts toward its rungs before this attempt: its
        earlier spend less their start-ups (each attempt's spend before its first report; for attempts of
        an earlier run, the current estimate each), never below the level it was last promoted at.
        0 when this attempt restarts at step 0 (``start_step``, no checkpoint): the training that
        money bought is gone, so its ladder starts again (a value reported after 3 steps is not a
        top rung's)."""
        prior = claimed.prior_cost_micros
        if not prior or start_step <= 0:
            return 0
        paid = self._paid.get(claimed.number)
        if paid is None:
            paid = (claimed.attempt_number - 1) * self._startup_guess(instance_type, rate, claimed.params)
        return max(self._credited.get(claimed.number, 0), prior - paid)

    def _compared(self, live: LiveAttempt, reason: str) -> str:
        """The verdict with what it compared: money after the first report, and the start-up left out."""
        if live.base is None:
            top = self.rungs.ladder(live.number)[-1] if self.rungs is not None else None
            within = f" within its top rung's money ({format_usd(top)} max_usd)" if top and live.grace else ""
            return f"{reason}; judged without a first report from this attempt{within}"
        startup = live.base - live.claimed.prior_cost_micros
        after = f" (on top of {format_usd(live.credited)} before a relaunch)" if live.credited else ""
        return (f"{reason}; compared on its value after {format_usd(max(0, (live.target or 0) - live.base))} "
                f"spent past its first report{after}, its {format_usd(startup)} start-up not counted")

    def _budget_reached(self, live: LiveAttempt) -> str:
        """Stop ``live``: the cap has nothing left for its next segment. One wording for every scheduler: "before
        its first report" when this attempt has not reported its objective yet (its start-up and first step
        cost more than the cap left it), with the study's money (``_cap_words``)."""
        cap, spent, held = self.store.balance(self.scope)
        when = " before its first report" if live.attempt_value is None else ""
        return self._budget_stop(live, f"budget.usd reached{when}, {_cap_words(cap, spent, held, own=live.reserved)}")

    def _budget_stop(self, live: LiveAttempt, why: str) -> str:
        """Stop ``live`` because the study's cap cannot fund it: ``why`` is its decision and, noted on its
        attempt, the reason `costtune trials STUDY N` shows. Returns the stop reason, "budget"."""
        live.decision = why
        self.store.add_attempt_note(live.attempt_id, f"{BUDGET_STOP}: {why.removeprefix('budget.usd: ')}")
        return "budget"

    def _first_report(self, live: LiveAttempt, cost: int, ms: int | None, *, late: bool = False) -> None:
        """This attempt's first objective value, ``cost`` micros and ``ms`` billable into it (``late``: its
        grace ran out without one). Its rung deadline is re-aimed at the rung's money past this report and
        the reservation grown to cover it; when the cap cannot, it stops ("budget"), not judged on less.
        A curve scheduler starts its curve here (curving.py)."""
        if self.curve is not None and live.curve_first is None:
            self._curve_start(live, cost)
        if late or live.base is not None:
            return
        if ms is not None:
            self._first_ms.setdefault(live.instance_type, []).append(ms)
        live.base = live.claimed.prior_cost_micros + cost
        self._paid[live.number] = self._paid.get(live.number, 0) + cost
        if self.rungs is None or live.rung is None or live.stop_reason is not None:
            return
        target = live.base + live.rung - live.credited
        held = live.claimed.prior_cost_micros + live.reserved
        if target > held:
            try:
                self.store.extend(live.key, target - held)
                live.reserved += target - held
            except CapExceeded as exc:  # judged on less training than its peers: not judged, stopped
                where = "budget.usd" if exc.scope == self.scope else exc.scope
                why = (f"{where}: cannot fund the {format_usd(live.rung - live.credited)} past its "
                       f"first report that the {format_usd(live.rung)} rung compares")
                if exc.scope == self.scope:
                    live.stop_reason = self._budget_stop(
                        live, f"{why}, {_cap_words(exc.cap_micros, exc.spent_micros, exc.reserved_micros)}")
                else:
                    live.stop_reason, live.decision = "policy", why
                return
        live.aim(self.billing, target, live.rung)
        self._watch_deadlines(live)


def _cap_words(cap: int | None, spent: int, held: int, *, own: int | None = None) -> str:
    """The study's money when its cap stopped a trial: ``with $0.049 spent and $0.0008 held by running
    trials of the $0.05 cap``; with ``own`` (what this attempt held, its share when workers split the
    cap, micros) first: ``it used up the $0.0167 it held, with $0 spent and $0.05 held by running trials
    (its own included) of the $0.05 cap``."""
    of_cap = "" if cap is None else f" of the {format_usd(cap)} cap"
    if own is None:
        return f"with {format_usd(spent)} spent and {format_usd(held)} held by running trials{of_cap}"
    return (f"it used up the {format_usd(own)} it held, with {format_usd(spent)} spent and {format_usd(held)} held "
            f"by running trials (its own included){of_cap}")
