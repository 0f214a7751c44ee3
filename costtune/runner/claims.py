"""What the controller launches next and with what money: claims, reservations, more iterations.

A claimed trial runs only once the ledger holds its next segment (up to its next rung; without
rungs, ten instance-minutes at a time, or an equal share of what is left of a binding cap among the
workers, so a cap is shared rather than taken by the first trial); when the cap has no room the
trial goes back to the queue and is tried again when a running attempt frees money.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from costtune.errors import CapExceeded, LaunchLimit
from costtune.history import TrialState
from costtune.money import format_usd
from costtune.runner.attempts import STARTUP_SEEN, LiveAttempt
from costtune.runner.ending import BUDGET, LIMIT, tail_words
from costtune.schedulers.hyperband import holds_another_iteration
from costtune.store.owner import hostname
from costtune.words import plural

if TYPE_CHECKING:
    from costtune.clock import Clock
    from costtune.policies import Verdict
    from costtune.prices.billing import BillingRule
    from costtune.providers.base import Provider
    from costtune.runner.placing import Placement
    from costtune.runner.status import RunStatus
    from costtune.schedulers import RungScheduler
    from costtune.spec import SweepSpec
    from costtune.store import ClaimedTrial, Store
    from costtune.study import Study

_CHUNK_S = 600  # without rungs, money is reserved ten instance-minutes at a time


class Claims:
    """Mixed into ``SweepController``; uses its fields."""

    spec: SweepSpec
    study: Study
    store: Store
    provider: Provider
    clock: Clock
    virtual: bool
    billing: BillingRule
    rungs: RungScheduler | None
    scope: str
    status: RunStatus
    _live: dict[int, LiveAttempt]
    _stopping: str | None
    _claimable: bool
    _idle: str
    _claimed_at: float
    _halt: str | None
    _checkpoints: bool
    _max_trials: int | None
    _launched_at_extension: int
    _short: tuple[int, int]  # the last unfunded claim: room left under the cap, money its trial needed
    _short_at: str | None  # its placement when what it needed was the cost to its first report
    _short_least: int | None  # the least an unfunded claim of this fill needed (micro-dollars)
    _short_tail: bool  # the money left covered a minimum charge: the reason is the budget's tail, not its end
    _price_warnings: set[str]  # warnings about placed attempts' prices, each shown once
    _warn: Callable[[str], None]
    _credited: dict[int, int]  # trial number -> the rung level it was last promoted at (decisions.py)
    _startup_guess: Callable[..., int]  # decisions.py: (instance type, rate[, params, step]) -> micros
    _counted: Callable[[ClaimedTrial, str | None, int, int], int]  # decisions.py
    _first_ms: dict[str | None, list[int]]  # instance type -> billable ms at first reports in this run
    _first_ms_before: dict[str | None, list[int]]  # the same for the study's earlier runs (store)

    def _on_event(self, message: str) -> None: ...

    # admission.py, the controller's policy step (annotations only: nothing here overrides them)
    _admit: Callable[[ClaimedTrial, str | None, str | None], Verdict | None]
    _refused: Callable[..., None]
    _rejected: Callable[[ClaimedTrial, Verdict], None]
    _admitted: Callable[[ClaimedTrial, Verdict, str], bool]
    _window_short: Callable[[Verdict, int], CapExceeded | None]
    _market_for: Callable[[ClaimedTrial, str | None, str | None], tuple[str | None, str]]
    _amend_params: Callable[[ClaimedTrial, Verdict], ClaimedTrial]
    _windows_of: dict[str, Any]
    _denied: str | None

    # placing.py: a searched placement the budget can carry, when the proposed one it cannot
    _move: Callable[[ClaimedTrial, str, int, int], tuple[ClaimedTrial | None, Placement | None]]
    _placement_notes: dict[int, str]

    def _another_iteration(self) -> bool:
        """At the end of a Hyperband (SH, BOHB) plan, plan one more iteration if what is left of the cap
        holds one: as planned, or as the plan's last iteration really cost (trials that end below their
        rungs leave money the plan counted as spent). That cost is read from the stored trials, so a
        resumed sweep (a raised cap) that has spent nothing yet judges it the same way. The ledger still
        stops anything past the cap."""
        add = getattr(self.rungs, "add_iteration", None)
        if (add is None or self._idle != LIMIT or self._stopping or self._halt
                or self.status.launched == self._launched_at_extension):
            return False  # not a plan, not the plan's end, or the last extension launched nothing
        if self.spec.max_trials is not None and self.spec.max_trials <= (self._max_trials or 0):
            return False  # budget.trials (or the sampler) is the limit, not the plan
        cap, spent, reserved = self.store.balance(self.scope)
        left = None if cap is None else cap - spent - reserved
        if not holds_another_iteration(left, self.rungs.iteration_cost(),  # type: ignore[union-attr]
                                       self._last_iteration_cost()):
            return False
        add()
        self._launched_at_extension = self.status.launched
        self._max_trials = self._trial_limit()
        self._claimable = True
        self._on_event(f"budget left for another {self.rungs.kind} iteration: "  # type: ignore[union-attr]
                       f"{plural(self._max_trials or 0, 'trial')} planned")
        return True

    def _last_iteration_cost(self) -> int:
        """What the trials of the plan's last iteration were charged in all (micro-dollars, every run)."""
        numbers = self.rungs.last_iteration()  # type: ignore[union-attr]
        return sum(t.cost_micros for t in self.study.history().trials if t.number in numbers)

    def _trial_limit(self) -> int | None:
        """How many trials the study may hold: budget.trials / the sampler, and a rung plan's size."""
        limits = [n for n in (self.spec.max_trials, self.rungs.max_trials() if self.rungs else None) if n is not None]
        return min(limits) if limits else None

    def _fill(self) -> list[LiveAttempt]:
        """Claim and book trials for the free worker slots. A queued trial the money left (or a spend
        policy) cannot carry stays queued with its note and is passed over: the next queued trial is
        tried, then a fresh proposal, unless a trial the sampler proposed is among those waiting (its
        placement already was the cheapest the sweep searches, so a new proposal would only wait too;
        hand-placed trials are skipped, never moved). A claim that gives nothing (no trial to start, or
        none the money can fund now) is not tried again until something changes: an attempt ends,
        the plan grows, or (wall clock) a second passes."""
        pending: list[LiveAttempt] = []
        workers = self.spec.resources.workers
        passed: list[int] = []  # ids of the queued trials that wait for money or a policy (this pass)
        propose = True
        self._short_least = None
        while len(self._live) + len(pending) < workers and self._claimable and not self._stopping and not self._halt:
            claimed = self.study.claim(max_trials=self._max_trials, with_output_dir=self.provider.name != "simulated",
                                       skip=passed, propose=propose)
            if claimed is None:
                self._idle = BUDGET if passed else LIMIT
                break
            self._idle = LIMIT
            live = self._book(claimed, among=workers - len(pending) - len(self._live))
            if live is not None:
                pending.append(live)
            elif self._idle == BUDGET:  # re-queued, waiting: pass it over
                passed.append(claimed.id)
                propose = propose and claimed.source != "sampler"
        else:
            return pending
        self._claimable = False
        self._claimed_at = time.monotonic()
        return pending

    def _book(self, claimed: ClaimedTrial, *, among: int = 1) -> LiveAttempt | None:
        """Reserve the trial's next segment and book its attempt; None if it cannot run now.

        Without rungs a binding cap's room is shared: the trial takes at most 1/``among`` of it."""
        res = self.spec.resources
        itype, market = res.placement(claimed.params)
        market, market_note = self._market_for(claimed, itype, market)  # market: cheapest-expected
        verdict = self._admit(claimed, itype, market)  # spend policies: allow, amend or deny (admission.py)
        if verdict is not None:
            if verdict.lasting_deny:  # its own placement is refused: it can never run, the others may
                return self._rejected(claimed, verdict)
            if verdict.kind == "deny":
                return self._refused(claimed, verdict)
            itype, market = verdict.request.instance_type, verdict.request.market
        rate = res.rate_for(itype, market, at=self.clock.now() if self.virtual else None)
        start = claimed.last_step + 1 if self._checkpoints and claimed.last_step is not None else 0
        reach = self._reach(itype, rate, claimed.params, start)  # what it costs to reach its first report here
        if reach:
            cap, spent, held = self.store.balance(self.scope)
            if cap is not None and cap - spent - held < reach:  # it could only be stopped before reporting
                where = proposed = self._placement_words(itype, market, rate)
                if cap - spent < reach:  # never on this placement: another searched one may do (placing.py)
                    moved, cheapest = self._move(claimed, where, reach, cap - spent)
                    if moved is not None:
                        return self._book(moved, among=among)
                    if cheapest is not None:  # the stop reason names the least any searched placement needs
                        where, reach, rate = cheapest.words, cheapest.reach, cheapest.rate
                # below one minimum charge left, the budget is simply reached (the reason still names the need)
                tail = cap - spent - held >= self.billing.charge(1, rate)
                return self._unfund(claimed, reach, where=where, tail=tail,
                                    proposed=proposed if where != proposed else None)
            short = self._window_short(verdict, reach) if verdict is not None else None
            if short is not None:  # a policy window cannot carry it to its first report: the cap's rule
                return self._refused(claimed, verdict, short, where=self._placement_words(itype, market, rate))
        prior = claimed.prior_cost_micros
        rung = None
        credited = 0
        if self.rungs is not None:
            # Rungs count money spent after a first report: a relaunched trial that goes on from a checkpoint
            # goes on from the level it was last promoted at (one restarting at step 0 starts its ladder
            # again), and its reservation covers this attempt's estimated start-up too.
            credited = self._counted(claimed, itype, rate, start)
            rung = self.rungs.first_rung(claimed.number, credited)
            if rung is None:  # it already spent its whole ladder: nothing to run
                done = TrialState.COMPLETE if claimed.value is not None else TrialState.STOPPED
                self.store.finish_trial(claimed.id, done)
                return None
            amount = max(rung - credited + self._startup_guess(itype, rate, claimed.params, start),
                         self.billing.charge(1, rate))
            plain = max(rung - credited, self.billing.charge(1, rate))
            if amount > plain:  # a cap with room for the rung but not its start-up too: what it has, as before
                cap, spent, held = self.store.balance(self.scope)
                if cap is not None and plain <= cap - spent - held < amount:
                    amount = cap - spent - held
        elif rate == 0:
            amount = 0  # a free trial (a local run with no rate): nothing to reserve or to cap
        else:
            amount = self._chunk(rate, must_fit=True, among=among, caps=verdict.caps if verdict else None)
            if amount == 0:
                short = self._window_short(verdict, max(reach, self.billing.charge(1, rate))) if verdict else None
                if short is not None:  # a policy window has no room for it, not the study
                    return self._refused(claimed, verdict, short)
                return self._unfund(claimed, self.billing.charge(1, rate))
            amount = max(amount, reach)  # a share of a binding cap still carries it to its first report
        key = f"ct-{self.study.id}-{claimed.id}-{claimed.attempt_number}"
        try:
            if amount:
                self.store.reserve(key, [self.scope, *(verdict.scopes if verdict else ())], amount,
                                   caps=verdict.caps if verdict else None,
                                   max_held=verdict.max_held if verdict else None)
        except (CapExceeded, LaunchLimit) as exc:
            if verdict is not None and getattr(exc, "scope", None) != self.scope:
                return self._refused(claimed, verdict, exc)  # a policy's window cap or max_instances
            return self._unfund(claimed, amount)
        if verdict is not None:
            if not self._admitted(claimed, verdict, key):
                return None  # its own reservation crossed a stop threshold: released, re-queued
            claimed = self._amend_params(claimed, verdict)  # an amend's placement in its params (admission.py)
        attempt_id = self.store.start_attempt(
            claimed.id, claimed.attempt_number, idempotency_key=key, provider=self.provider.name,
            rate_micros_per_hour=rate, host=hostname(), region=res.region, instance_type=itype, market=market,
            start_step=start, granularity_s=self.billing.granularity_s, minimum_s=self.billing.minimum_s)
        if market_note:
            self.store.add_attempt_note(attempt_id, market_note)  # `costtune trials STUDY N` shows it
        moved = self._placement_notes.pop(claimed.id, None)
        if moved:  # the budget or a policy amend moved it before this launch (placing.py, admission.py)
            self.store.add_attempt_note(attempt_id, moved)
            self._on_event(f"trial {claimed.number}: {moved}")
        trial_dir = Path(claimed.output_dir or self.study.trial_dir(claimed.number))
        live = LiveAttempt(claimed=claimed, attempt_id=attempt_id, key=key, rate=rate, instance_type=itype,
                           market=market, trial_dir=trial_dir, start_step=start, reserved=amount, target=None,
                           value=claimed.value, step=start - 1, metrics=dict(claimed.metrics or {}),
                           credited=credited)
        # Every reserved segment has a deadline, capped or not: a cap set while the sweep runs
        # (`costtune run --change-cap`, `study.set_cap`) then holds for trials already running.
        live.aim(self.billing, prior + amount if amount else None, rung)
        return live

    def _place(self, live: LiveAttempt) -> None:
        """Charge a cloud attempt at the rate of the offer it landed on (fail-over may have moved it to
        another zone, or to on-demand); its deadline is re-aimed at that rate within what it reserved."""
        place = getattr(self.provider, "placement", None)
        got = place(live.handle) if place is not None else None
        if place is not None and got is None:
            return  # still waiting for capacity: asked again next tick
        live.placed = True
        if got is None:
            return
        if got.warning and got.warning not in self._price_warnings:
            self._price_warnings.add(got.warning)
            self._warn(got.warning)
        if got.rate_micros_per_hour <= 0:
            return  # the provider knows no better rate: the booked one stays
        live.rate, live.market = got.rate_micros_per_hour, got.market
        self.store.set_attempt_placement(live.attempt_id, rate_micros_per_hour=live.rate, market=got.market,
                                         region=got.region)
        self.store.add_attempt_note(live.attempt_id, getattr(live.handle, "note", ""))  # where fail-over placed it
        self.store.add_attempt_note(live.attempt_id, f"charged {got.source}")
        live.aim(self.billing, live.target, live.rung)

    def _unfund(self, claimed: ClaimedTrial, needed: int, *, where: str | None = None, tail: bool = True,
                proposed: str | None = None) -> None:
        """The cap leaves too little for it now: back to the queue, tried again when money frees up.

        What the cap has room for and what the trial needed (micro-dollars) go to the progress line;
        ``where``: the placement whose cost to a first report (``needed``) the room cannot carry, named
        in the run's stop reason (ending.py) and stored on the trial (``costtune trials STUDY``) until
        it is claimed again. ``proposed``: the trial's own placement (its row's params) when ``where`` is
        the cheaper searched one it would be moved to before launch (placing.py): the note says so, so the
        row and the note agree (``... on g4dn.xlarge spot; would move to g4dn.xlarge spot from its proposed
        g4dn.xlarge on-demand``)."""
        cap, spent, reserved = self.store.balance(self.scope)
        room = max(0, (cap or 0) - spent - reserved)
        if self._short_least is None or needed < self._short_least:  # the least any waiting trial needs
            self._short_least = needed
            self._short, self._short_at, self._short_tail = (room, needed), where, tail
        else:
            self._short = (room, self._short[1])
        if where is None:
            why = f"waiting: budget.usd reached: {format_usd(room)} left, this trial needs {format_usd(needed)}"
        elif not tail:
            why = (f"waiting: budget.usd reached: {format_usd(room)} left, this trial needs ~{format_usd(needed)} "
                   f"to a first report on {where}")
        else:
            why = f"waiting: {tail_words(room, needed, where)}"
        if where is not None and proposed is not None:
            why += f"; would move to {where} from its proposed {proposed}"
        self.store.finish_trial(claimed.id, TrialState.QUEUED, error=why)
        self._idle = BUDGET
        self._denied = None
        return None

    def _reach(self, instance_type: str | None, rate: int, params: dict[str, Any] | None = None,
               step: int = 0) -> int:
        """Micro-dollars an attempt of ``params`` (from ``step``) on this placement (``instance_type`` at
        ``rate`` micros/hour) is expected to spend before its first report: the larger of the billing rule's
        minimum charge and the charge, at this rate, for the median billable time to first report of the
        study's earlier attempts on that instance type (this run's, as ``_startup_guess``; else the earlier
        runs' in the store; else, as ``costtune plan`` counts it, the simulation's ``startup_seconds`` and the
        workload's first step for ``params``, or the median time to first report on the study's other types
        when that is longer). 0 for a free placement. No trial starts with less left."""
        if rate <= 0:
            return 0
        before = self._first_ms_before.get(instance_type)
        if instance_type in self._first_ms or not before:
            startup = self._startup_guess(instance_type, rate, params, step)  # this run's, or the simulation's
        else:  # a resumed study: its earlier runs' first reports on this instance type
            startup = self.billing.charge(round(statistics.median(before[-STARTUP_SEEN:])), rate)
        if instance_type not in self._first_ms and not before:
            # Not yet measured on this type: the study's first reports on its other types measured start-up
            # and first step together, a floor for an estimate that knows no step time (no simulation).
            seen = [ms for runs in (self._first_ms, self._first_ms_before) for got in runs.values()
                    for ms in got[-STARTUP_SEEN:]]
            if seen:
                startup = max(startup, self.billing.charge(round(statistics.median(seen)), rate))
        return max(self.billing.charge(1, rate), startup)

    def _placement_words(self, instance_type: str | None, market: str | None, rate: int) -> str:
        """``m5.large spot``, or ``local at $36/h`` for a provider rate without an instance type."""
        if instance_type:
            return f"{instance_type} {market}"
        return f"{self.provider.name} at {format_usd(rate)}/h"

    def _chunk(self, rate: int, *, must_fit: bool, among: int = 1, caps: dict[str, int | None] | None = None) -> int:
        """Money for the next stretch of a trial without rungs; 0 when the cap has no room for it.

        Ten instance-minutes, or less under a binding cap: 1/``among`` of the room left (the workers
        competing for it), never less than one billable millisecond's charge. ``caps``: the policy
        window scopes the segment is also reserved in (scope -> hard cap), whose room counts too."""
        chunk = max(self.billing.charge(_CHUNK_S * 1000, rate), self.billing.charge(1, rate))
        cap, spent, reserved = self.store.balance(self.scope)
        rooms = [] if cap is None else [cap - spent - reserved]
        for scope, window_cap in (caps or {}).items():
            if window_cap is not None:
                _cap, w_spent, w_held = self.store.balance(scope)
                rooms.append(window_cap - w_spent - w_held)
        if not rooms:
            return chunk
        room = min(rooms)
        least = self.billing.charge(1, rate) if must_fit else 1
        if room < least:
            return 0
        return min(chunk, max(least, room // max(1, among)))
