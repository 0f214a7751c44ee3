"""The sweep file's ``resources`` section: where trials run and what each hour of them costs.

Every rate a budget decision will use is looked up here, once, before anything touches the store:
a local trial at ``usd_per_hour`` or priced as a catalogue instance (``price_as``), and simulated
(later cloud) trials on an instance type and market that may themselves be search dimensions,
each priced from the table. A missing or zero price is an error naming the field, never a free
instance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from costtune.errors import SpecError
from costtune.limits import MAX_PREEMPTIONS_PER_HOUR, MAX_STEPS, MAX_WORKERS
from costtune.money import rate_to_micros
from costtune.prices import MARKETS, PriceNotFound, PriceTable, parse_price_ref
from costtune.prices.billing import PER_SECOND, BillingRule, billing_rule
from costtune.spec.aws import AWS_FIELDS, FALLBACK, AwsResources, parse_aws
from costtune.spec.fields import integer, seconds

PROVIDERS = ("local", "simulated", "aws")
INSTANCE_PARAM = "instance_type"  # the search-space name an instance-type dimension gets
MARKET_PARAM = "market"
CHEAPEST = "cheapest-expected"  # simulated: spot or on-demand per launch, by expected cost (costtune.policies.market)
_FIELDS = ("provider", "usd_per_hour", "workers", "price_as", "market", "region", "cloud", "instance_type",
           "simulation", "price_overrides", *AWS_FIELDS)
_SIM_FIELDS = ("workload", "max_steps", "startup_seconds", "preemptions_per_hour", "preemption_trace", "seed",
               "checkpoint", "spot_prices")


@dataclass(frozen=True)
class Simulation:
    workload: str  # "module:function"
    max_steps: int = 100
    startup_seconds: float = 0.0
    preemptions_per_hour: float = 0.0
    preemption_trace: tuple[float, ...] | None = None
    seed: int = 0
    checkpoint: bool = True  # the simulated trial keeps a checkpoint at every step end
    # instance type -> ((seconds since the sweep began, micro-dollars per hour), ...): a spot price trace
    spot_prices: dict[str, tuple[tuple[float, int], ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Resources:
    provider: str = "local"
    usd_per_hour_micros: int = 0  # the rate when there is one fixed rate (local trials)
    workers: int = 1
    price_as: str | None = None  # "aws/us-east-1/m5.large": a local trial priced like that instance
    # the fixed market, or the first choice when it is searched; None: no market (a local trial at usd_per_hour)
    market: str | None = "on-demand"
    billing: BillingRule = PER_SECOND
    rate_source: str = "resources.usd_per_hour"
    cloud: str | None = None
    region: str | None = None
    instance_type: str | None = None  # the fixed type; None when searched (or unpriced local)
    instance_choices: tuple[str, ...] = ()  # set when instance_type is a search dimension
    market_choices: tuple[str, ...] = ()  # set when market is a search dimension
    rates: dict[str, int] = field(default_factory=dict)  # "type/market" -> micro-dollars per hour
    simulation: Simulation | None = None
    aws: AwsResources | None = None  # provider aws: where and how instances launch
    warnings: tuple[str, ...] = ()  # said once when the sweep starts (a price from the snapshot, not live)

    @property
    def searched(self) -> dict[str, dict[str, Any]]:
        """Search dimensions this section adds to the space (instance type, market)."""
        out: dict[str, dict[str, Any]] = {}
        if self.instance_choices:
            out[INSTANCE_PARAM] = {"type": "categorical", "choices": list(self.instance_choices)}
        if self.market_choices:
            out[MARKET_PARAM] = {"type": "categorical", "choices": list(self.market_choices)}
        return out

    def placement(self, params: dict[str, Any]) -> tuple[str | None, str | None]:
        """(instance type, market) a trial with these params runs on (market None: it has none)."""
        itype = params.get(INSTANCE_PARAM, self.instance_type) if self.instance_choices else self.instance_type
        market = params.get(MARKET_PARAM, self.market) if self.market_choices else self.market
        return (None if itype is None else str(itype)), (None if market is None else str(market))

    def rate_for(self, instance_type: str | None, market: str | None, at: float | None = None) -> int:
        """Micro-dollars per hour for one placement; every choice was priced when the file was read.

        With a simulated spot price trace, the spot rate in force at time ``at`` (seconds since the
        sweep began) instead of the catalog's: the controller snapshots it at launch.
        """
        trace = self.simulation.spot_prices.get(instance_type or "") if self.simulation else None
        if trace and market == "spot" and at is not None:
            current = [rate for t, rate in trace if t <= at]
            return current[-1] if current else trace[0][1]
        if instance_type is None or not self.rates:
            return self.usd_per_hour_micros
        return self.rates[f"{instance_type}/{market}"]


def parse_resources(value: Any) -> Resources:
    if not isinstance(value, dict):
        raise SpecError("resources", "must be a mapping", value)
    for key in value:
        if key not in _FIELDS:
            raise SpecError(f"resources.{key}", f"unknown field; allowed: {', '.join(_FIELDS)}")
    provider = value.get("provider", "local")
    if provider not in PROVIDERS:
        raise SpecError("resources.provider", f"must be one of {', '.join(PROVIDERS)}", provider)
    workers = integer(value.get("workers", 1), "resources.workers", maximum=MAX_WORKERS)
    if provider != "aws":
        for key in AWS_FIELDS:
            if key in value:
                raise SpecError(f"resources.{key}", "applies to provider aws", value[key])
    if provider == "aws":
        markets = _choices(value.get("market", "on-demand"), "resources.market", [*sorted(MARKETS), FALLBACK])
        if FALLBACK in markets and len(markets) > 1:
            raise SpecError("resources.market", f"{FALLBACK} is a market policy, not a search choice", value["market"])
        return _aws(value, workers, markets)
    table = _price_table(value.get("price_overrides"))
    if provider == "simulated":
        markets = _choices(value.get("market", "on-demand"), "resources.market", [*sorted(MARKETS), CHEAPEST])
        if CHEAPEST in markets and len(markets) > 1:
            raise SpecError("resources.market", f"{CHEAPEST} is a market policy, not a search choice", value["market"])
        return _simulated(value, workers, markets, table)
    markets = _choices(value.get("market", "on-demand"), "resources.market", sorted(MARKETS))
    for key in ("simulation", "instance_type", "region", "cloud"):
        if key in value:
            raise SpecError(f"resources.{key}", "applies to provider simulated (local trials use price_as)",
                            value[key])
    if len(markets) > 1:
        raise SpecError("resources.market", "can be a search dimension only for simulated trials", value["market"])
    market = markets[0]
    if value.get("price_as") is None and "price_overrides" in value:
        raise SpecError("resources.price_overrides", "prices catalog instances: use it with price_as or provider "
                        "simulated", value["price_overrides"])
    if value.get("price_as") is None and "market" in value:
        raise SpecError("resources.market", "prices a catalog instance: use it with price_as or provider simulated "
                        "(a local trial at usd_per_hour has no market)", value["market"])
    if value.get("price_as") is None:
        rate = rate_to_micros(value.get("usd_per_hour", 0), "resources.usd_per_hour")
        # no market: spend policies' market rules do not apply to it and the books show none
        return Resources(provider=provider, usd_per_hour_micros=rate, workers=workers, market=None)
    if "usd_per_hour" in value:
        raise SpecError("resources.usd_per_hour", "give usd_per_hour or price_as, not both", value["usd_per_hour"])
    cloud, region, instance_type = parse_price_ref(value["price_as"], "resources.price_as")
    try:
        price = table.rate(cloud, region, instance_type, market)
    except PriceNotFound as exc:
        raise SpecError("resources.price_as", str(exc)) from None
    return Resources(provider=provider, usd_per_hour_micros=price.usd_per_hour_micros, workers=workers,
                     price_as=price.ref, market=market, billing=billing_rule(cloud),
                     rate_source=f"{price.source} (as of {price.as_of.isoformat()})", cloud=cloud, region=region,
                     instance_type=instance_type, rates={f"{instance_type}/{market}": price.usd_per_hour_micros})


def _price_table(overrides: Any, fresh: dict[Any, Any] | None = None) -> PriceTable:
    """The bundled catalog with fresh live prices (``costtune prices refresh``) and then the sweep's override
    file (negotiated rates, discounts) on top. ``fresh``, when given, receives the live rows by key.

    A relative path is taken from where costtune runs, like ``workdir``.
    """
    from costtune.prices.live import current_table

    table, live = current_table()
    if fresh is not None:
        fresh.update(live)
    if overrides is None:
        return table
    if not isinstance(overrides, str) or not overrides:
        raise SpecError("resources.price_overrides", "must be the path of a price override file", overrides)
    if not Path(overrides).expanduser().is_file():
        raise SpecError("resources.price_overrides", "no such file", overrides)
    return table.with_overrides(Path(overrides).expanduser())


def _aws(value: dict[str, Any], workers: int, markets: list[str]) -> Resources:
    """EC2 instances, priced in every fail-over region; each placement reserves at its dearest region's rate.

    ``spot-then-on-demand`` reserves at the on-demand rate (what a fallen-back attempt costs). A rate
    from the bundled snapshot instead of a fresh live one is a warning; with ``max_price_age`` a
    price older than that is an error.
    """
    for key in ("usd_per_hour", "price_as", "simulation", "cloud"):
        if key in value:
            raise SpecError(f"resources.{key}", "does not apply to provider aws (instances are priced from the "
                            "price table by region, instance_type and market)", value[key])
    if "instance_type" not in value:
        raise SpecError("resources.instance_type", "is required for provider aws")
    aws = parse_aws(value, markets)
    types = _choices(value["instance_type"], "resources.instance_type", None)
    fresh: dict[Any, Any] = {}
    table = _price_table(value.get("price_overrides"), fresh)
    now = datetime.now(UTC)
    rates: dict[str, int] = {}
    stale: list[str] = []
    source = ""
    priced = ["spot", "on-demand"] if FALLBACK in markets else markets
    for itype in types:
        for market in priced:
            for region in aws.regions:
                try:
                    price = table.rate("aws", region, itype, market)
                except PriceNotFound as exc:
                    raise SpecError("resources.instance_type", f"{exc}; or fetch it: costtune prices refresh "
                                    f"--provider aws --regions {region}", itype) from None
                live = fresh.get(price.key)
                age = live.age_s(now) if live is not None else (now - datetime.combine(
                    price.as_of, datetime.min.time(), UTC)).total_seconds()
                said = f"{price.ref} {market}: {price.source} (as of {price.as_of.isoformat()})"
                if aws.max_price_age_s is not None and age > aws.max_price_age_s:
                    raise SpecError("resources.max_price_age", f"the price of {said} is {age / 3600:.1f} h old; "
                                    f"run costtune prices refresh --provider aws --regions {region}",
                                    value["max_price_age"])
                if live is None:
                    stale.append(f"{price.ref} {market} (as of {price.as_of.isoformat()})")
                key = f"{itype}/{market}"
                rates[key] = max(rates.get(key, 0), price.usd_per_hour_micros)
                source = source or said
        if FALLBACK in markets:
            rates[f"{itype}/{FALLBACK}"] = rates[f"{itype}/on-demand"]
    warnings = [f"no fresh live price for {', '.join(stale)}: using the bundled snapshot's; run costtune prices "
                f"refresh --provider aws --regions {' '.join(aws.regions)}"] if stale else []
    return Resources(
        provider="aws", workers=workers, market=markets[0], billing=billing_rule("aws"), rate_source=source,
        cloud="aws", region=aws.region, instance_type=types[0] if len(types) == 1 else None,
        instance_choices=tuple(types) if len(types) > 1 else (),
        market_choices=tuple(markets) if len(markets) > 1 else (), rates=rates,
        usd_per_hour_micros=rates[f"{types[0]}/{markets[0]}"], aws=aws, warnings=tuple(warnings),
    )


def _simulated(value: dict[str, Any], workers: int, markets: list[str], table: PriceTable) -> Resources:
    if "usd_per_hour" in value or "price_as" in value:
        key = "usd_per_hour" if "usd_per_hour" in value else "price_as"
        raise SpecError(f"resources.{key}", "a simulated instance is priced from the price table by "
                        "region, instance_type and market", value[key])
    for required in ("region", "instance_type", "simulation"):
        if required not in value:
            raise SpecError(f"resources.{required}", "is required for provider simulated")
    region = value["region"]
    if not isinstance(region, str) or not region:
        raise SpecError("resources.region", "must be a region name such as us-east-1", region)
    types = _choices(value["instance_type"], "resources.instance_type", None)
    cloud = value.get("cloud") or _infer_cloud(table, region)
    rates: dict[str, int] = {}
    source = ""
    for itype in types:
        for market in ["spot", "on-demand"] if CHEAPEST in markets else markets:
            try:
                price = table.rate(cloud, region, itype, market)
            except PriceNotFound as exc:
                raise SpecError("resources.instance_type", str(exc), itype) from None
            rates[f"{itype}/{market}"] = price.usd_per_hour_micros
            source = source or f"{price.source} (as of {price.as_of.isoformat()})"
        if CHEAPEST in markets:  # reserved at the dearer of the two until the choice is made at launch
            rates[f"{itype}/{CHEAPEST}"] = max(rates[f"{itype}/spot"], rates[f"{itype}/on-demand"])
    simulation = _simulation(value["simulation"])
    for itype in simulation.spot_prices:
        if itype not in types:
            raise SpecError(f"resources.simulation.spot_prices.{itype}", "is not one of resources.instance_type",
                            itype)
    return Resources(
        provider="simulated", workers=workers, market=markets[0], billing=billing_rule(cloud), rate_source=source,
        cloud=cloud, region=region, instance_type=types[0] if len(types) == 1 else None,
        instance_choices=tuple(types) if len(types) > 1 else (),
        market_choices=tuple(markets) if len(markets) > 1 else (), rates=rates,
        usd_per_hour_micros=rates[f"{types[0]}/{markets[0]}"], simulation=simulation,
    )


def _infer_cloud(table: PriceTable, region: str) -> str:
    """Region names tell the clouds apart (us-east-1, us-central1, eastus); say ``cloud`` otherwise."""
    clouds = sorted({p.provider for p in table if p.region == region})
    if len(clouds) == 1:
        return clouds[0]
    if not clouds:
        known = sorted({p.region for p in table})
        raise SpecError("resources.region", f"no prices for this region; known: {', '.join(known)}", region)
    raise SpecError("resources.cloud", f"region {region!r} exists for {', '.join(clouds)}; say which", None)


def _choices(value: Any, path: str, allowed: list[str] | None) -> list[str]:
    """A fixed name, or ``{type: categorical, choices: [...]}`` (a search dimension)."""
    if isinstance(value, dict):
        if value.get("type") != "categorical" or set(value) - {"type", "choices"}:
            raise SpecError(path, "must be a name or {type: categorical, choices: [...]}", value)
        choices = value.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SpecError(f"{path}.choices", "must be a non-empty list", choices)
        if len(set(map(str, choices))) != len(choices):
            raise SpecError(f"{path}.choices", "must not repeat a choice", choices)
    else:
        choices = [value]
    for item in choices:
        if not isinstance(item, str) or not item:
            raise SpecError(path, "must be a name" if allowed is None else f"must be one of {', '.join(allowed)}",
                            item)
        if allowed is not None and item not in allowed:
            raise SpecError(path, f"must be one of {', '.join(allowed)}", item)
    return list(choices)


def _simulation(value: Any) -> Simulation:
    path = "resources.simulation"
    if not isinstance(value, dict):
        raise SpecError(path, "must be a mapping with at least workload: module:function", value)
    for key in value:
        if key not in _SIM_FIELDS:
            raise SpecError(f"{path}.{key}", f"unknown field; allowed: {', '.join(_SIM_FIELDS)}")
    from costtune.providers.simulated import load_workload

    workload = value.get("workload")
    load_workload(workload)  # a bad name fails now, naming the field
    max_steps = integer(value.get("max_steps", 100), f"{path}.max_steps", maximum=MAX_STEPS)
    startup = seconds(value.get("startup_seconds", 0), f"{path}.startup_seconds", positive=False)
    rate = _number(value.get("preemptions_per_hour", 0), f"{path}.preemptions_per_hour")
    if rate > MAX_PREEMPTIONS_PER_HOUR:
        raise SpecError(f"{path}.preemptions_per_hour", f"must be at most {MAX_PREEMPTIONS_PER_HOUR} (one a second)",
                        value["preemptions_per_hour"])
    trace = value.get("preemption_trace")
    if trace is not None:
        if rate:
            raise SpecError(f"{path}.preemption_trace", "give preemptions_per_hour or preemption_trace, not both",
                            trace)
        if not isinstance(trace, list):
            raise SpecError(f"{path}.preemption_trace", "must be a list of seconds since the sweep began", trace)
        trace = tuple(seconds(t, f"{path}.preemption_trace[{i}]", positive=False, what="a number")
                      for i, t in enumerate(trace))
    seed = integer(value.get("seed", 0), f"{path}.seed", minimum=0)
    checkpoint = value.get("checkpoint", True)
    if not isinstance(checkpoint, bool):
        raise SpecError(f"{path}.checkpoint", "must be true or false", checkpoint)
    return Simulation(workload=workload, max_steps=max_steps, startup_seconds=startup, preemptions_per_hour=rate,
                      preemption_trace=trace, seed=seed, checkpoint=checkpoint,
                      spot_prices=_spot_prices(value.get("spot_prices", {}), f"{path}.spot_prices"))


def _spot_prices(value: Any, path: str) -> dict[str, tuple[tuple[float, int], ...]]:
    """``{m5.large: [[0, 0.04], [3600, 0.06]], ...}``: seconds since the start, dollars per hour."""
    if not isinstance(value, dict):
        raise SpecError(path, "must map instance types to [[seconds, usd_per_hour], ...]", value)
    out = {}
    for itype, points in value.items():
        where = f"{path}.{itype}"
        if not isinstance(points, list) or not points:
            raise SpecError(where, "must be a non-empty list of [seconds, usd_per_hour]", points)
        trace = []
        for i, point in enumerate(points):
            if not isinstance(point, list | tuple) or len(point) != 2:
                raise SpecError(f"{where}[{i}]", "must be [seconds, usd_per_hour]", point)
            at = seconds(point[0], f"{where}[{i}][0]", positive=False, what="a number")
            micros = rate_to_micros(point[1], f"{where}[{i}][1]")
            if micros <= 0:
                raise SpecError(f"{where}[{i}][1]", "must be > 0: a free instance is never a price", point[1])
            trace.append((at, micros))
        if [t for t, _ in trace] != sorted(t for t, _ in trace):
            raise SpecError(where, "times must be in increasing order", points)
        out[str(itype)] = tuple(trace)
    return out


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise SpecError(path, "must be a number >= 0", value)
    return float(value)
