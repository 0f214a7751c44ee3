"""The controller's policy step: admit each launch, audit the verdict, fire threshold alerts.

``_admit`` runs before the reservation: it evaluates the spend policies in force that match the
sweep's tags (reloaded from the store every few seconds) and returns the verdict whose window scopes
and caps the reservation then takes, in the same transaction as the study's scope. A denied trial
goes back to the queue with the reason stored on it (``costtune trials``) and shown in the progress
line. Verdicts are audited (``policy.allow``/``policy.amend``/``policy.deny``; a denial repeated for
the same trial and reason is audited once per run).

An amend that moves a trial whose instance type or market is searched (in its params) to another of
the searched choices, before its first launch, is written into the trial's stored params as the
budget's placement move is (``placing.py``, ``Store.replace_params``), with the attempt's note saying
the policy placed it there: reports, the leaderboard and the sampler's cost model then see where it
ran. An amend on a later attempt leaves the params as history; reports show the attempts' real
placement, marked (``costtune.reports.placed``).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from costtune.errors import CapExceeded, LaunchLimit
from costtune.history import TrialState
from costtune.money import format_usd
from costtune.runner.placing import movable
from costtune.words import plural

if TYPE_CHECKING:
    from costtune.policies import LaunchRequest, Policy, Verdict, WindowSpan
    from costtune.policies.alerts import WebhookSender
    from costtune.runner.attempts import LiveAttempt
    from costtune.runner.status import RunStatus
    from costtune.spec import SweepSpec
    from costtune.store import ClaimedTrial, Store
    from costtune.study import Study

log = logging.getLogger(__name__)
DENIED_PREFIX = "denied: "  # the error of a trial whose own placement a policy rule refuses
_RELOAD_S = 5.0  # wall seconds between reads of the policies in force
_STOP_CHECK_S = 2.0  # wall seconds between checks of stop-running thresholds
_AMOUNTS = re.compile(r"\$[0-9][0-9.,]*")  # money in a reason: not part of what makes two reasons differ


def launch_request(spec: SweepSpec, instance_type: str | None, market: str | None) -> LaunchRequest:
    """What a launch of ``spec``'s trial on ``instance_type``/``market`` asks the spend policies for: its rate
    (micro-dollars an hour), the regions it may run in, and every placement of the sweep (with its rate) an
    amending policy may pick from. ``costtune plan`` asks the same (``costtune.plan.rules``)."""
    from costtune.policies import LaunchRequest

    res = spec.resources
    choices: dict[tuple[str | None, str | None], int] = {}
    for key, rate in res.rates.items():
        itype, _, mkt = key.rpartition("/")
        if mkt in ("spot", "on-demand"):  # not a market policy's reservation rate
            choices[(itype or None, mkt)] = rate
    rate = choices.get((instance_type, market), res.usd_per_hour_micros)
    choices.setdefault((instance_type, market), rate)
    aws = getattr(res, "aws", None)
    regions = tuple(getattr(aws, "regions", ()) or ()) or ((res.region,) if res.region else ())
    return LaunchRequest(tags=spec.tags, instance_type=instance_type, market=market, rate_micros=rate,
                         regions=regions, choices=choices)


class Admission:
    """Mixed into ``SweepController``; uses its fields."""

    spec: SweepSpec
    study: Study
    store: Store
    status: RunStatus
    _live: dict[int, LiveAttempt]
    _idle: str
    _warn: Callable[[str], None]
    calendar: Callable[[], datetime]  # aware UTC now; injectable for tests
    _policies: list[Policy] | None = None
    _policies_read = 0.0
    _denied: str | None = None  # why the last claim was refused by a policy (progress line, end reason)
    _denials: dict[int, str]
    _windows_of: dict[str, tuple[tuple[Policy, WindowSpan], ...]]
    _fired: set[tuple[str, str]]
    _stop_fired: set[str]  # window scopes whose stop-launching/stop-running threshold this run saw crossed
    _webhooks: WebhookSender | None = None
    _stop_checked = 0.0
    _placement_notes: dict[int, str]  # trial id -> why its placement was changed (the attempt's note)
    _note_placement: Callable[[ClaimedTrial, str], None]  # placing.py

    def _setup_policies(self, calendar: Callable[[], datetime] | None) -> None:
        self._denials, self._windows_of, self._fired, self._stop_fired = {}, {}, set(), set()
        self._repeats: dict[str, list[Any]] = {}  # reason without amounts -> [times seen, audit action, reason]
        self.calendar = calendar or (lambda: datetime.now(UTC))

    def _policies_in_force(self) -> list[Policy]:
        now = time.monotonic()
        if self._policies is None or now - self._policies_read >= _RELOAD_S:
            self._policies = self.store.policies()
            self._policies_read = now
        return self._policies

    def _admit(self, claimed: ClaimedTrial, instance_type: str | None, market: str | None) -> Verdict | None:
        """The verdict of the policies that match this sweep, or None when none does (nothing to audit)."""
        from costtune.policies import admit, matching

        policies = self._policies_in_force()
        if not policies or not matching(policies, self.spec.tags):
            return None
        request = launch_request(self.spec, instance_type, market)

        def spend(scope: str) -> tuple[int, int]:
            _cap, spent, held = self.store.balance(scope)
            return spent, held

        return admit(request, policies, self.calendar(), spend, self.store.fired_in)

    def _market_for(self, claimed: ClaimedTrial, instance_type: str | None,
                    market: str | None) -> tuple[str | None, str]:
        """``market: cheapest-expected``: spot or on-demand for this launch, and the note that says why
        (``costtune.policies.market``); any other market as it is, with no note."""
        from costtune.policies.market import DEFAULT_BUCKET, bucket_rate, choose_market, observed_rate
        from costtune.spec.resources import CHEAPEST

        if market != CHEAPEST:
            return market, ""
        res = self.spec.resources
        spot, on_demand = res.rates[f"{instance_type}/spot"], res.rates[f"{instance_type}/on-demand"]
        sim = res.simulation
        prior = sim.preemptions_per_hour if sim is not None else bucket_rate(DEFAULT_BUCKET)
        rate = observed_rate(prior, *self.store.spot_record(instance_type))
        hours = self._expected_hours(claimed, on_demand)
        checkpoints = sim.checkpoint if sim is not None else False
        at_risk = hours / max(1, sim.max_steps) if checkpoints and sim is not None else hours
        startup = (sim.startup_seconds if sim is not None else 0.0) / 3600
        choice = choose_market(spot, on_demand, hours=hours, at_risk_hours=at_risk, rate_per_hour=rate,
                               startup_hours=startup)
        return choice.market, choice.note()

    def _expected_hours(self, claimed: ClaimedTrial, on_demand_rate: int) -> float:
        """How long the trial's remaining work is expected to take: up to its top rung (dollar rungs at the
        on-demand rate), else budget.trial_seconds, else the study's mean completed attempt, else 1 hour."""
        rungs = getattr(self, "rungs", None)
        if rungs is not None and on_demand_rate > 0:
            top = rungs.ladder(claimed.number)[-1]
            return max(top - claimed.prior_cost_micros, 1) / on_demand_rate
        if self.spec.budget.trial_seconds is not None:
            return self.spec.budget.trial_seconds / 3600
        mean = self.store.mean_attempt_hours(self.study.id)
        return mean if mean else 1.0

    def _refused(self, claimed: ClaimedTrial, verdict: Verdict, exc: Exception | None = None, *,
                 where: str | None = None) -> None:
        """Back to the queue with why (stored on the trial, shown in progress), audited once per reason.

        ``where``: the placement whose cost to a first report (``exc``'s asked amount, ``CapExceeded``)
        the window cannot carry, as the budget-tail rule says it for the study's cap."""
        if exc is not None:  # the ledger refused it: the policy whose window cap or max_instances decided
            decider, reason = self._limit_reason(verdict, exc, where)
            verdict = replace(verdict, kind="deny", policy=decider, reason=reason)
        reason = verdict.reason
        if isinstance(exc, CapExceeded):  # a window's hard cap is reached: its thresholds up to 100% fire
            self._check_thresholds(tuple((p, w) for p, w in verdict.windows if w.scope == exc.scope), full=True)
        from costtune.runner.ending import BUDGET

        self.store.finish_trial(claimed.id, TrialState.QUEUED, error=f"waiting: {reason}")
        self._idle = BUDGET
        self._denied = reason
        if self._denials.get(claimed.id) != reason:
            self._denials[claimed.id] = reason
            self._audit_verdict("deny", claimed, verdict, reason)
            self._warn_once(reason, f"trial {claimed.number} not launched: {reason}", "policy.deny")
        return None

    def _rejected(self, claimed: ClaimedTrial, verdict: Verdict) -> None:
        """A rule refuses the trial's own placement (a searched instance type or market) while other
        placements of the sweep pass: it can never run, so it fails with ``denied: <policy>: <rule>`` as
        its error (counted in budget.trials, not in budget.max_failures' streak) and the sweep carries on."""
        reason = verdict.reason
        self.store.finish_trial(claimed.id, TrialState.FAILED, error=f"{DENIED_PREFIX}{reason}")
        self.status.denied += 1
        self.status.finished += 1  # it ended in this run, failed: this run's count (`this run: ...`) holds it
        self.status.failed += 1
        self._audit_verdict("deny", claimed, verdict, reason)
        self._warn_once(reason, f"trial {claimed.number} denied (failed, not launched): {reason}", "policy.deny")
        return None

    def _window_short(self, verdict: Verdict, needed: int) -> CapExceeded | None:
        """The first capped window of ``verdict`` with less than ``needed`` left, as the ledger would say it."""
        for policy, window in verdict.windows:
            if policy.cap_micros is not None:
                _cap, spent, held = self.store.balance(window.scope)
                if policy.cap_micros - spent - held < needed:
                    return CapExceeded(window.scope, policy.cap_micros, spent, held, needed)
        return None

    def _full_window(self, windows: tuple[tuple[Policy, WindowSpan], ...], needed: int,
                     scope: str | None = None) -> str | None:
        """Why a running attempt stops for a policy: the first capped window (``scope`` when given) with
        less than ``needed`` micro-dollars left, named with its policy; None when none is short."""
        for policy, window in windows:
            if policy.cap_micros is None or (scope is not None and window.scope != scope):
                continue
            _cap, spent, held = self.store.balance(window.scope)
            if scope is not None or policy.cap_micros - spent - held < needed:
                return (f"policy {policy.name!r}: cap_usd {format_usd(policy.cap_micros)} of the {window.label} "
                        f"window reached ({format_usd(spent)} spent, {format_usd(held)} held)")
        return None

    def _limit_reason(self, verdict: Verdict, exc: Exception, where: str | None = None) -> tuple[str | None, str]:
        """The policy whose window cap or ``rules.max_instances`` refused the reservation, and why;
        ``where``: the placement whose cost to a first report the window's room cannot carry."""
        for policy, window in verdict.windows:
            if isinstance(exc, CapExceeded) and exc.scope == window.scope:
                left = max(0, exc.cap_micros - exc.spent_micros - exc.reserved_micros)
                need = (f"the trial needs {format_usd(exc.asked_micros)}" if where is None else
                        f"cannot carry the trial to its first report (~{format_usd(exc.asked_micros)} on {where})")
                return policy.name, (f"policy {policy.name!r}: cap_usd {format_usd(exc.cap_micros)} of the "
                                     f"{window.label} window: {format_usd(left)} left, {need}")
            if isinstance(exc, LaunchLimit) and exc.prefix == f"policy:{policy.name}:":
                return policy.name, (f"policy {policy.name!r}: rules.max_instances: {plural(exc.held, 'launch')} held, "
                                     f"at most {exc.limit}")
        return verdict.policy, str(exc)

    def _admitted(self, claimed: ClaimedTrial, verdict: Verdict, key: str) -> bool:
        """Audit the allow or amend of a launch that got its reservation and check its windows' thresholds;
        False (reservation released, trial re-queued with the policy's reason) when its own reservation
        crossed a stop-launching or stop-running threshold: it would only be stopped again."""
        self._windows_of[key] = verdict.windows
        self._check_thresholds(verdict.windows)
        if self._stop_fired & set(verdict.scopes):
            self._windows_of.pop(key, None)
            if self.store.reservation(key) is not None:
                self.store.release(key)
            req = verdict.request
            again = self._admit(claimed, req.instance_type, req.market)
            if again is not None and again.kind == "deny":
                self._refused(claimed, again)
                return False
        self._denied = None
        self._denials.pop(claimed.id, None)
        self._audit_verdict(verdict.kind, claimed, verdict, verdict.reason)
        if verdict.kind == "amend":
            self._warn_once(verdict.reason, f"trial {claimed.number}: {verdict.reason}", "policy.amend")
        return True

    def _amend_params(self, claimed: ClaimedTrial, verdict: Verdict) -> ClaimedTrial:
        """The admitted trial with the params of the placement an amend launches it on: when the sweep
        searches the amended dimension, the amended value is one of its choices, the trial is the
        sampler's (not a hand-queued trial or a grid point) and this is its first launch, its stored params
        change (the store refuses once an attempt exists or another controller holds it). Any amend that
        moved the launch is said in the attempt's note; the trial as it was when its params stay."""
        from costtune.errors import StoreError
        from costtune.spec.resources import INSTANCE_PARAM, MARKET_PARAM

        asked, got = verdict.asked, verdict.request
        if verdict.kind != "amend" or asked is None or (asked.instance_type, asked.market) == (
                got.instance_type, got.market):
            return claimed
        proposed = " ".join(str(v) for v in (asked.instance_type, asked.market) if v)
        placed = " ".join(str(v) for v in (got.instance_type, got.market) if v)
        self._note_placement(claimed, f"placed on {placed} instead of the proposed {proposed} by {verdict.reason}")
        searched = {name: dim["choices"] for name, dim in self.spec.resources.searched.items()}
        params = dict(claimed.params)
        for name, before, after in ((INSTANCE_PARAM, asked.instance_type, got.instance_type),
                                    (MARKET_PARAM, asked.market, got.market)):
            if name in searched and name in params and before != after and after in searched[name]:
                params[name] = after
        if params == claimed.params or not movable(claimed, self.spec):
            return claimed
        try:
            self.store.replace_params(claimed.id, params, owner=self.study.owner)
        except StoreError:  # launched before, or no longer this controller's: its params are history
            return claimed
        return replace(claimed, params=params)

    def _warn_once(self, reason: str, text: str, action: str) -> None:
        """Show a policy warning the first time its reason comes up in this run; the repeats are counted
        (every one is in the audit trail) and summed up at the end of the run. Reasons that differ only
        in their amounts (a window's room shrinking by a few cents between two tries) are one reason."""
        seen = self._repeats.setdefault(_AMOUNTS.sub("$", reason), [0, action, reason])
        seen[0] += 1
        seen[2] = reason  # the summary at the end names the latest amounts
        if seen[0] == 1:
            self._warn(text)

    def _audit_verdict(self, kind: str, claimed: ClaimedTrial, verdict: Verdict, reason: str) -> None:
        detail: dict[str, Any] = {
            "study": self.study.name, "trial": claimed.number, "attempt": claimed.attempt_number, "verdict": kind,
            "policy": verdict.policy, "policies": list(verdict.matched), "reason": reason,
            "windows": verdict.scopes}
        if kind == "amend":
            detail["amended"] = verdict.request.describe()
        detail["request"] = (verdict.asked or verdict.request).describe()
        self.store.audit(f"policy.{kind}", study_id=self.study.id, detail=detail)

    # -- thresholds ------------------------------------------------------------------------
    def _after_charge(self, key: str) -> None:
        windows = self._windows_of.pop(key, ())
        if windows:
            self._check_thresholds(windows)

    def _check_thresholds(self, windows: tuple[tuple[Policy, WindowSpan], ...], *, full: bool = False) -> None:
        """Fire every threshold these windows crossed that no controller fired yet (the store decides);
        ``full``: the windows' hard caps refused a launch (see ``alerts.crossed``)."""
        from costtune.policies.alerts import WebhookSender, crossed

        now = self.calendar()
        for policy, window in windows:
            if not policy.thresholds and policy.soft_cap_micros is None:
                continue
            _cap, spent, held = self.store.balance(window.scope)
            for crossing in crossed(policy, window, spent, held, now, study=self.study.name, full=full):
                if {"stop-running", "stop-launching"} & set(crossing.threshold.actions):
                    self._stop_fired.add(window.scope)
                if "stop-running" in crossing.threshold.actions:
                    self._stop_running(window.scope, crossing.body["text"])
                if (window.scope, crossing.label) in self._fired:
                    continue
                self._fired.add((window.scope, crossing.label))
                if not self.store.fire_alert(policy.name, window.scope, crossing.label,
                                             {**crossing.body, "study_id": self.study.id}):
                    continue  # another controller (or an earlier run) fired it
                actions = crossing.body["actions"]
                if "log" in actions:
                    self._warn(crossing.body["text"])
                if "webhook" in actions and policy.webhook is not None:
                    if self._webhooks is None:
                        self._webhooks = WebhookSender(self._record_webhook)
                    self._webhooks.send(policy.webhook, crossing.body)

    def _record_webhook(self, outcome: dict[str, Any]) -> None:
        """From the webhook thread: what the delivery did (its own transaction: not the loop's batch)."""
        self.store.audit("policy.webhook", study_id=self.study.id, detail=outcome)

    def _stop_running(self, scope: str, why: str) -> None:
        """stop-running: stop this controller's attempts that hold money in ``scope``; re-queued."""
        for live in self._live.values():
            if live.stop_reason is None and any(w.scope == scope for _p, w in self._windows_of.get(live.key, ())):
                live.stop_reason = "interrupted"
                self._warn(f"trial {live.number} stopped (re-queued): {why}")

    def _policy_tick(self) -> None:
        """On a wall clock, look at running attempts' windows every few seconds: spend that other
        controllers booked may cross a stop-running threshold."""
        now = time.monotonic()
        if not self._windows_of or now - self._stop_checked < _STOP_CHECK_S:
            return
        self._stop_checked = now
        seen: dict[str, tuple[Policy, WindowSpan]] = {}
        for windows in self._windows_of.values():
            for policy, window in windows:
                if any("stop-running" in t.actions for t in policy.thresholds):
                    seen[window.scope] = (policy, window)
        if seen:
            self._check_thresholds(tuple(seen.values()))

    def _close_policies(self) -> None:
        """Sums up repeated policy warnings; waits at most ~1 s for queued webhooks; one warning when any
        delivery failed or was abandoned."""
        for count, action, reason in self._repeats.values():
            if count > 1:
                done = "amended" if action == "policy.amend" else "refused"
                self._warn(f"{plural(count - 1, 'more launch')} {done}: {reason} (every one in `costtune audit "
                           f"--action {action}`)")
        self._repeats.clear()
        if self._webhooks is not None:
            sender, self._webhooks = self._webhooks, None
            counts = sender.close()
            bad = counts["failed"] + counts["abandoned"]
            if bad:
                self._warn(f"webhooks: {bad} of {sum(counts.values())} alert deliveries failed or were abandoned "
                           f"(last: {sender.last_error}); see `costtune audit --action policy.webhook`")
