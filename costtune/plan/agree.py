"""The analytic plan's trial counts beside its own Monte Carlo forecast (``costtune plan``).

The table is printed before the forecast's runs are done; the runs simulate the scheduler, the cap and the
workers run by run, the analytic plan models them on average. When an analytic count falls outside the
forecast's p10 to p90 range, a note says so and names the forecast's figure, so the plan never states two
contradicting counts without saying which to read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from costtune.plan.analytic import SweepPlan


def forecast_disagreements(plan: SweepPlan, policy_trials: int | None = None) -> list[str]:
    """Notes for the analytic trial counts (trials started, the cap note's "about N") outside the forecast's
    p10-p90 range of trials; [] without a forecast or when they agree. ``policy_trials``: the forecast ran under
    a spend policy's hard cap, and the policy note's "about N trials" is the count it is compared with."""
    f = plan.forecast
    if f is None or not f.runs:
        return []
    low, mid, high = (round(f.quantile("trials", q)) for q in (10, 50, 90))
    spread = f"{mid} (median; p10 to p90 {low} to {high})" if low != high else f"{mid} (every run)"
    trials = plan.schedule.trials
    if policy_trials is not None:
        if low <= policy_trials <= high:
            return []
        return [f"spend policy: the forecast's runs stop at the policy's cap after a number of trials of {spread}, "
                f"not about {policy_trials} as the policy note estimates from the plan's mean cost of a trial; read "
                "the forecast's"]
    if plan.cap_fit is not None:  # the plan's own count is what the cap cuts short: the note's is the estimate
        if low <= plan.cap_fit <= high:
            return []
        return [f"budget.usd: the forecast's runs stop at the cap after a number of trials of {spread}, not about "
                f"{plan.cap_fit} "
                "as the analytic note above estimates from the plan's mean cost of a trial; read the forecast's"]
    if trials is not None and not low <= trials <= high:
        return [f"trials started: the forecast's runs started {spread}, outside the analytic plan's ~{trials}: they "
                "simulate the scheduler, the cap and the workers launch by launch; read the forecast's"]
    return []
