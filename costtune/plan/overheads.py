"""What every launch pays before useful work, per placement: start-up and the billing minimum (``costtune plan``)."""

from __future__ import annotations

from dataclasses import dataclass

from costtune.plan.startup import startup_charge
from costtune.spec.resources import CHEAPEST, Resources


@dataclass(frozen=True)
class Overhead:
    """What each launch on one placement pays before (or regardless of) useful work."""

    instance_type: str | None
    market: str | None  # None: a local trial at resources.usd_per_hour, which has no market (README)
    rate_micros: int  # per hour
    startup_seconds: float
    startup_micros: int
    minimum_seconds: int
    minimum_micros: int


def overheads_of(res: Resources, startup: float) -> list[Overhead]:
    """One ``Overhead`` per placement the sweep may launch on (the ``cheapest-expected`` reservation rate left out):
    ``startup`` seconds charged at its rate, and the billing rule's least charge (``BillingRule.least_charge``)."""
    minimum = res.billing.least_s  # what any launch is billed at least, as `rung_below_minimum` warns
    placements = [tuple(key.split("/", 1)) for key in res.rates if not key.endswith(f"/{CHEAPEST}")] or [
        (None, res.market)]  # cheapest-expected: a reservation rate; launches run on spot or on-demand
    marketless = res.provider == "local" and res.price_as is None  # priced at usd_per_hour: no market
    out = []
    for itype, market in placements:
        rate = res.rate_for(itype, market)
        out.append(Overhead(instance_type=itype, market=None if marketless else market, rate_micros=rate,
                            startup_seconds=startup, startup_micros=startup_charge(startup, rate),
                            minimum_seconds=minimum,
                            minimum_micros=res.billing.least_charge(rate)))
    return out
