"""Money and dollar rungs of the in-process trials of one process.

An in-process trial is charged for the wall time it runs at the study's rate, per millisecond
(it holds no instance: spend = wall time x rate, rounded up to the micro-dollar). Like a trial
the sweep controller launches, it runs only once the ledger holds its first segment of money in
the study's scope (up to its first rung; without rungs ten minutes' worth, or what is left of the
cap), and its reservation grows as its spend does. The objective reports; at each report the
trial's spend is worked out and

- with dollar rungs, each rung its spend has reached is judged by the same ``RungScheduler`` the
  controller uses: promoted, its reservation grows to the next rung; stopped, ``should_stop()``
  turns true (the top rung ends it as complete);
- without rungs, a reservation the next report would outrun (at the pace of the last one) is
  extended; when the cap cannot fund more, ``should_stop()`` turns true.

The objective cooperates: it checks ``should_stop()`` after each report and ends. Spend past a
reservation is still charged (money spent is never dropped), so a capped study can pass its cap by
at most, for each trial running when the cap is reached, rate x (its longest interval between
two reports + the time from its last report to the objective's return).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from costtune.errors import BudgetExhausted, CapExceeded, StoreError
from costtune.money import format_usd
from costtune.prices.billing import BillingRule
from costtune.store import study_scope

if TYPE_CHECKING:
    from costtune.schedulers import CurveScheduler, RungScheduler
    from costtune.store import ClaimedTrial, Store

IN_PROCESS_BILLING = BillingRule(granularity_s=0, minimum_s=0, note="per millisecond of wall time")
CHUNK_S = 600  # without rungs, money is reserved ten minutes at a time (as the controller does)


@dataclass
class Running:
    """One in-process attempt: its money, its next rung and the verdict ``should_stop()`` reads."""

    trial_id: int
    number: int
    attempt_id: int
    key: str  # the attempt's idempotency key, also its ledger reservation's key
    rate: int  # micro-dollars per hour
    prior: int  # what earlier attempts of the trial spent
    started: float  # time.monotonic() at start
    reserved: int = 0  # micro-dollars this attempt holds in the ledger
    rung: int | None = None  # the next rung level it is judged at
    last_ms: int = 0  # billable ms at its last report
    value: float | None = None  # its last objective value
    stop: str | None = None  # why it must stop; None while it may run on
    complete: bool = False  # stopped at its top rung: it ran its whole ladder
    curve_first: int | None = None  # curve scheduler: its spend at this attempt's first report
    curve_check: int | None = None  # curve scheduler: the spend it is judged at next

    def ms(self, now: float | None = None) -> int:
        return max(0, int(((time.monotonic() if now is None else now) - self.started) * 1000))

    @property
    def target(self) -> int:
        """The trial spend its reservation covers."""
        return self.prior + self.reserved


class Books:
    """The running in-process attempts of one study in this process; thread-safe."""

    def __init__(self, store: Store, study_id: int, *, rungs: RungScheduler | None,
                 billing: BillingRule = IN_PROCESS_BILLING, curve: CurveScheduler | None = None,
                 metric: str = "") -> None:
        self.store = store
        self.study_id = study_id
        self.curve = curve  # learning-curve stopping: judged at checkpoints of each trial's own spend
        self.metric = metric
        self.scope = study_scope(study_id)
        self.rungs = rungs
        self.billing = billing
        self.lock = threading.Lock()
        self.running: dict[int, Running] = {}
        self.share = 1  # trials meant to run at once (optimize's n_jobs): a chunk is at most room / share
        # The longest a trial of this process ran before it could first be stopped (its first report,
        # or its end): a trial starts only if the cap leaves room for at least that much.
        self.first_gap_ms = 0

    # -- before a trial starts -------------------------------------------------------------
    def first_segment(self, claimed: ClaimedTrial, rate: int) -> tuple[int, int | None] | None:
        """(micros to reserve, first rung) for a claimed trial; None when it already ran its whole
        ladder. Raises ``BudgetExhausted`` when the cap leaves no room for it."""
        prior = claimed.prior_cost_micros
        if self.rungs is not None:
            rung = self.rungs.first_rung(claimed.number, prior)
            if rung is None:
                return None
            return max(rung - prior, self.billing.charge(1, rate)), rung
        if rate == 0:
            return 0, None  # a free trial: nothing to reserve or to cap
        amount = self.chunk(rate, must_fit=True)
        if amount == 0:
            raise BudgetExhausted(self.refusal(self.least(rate)))
        return amount, None

    def least(self, rate: int) -> int:
        """The smallest first segment worth starting a trial for: what it costs to reach its first report."""
        return max(self.billing.charge(1, rate), self.billing.charge(self.first_gap_ms, rate))

    def reserve(self, key: str, amount: int) -> None:
        """Hold ``amount`` in the study's scope; ``BudgetExhausted`` when the cap cannot."""
        if amount <= 0:
            return
        try:
            self.store.reserve(key, [self.scope], amount)
        except CapExceeded:
            raise BudgetExhausted(self.refusal(amount)) from None

    def refusal(self, amount: int) -> str:
        cap, spent, held = self.store.balance(self.scope)
        return (f"budget_usd {format_usd(cap or 0)} cannot fund the next trial's {format_usd(amount)}: "
                f"{format_usd(spent)} spent, {format_usd(held)} held by running trials")

    def room_left(self, rate: int) -> bool:
        """False when what is left of the study's cap (less what running trials hold) cannot fund
        the smallest first segment (``least``); True without a cap."""
        cap, spent, held = self.store.balance(self.scope)
        return cap is None or cap - spent - held >= (self.least(rate) if rate else 1)

    def chunk(self, rate: int, *, must_fit: bool) -> int:
        """Money for the next stretch of a trial without rungs; 0 when the cap has no room for it."""
        chunk = max(self.billing.charge(CHUNK_S * 1000, rate), self.billing.charge(1, rate))
        cap, spent, held = self.store.balance(self.scope)
        if cap is None:
            return chunk
        room = cap - spent - held
        least = self.least(rate) if must_fit else 1
        return min(chunk, max(room // self.share, least), room) if room >= least else 0

    def add(self, run: Running) -> None:
        with self.lock:
            self.running[run.attempt_id] = run

    # -- while it runs ---------------------------------------------------------------------
    def spend(self, run: Running, ms: int) -> int:
        return run.prior + self.billing.charge(ms, run.rate)

    def on_report(self, run: Running, ms: int, value: float | None) -> None:
        """Judge the trial at the rungs its spend reached, or grow its reservation; sets ``run.stop``."""
        with self.lock:
            if run.last_ms == 0:
                self.first_gap_ms = max(self.first_gap_ms, ms)
            gap, run.last_ms = ms - run.last_ms, ms
            if value is not None:
                run.value = value
            if run.stop is not None or run.rate == 0:
                return
            spend = self.spend(run, ms)
            if self.rungs is not None:
                self._judge(run, spend)
                return
            if self.curve is not None and value is not None:
                self._curve(run, spend)
                if run.stop is not None:
                    return
            due = spend + self.billing.charge(gap, run.rate)  # its spend by the next report, at this pace
            if due >= run.target:
                # A stretch of the usual size, and at least enough to reach its next report: a cap
                # that cannot fund that much stops it now rather than after it overspent.
                extra = max(self.chunk(run.rate, must_fit=False), due - run.target)
                if extra <= 0 or not self._extend(run, extra):
                    run.stop = f"budget_usd reached: its reservation of {format_usd(run.reserved)} is used up"

    def _judge(self, run: Running, spend: int) -> None:
        assert self.rungs is not None
        while run.rung is not None and spend >= run.rung:
            decision = self.rungs.judge(run.number, run.rung, run.value)
            self.store.record_verdict(run.trial_id, run.rung, run.value, decision.promote,  # stored as made
                                      decision.reason)
            if not decision.promote:
                run.complete = run.rung == self.rungs.ladder(run.number)[-1]
                run.stop, run.rung = decision.reason, None
                return
            nxt = decision.next_rung_micros
            assert nxt is not None
            if not self._extend(run, nxt - run.rung):
                run.stop = f"{decision.reason}, but budget_usd cannot fund the next {format_usd(nxt - run.rung)}"
                run.rung = None
                return
            run.rung = nxt

    def _curve(self, run: Running, spend: int) -> None:
        """Learning-curve stopping (``costtune.runner.curving``): the first report sets the checkpoints,
        one reached is judged on the trial's stored curve; a stop is stored as a verdict and a note."""
        assert self.curve is not None
        if run.curve_first is None or run.curve_check is None:
            run.curve_first = spend
            run.curve_check = self.curve.next_check(spend, spend)
            return
        if spend < run.curve_check:
            return
        from costtune.runner.curving import judge_from_store

        verdict = judge_from_store(self.curve, self.store, self.study_id, self.metric, run.number)
        if verdict.stop:
            run.stop = verdict.reason
            self.store.record_verdict(run.trial_id, spend, run.value, False, verdict.reason)
            self.store.add_attempt_note(run.attempt_id, verdict.reason)
            return
        run.curve_check = self.curve.next_check(run.curve_first, spend)

    def _extend(self, run: Running, extra: int) -> bool:
        try:
            self.store.extend(run.key, extra)
        except (CapExceeded, StoreError):  # StoreError: another process settled it as orphaned
            return False
        run.reserved += extra
        return True

    # -- when it ends ----------------------------------------------------------------------
    def remove(self, attempt_id: int, ms: int) -> Running | None:
        """Forget an attempt that ended after ``ms`` billable."""
        with self.lock:
            run = self.running.pop(attempt_id, None)
            if run is not None and run.last_ms == 0:  # it never reported: it ran to its end unchecked
                self.first_gap_ms = max(self.first_gap_ms, ms)
            return run

    def snapshot(self) -> dict[int, tuple[int, int]]:
        """Attempt id -> (billable ms, cost so far) of what runs now: the heartbeat books it."""
        now = time.monotonic()
        with self.lock:
            runs = list(self.running.values())
        return {r.attempt_id: (r.ms(now), self.billing.charge(r.ms(now), r.rate)) for r in runs}
