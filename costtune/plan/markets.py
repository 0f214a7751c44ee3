"""``market: cheapest-expected`` in a plan: spot or on-demand for each sampled configuration, as the controller
chooses at each launch (``costtune.runner.admission``: ``costtune.policies.market.choose_market``).

The controller weighs a trial's expected work on spot (redone after each preemption, start-up paid again) against
on-demand, with the simulation's ``preemptions_per_hour`` (updated by what the store observed) and the hours the
trial is expected to take: up to its top rung at the on-demand rate, else ``budget.trial_seconds``, else the study's
mean attempt (1 hour before it has one). The plan uses the same inputs; for the last, the mean time of the
sampled configurations, which is what the study's attempts come to measure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from costtune.spec.resources import CHEAPEST

if TYPE_CHECKING:
    from costtune.spec import SweepSpec


def expected_hours(spec: SweepSpec, on_demand_rate: int, mean_hours: float | None) -> float:
    """Hours a trial's work is expected to take, as ``admission._expected_hours`` counts them for a new trial."""
    from costtune.schedulers import RUNG_TYPES

    cfg = spec.scheduler
    if cfg.get("type") in RUNG_TYPES and cfg.get("max_usd_micros") and on_demand_rate > 0:
        return max(int(cfg["max_usd_micros"]), 1) / on_demand_rate
    if spec.budget.trial_seconds is not None:
        return spec.budget.trial_seconds / 3600
    return mean_hours if mean_hours else 1.0


def resolve_market(spec: SweepSpec, instance_type: str | None, market: str, mean_hours: float | None) -> str:
    """The market a launch on ``instance_type`` gets: ``market`` itself unless it is cheapest-expected, which is
    resolved to spot or on-demand by the controller's rule."""
    from costtune.policies.market import DEFAULT_BUCKET, bucket_rate, choose_market

    res = spec.resources
    if market != CHEAPEST:
        return market
    spot, on_demand = res.rates[f"{instance_type}/spot"], res.rates[f"{instance_type}/on-demand"]
    sim = res.simulation
    rate = sim.preemptions_per_hour if sim is not None else bucket_rate(DEFAULT_BUCKET)
    hours = expected_hours(spec, on_demand, mean_hours)
    at_risk = hours / max(1, sim.max_steps) if sim is not None and sim.checkpoint else hours
    startup = (sim.startup_seconds if sim is not None else 0.0) / 3600
    return choose_market(spot, on_demand, hours=hours, at_risk_hours=at_risk, rate_per_hour=rate,
                         startup_hours=startup).market
