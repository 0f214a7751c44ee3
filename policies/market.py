"""``market: cheapest-expected``: spot or on-demand for one launch, whichever is expected to cost less.

An interruption loses the work since the trial's last checkpoint and costs a new start-up. With
interruptions arriving as a Poisson process of rate ``lam`` per hour, a stretch of ``c`` hours of work
that must be redone from its start when interrupted takes ``(exp(lam * c) - 1) / lam`` hours in
expectation (the classic restart result; e.g. Kulkarni, Nicola and Trivedi, "The completion time of a
job on multi-mode systems", 1987). A trial of ``hours`` that checkpoints every ``c`` hours therefore
takes ``hours * factor`` with ``factor = (exp(lam * c) - 1) / (lam * c)``, plus a start-up per interruption.
Expected spot cost = spot rate x that time; on-demand cost = on-demand rate x ``hours``.

The interruption rate comes from a prior, updated with what costtune itself saw (spot preemptions per
spot hour of that instance type in this store) as a Gamma-Poisson mean with ``PRIOR_HOURS`` of weight:
``(prior x PRIOR_HOURS + preemptions) / (PRIOR_HOURS + spot hours)``. The prior of a simulated sweep is
its ``simulation.preemptions_per_hour``; for a cloud instance it is the AWS Spot Instance Advisor bucket
(frequency of interruption per month: <5%, 5-10%, 10-15%, 15-20%, >20%; its midpoint, 25% for >20%)
turned into an hourly rate ``-ln(1 - f) / 730``. Which bucket an instance type is in changes over time
and is not bundled: ``DEFAULT_BUCKET`` stands for every type until costtune has observed its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BUCKETS = {"<5%": 0.025, "5-10%": 0.075, "10-15%": 0.125, "15-20%": 0.175, ">20%": 0.25}  # per month
DEFAULT_BUCKET = "5-10%"
HOURS_PER_MONTH = 730.0
PRIOR_HOURS = 10.0  # how many observed spot hours the prior is worth


def bucket_rate(bucket: str) -> float:
    """Interruptions per hour of a Spot Advisor bucket (its monthly frequency's midpoint)."""
    return -math.log(1.0 - BUCKETS[bucket]) / HOURS_PER_MONTH


def observed_rate(prior_per_hour: float, preemptions: int, spot_hours: float) -> float:
    """The prior rate updated with what costtune observed (Gamma-Poisson posterior mean)."""
    return (prior_per_hour * PRIOR_HOURS + preemptions) / (PRIOR_HOURS + max(0.0, spot_hours))


def rework_factor(rate_per_hour: float, at_risk_hours: float) -> float:
    """Expected time / work time for work redone from its last checkpoint, ``at_risk_hours`` apart."""
    x = rate_per_hour * max(at_risk_hours, 0.0)
    if x < 1e-9:
        return 1.0
    if x > 50:  # exp overflows long before: such a trial would never finish on spot
        return math.inf
    return math.expm1(x) / x


@dataclass(frozen=True)
class MarketChoice:
    market: str  # spot | on-demand
    spot_micros: float  # expected cost of the trial's remaining work on each market
    on_demand_micros: float
    rate_per_hour: float  # the interruption rate used
    at_risk_hours: float

    def note(self) -> str:
        """What `costtune trials STUDY N` shows for the attempt."""
        spot = "never finishes" if math.isinf(self.spot_micros) else f"${self.spot_micros / 1e6:.4g}"
        return (f"market cheapest-expected: {self.market} (expected spot {spot} vs on-demand "
                f"${self.on_demand_micros / 1e6:.4g}; {self.rate_per_hour:.3g} interruptions/h, "
                f"{self.at_risk_hours * 60:.3g} min of work at risk)")


def choose_market(spot_rate: int, on_demand_rate: int, *, hours: float, at_risk_hours: float,
                  rate_per_hour: float, startup_hours: float = 0.0) -> MarketChoice:
    """Spot or on-demand for ``hours`` of work (rates in micro-dollars an hour); ties go to spot."""
    factor = rework_factor(rate_per_hour, min(at_risk_hours, hours))
    spot_time = hours * factor
    spot_time += rate_per_hour * spot_time * startup_hours if math.isfinite(spot_time) else 0.0
    spot = spot_rate * spot_time
    on_demand = on_demand_rate * hours
    market = "spot" if spot <= on_demand else "on-demand"
    return MarketChoice(market, spot, on_demand, rate_per_hour, min(at_risk_hours, hours))
