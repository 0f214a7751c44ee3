"""One running attempt as the controller sees it, and the money arithmetic of its rungs.

An attempt holds a reservation in the ledger. Its *deadline* is the billable time at which the
trial's spend reaches its current target (the next rung, or the end of its reserved chunk): the
controller makes its decision there, so a trial never spends past its reservation unseen.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from costtune.prices.billing import BillingRule
from costtune.providers.base import LaunchRequest
from costtune.spec.environment import resolve_env
from costtune.store import ClaimedTrial
from costtune.trialrun import BASE_ENV, ENV_START_STEP, TrialLaunch, trial_environment

__all__ = ["BASE_ENV", "ENV_START_STEP", "STARTUP_SEEN", "LiveAttempt", "last_affordable_ms", "launch_request",
           "trial_environment"]

# Start-up estimates (rung grace, the cost to a first report) take the median of this many latest first
# reports per instance type.
STARTUP_SEEN = 25


@dataclass
class LiveAttempt:
    claimed: ClaimedTrial
    attempt_id: int
    key: str  # idempotency key; also the ledger reservation's key
    rate: int  # micro-dollars per hour, snapshotted at launch
    instance_type: str | None
    market: str | None  # None: no market (a local trial at resources.usd_per_hour)
    trial_dir: Path
    start_step: int
    reserved: int  # micro-dollars this attempt holds in the ledger
    target: int | None  # trial spend at which the next decision is due; None: none (no cap, no rung)
    rung: int | None = None  # target is this rung level (else the end of a reserved chunk)
    # Start-up-aware rungs: a rung level counts money spent after the attempt's first report, on top of
    # ``credited`` (the level its trial was last promoted at, before this attempt). ``base`` is the trial
    # spend at that first report (None until it comes); until then the target holds a start-up estimate.
    credited: int = 0
    base: int | None = None
    handle: Any = None
    launched_at: float = 0.0  # clock time at launch
    deadline_ms: int | None = None
    step: int = -1  # last step reported
    value: float | None = None  # last objective value of the trial (any attempt)
    report_ms: int = 0  # billable ms at its last report: a checkpoint when the workload keeps them
    # "stopped" | "completed" | "budget" | "policy" | "interrupted" | "timeout" | "failed" (finishing.py)
    stop_reason: str | None = None
    decision: str = ""  # why the scheduler stopped it, for the trial's record
    stop_step: int | None = None  # the step it had reported when its stop was sent (None: none was sent)
    judged_out: bool = False  # judged at its rung and not promoted (the verdict is stored)
    warned: int = 0  # warnings about its output, all of them
    warnings: list[str] = field(default_factory=list)  # the first few, stored with the trial
    metrics: dict[str, float] = field(default_factory=dict)  # the trial's last value of every metric
    attempt_value: float | None = None  # the objective as reported by this attempt (rungs judge on it)
    reported: set[str] = field(default_factory=set)  # metric names this attempt reported
    grace: bool = False  # reached a rung before its first report: given one first rung's worth more
    grace_capped: bool = False  # that grace was only what the cap had left
    judge_now: bool = False  # reported during its grace: judge it at this tick
    error: str | None = None  # why it fails, when costtune decided that (a NaN objective, an internal error)
    billed_ms: int = 0  # billable time at the controller's last poll (what its heartbeat books meanwhile)
    placed: bool = False  # its rate is the one of where the provider placed it (a cloud launch's offer)
    curve_first: int | None = None  # curve scheduler: trial spend at this attempt's first report (micros)
    curve_check: int | None = None  # curve scheduler: the trial spend it is judged at next (micros)

    @property
    def number(self) -> int:
        return self.claimed.number

    def spend(self, billing: BillingRule, ms: int) -> int:
        """The trial's spend with this attempt at ``ms`` billable: earlier attempts plus this one."""
        return self.claimed.prior_cost_micros + billing.charge(ms, self.rate)

    def aim(self, billing: BillingRule, target: int | None, rung: int | None) -> None:
        self.target, self.rung = target, rung
        self.deadline_ms = None if target is None else last_affordable_ms(
            billing, self.rate, target - self.claimed.prior_cost_micros)


def last_affordable_ms(billing: BillingRule, rate: int, budget_micros: int) -> int | None:
    """The most billable milliseconds whose charge stays within ``budget_micros`` (None: free)."""
    if rate <= 0:
        return None
    if budget_micros <= 0 or billing.charge(1, rate) > budget_micros:
        return 0
    lo, hi = 1, (budget_micros + 1) * 3_600_000 // rate + 1000 * max(1, billing.granularity_s) + 1
    while lo < hi:  # charge is monotone in time: find the last ms that fits
        mid = (lo + hi + 1) // 2
        if billing.charge(mid, rate) <= budget_micros:
            lo = mid
        else:
            hi = mid - 1
    return lo


def launch_request(live: LiveAttempt, *, command: tuple[str, ...], env: dict[str, str], workdir: str,
                   study: str, region: str | None, tags: dict[str, str], write_files: bool = True,
                   objective: str | None = None, passthrough: Sequence[str] = ()) -> LaunchRequest:
    """The provider-neutral request: argv and env for a command trial, params for a simulated one.

    The trial's environment is built here and nowhere else (see ``trial_environment``); providers
    add only their own bookkeeping variables. ``write_files`` is False for simulated trials, which
    read nothing from disk and get no environment.
    """
    claimed = live.claimed
    launch = TrialLaunch(command=tuple(command), params=dict(claimed.params), study=study,
                         trial_number=claimed.number, attempt_number=claimed.attempt_number,
                         start_step=live.start_step, env=resolve_env(env, os.environ) if write_files else {},
                         passthrough=tuple(passthrough), objective=objective)
    argv, full_env = launch.render(live.trial_dir, write_files=write_files)
    return LaunchRequest(argv=argv, workdir=workdir, output_dir=str(live.trial_dir), env=full_env,
                         tags={**tags, "trial": str(claimed.number), "attempt": str(claimed.attempt_number)},
                         params=dict(claimed.params), instance_type=live.instance_type, market=live.market,
                         region=region, start_step=live.start_step, launch=launch)
