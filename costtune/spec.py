"""The sweep file: the user contract, validated in full before anything touches the store.

Every error names the field path and the value (``budget.trials: must be an integer >= 1, got 0``).
Later features add sections; names that exist here are never renamed.
"""

from __future__ import annotations

import re
import shlex
import string
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from costtune.errors import InputError, SpecError
from costtune.history import Mode
from costtune.money import usd_to_micros
from costtune.prices import MARKETS, PriceNotFound, PriceTable, parse_price_ref
from costtune.prices.billing import PER_SECOND, BillingRule, billing_rule
from costtune.samplers import SAMPLER_TYPES, sampler_config
from costtune.space import SearchSpace

TOP_LEVEL = ("name", "objective", "space", "sampler", "scheduler", "budget", "resources", "command", "env",
             "workdir", "output_dir")
SCHEDULER_TYPES = ("fifo",)
PROVIDERS = ("local",)
RESERVED_PLACEHOLDERS = ("trial_dir", "checkpoint_dir", "trial_number", "study", "params_file")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


@dataclass(frozen=True)
class Resources:
    provider: str = "local"
    usd_per_hour_micros: int = 0
    workers: int = 1
    price_as: str | None = None  # "aws/us-east-1/m5.large": a local trial priced like that instance
    market: str = "on-demand"
    billing: BillingRule = PER_SECOND
    rate_source: str = "resources.usd_per_hour"

    @property
    def region(self) -> str | None:
        return self.price_as.split("/")[1] if self.price_as else None

    @property
    def instance_type(self) -> str | None:
        return self.price_as.split("/")[2] if self.price_as else None


@dataclass(frozen=True)
class Budget:
    trials: int | None = None
    usd_micros: int | None = None
    trial_seconds: float | None = None


@dataclass(frozen=True)
class SweepSpec:
    name: str
    metric: str
    mode: Mode
    space: SearchSpace
    sampler: dict[str, Any]
    scheduler: dict[str, Any]
    budget: Budget
    resources: Resources
    command: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    output_dir: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)  # the file as given, kept with the study

    @cached_property
    def max_trials(self) -> int | None:
        """How many trials the study may hold: the budget, else what the sampler can propose.

        Cached: the controller asks on every claim, and a grid's size means building its plan.
        """
        limits = [n for n in (self.budget.trials, _sampler_size(self)) if n is not None]
        return min(limits) if limits else None


def _sampler_size(spec: SweepSpec) -> int | None:
    kind = spec.sampler["type"]
    queued = len(spec.sampler.get("configs", []))
    if kind == "grid":
        return queued + spec.space.grid(spec.sampler.get("points")).size
    if kind == "manual":
        return queued
    return None


def load_sweep(path: str | Path) -> SweepSpec:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"sweep file: no such file {str(file)!r}") from None
    except OSError as exc:
        raise InputError(f"sweep file: cannot read {str(file)!r}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise InputError(f"sweep file {str(file)!r}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    return parse_sweep(data)


def parse_sweep(data: Any) -> SweepSpec:
    if not isinstance(data, dict):
        raise SpecError("", "a sweep file must be a mapping of fields (name, objective, space, ...)", data)
    _no_unknown(data, TOP_LEVEL, "")
    for required in ("name", "objective", "space", "command"):
        if required not in data:
            raise SpecError(required, "is required")
    name = data["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError("name", "must be letters, digits, '_', '.' or '-' (at most 128)", name)
    metric, mode = _objective(data["objective"])
    space = SearchSpace.from_dict(_mapping(data["space"], "space"), path="space")
    sampler = sampler_config(data.get("sampler", {"type": "random"}), space)
    scheduler = _scheduler(data.get("scheduler", {"type": "fifo"}))
    budget = _budget(data.get("budget", {}), sampler["type"])
    resources = _resources(data.get("resources", {}))
    command = _command(data["command"], space)
    env = _env(data.get("env", {}))
    spec = SweepSpec(
        name=name, metric=metric, mode=mode, space=space, sampler=sampler, scheduler=scheduler,
        budget=budget, resources=resources, command=command, env=env,
        workdir=_optional_path(data.get("workdir"), "workdir"),
        output_dir=_optional_path(data.get("output_dir"), "output_dir"), raw=data,
    )
    if spec.sampler["type"] == "grid":
        spec.space.grid(spec.sampler.get("points"), path="space")  # every parameter must be griddable
    if spec.max_trials is None and resources.usd_per_hour_micros == 0:
        raise SpecError("budget.usd", "can never be reached while resources.usd_per_hour is 0; "
                        "set a rate or budget.trials", data.get("budget", {}).get("usd"))
    return spec


def _mapping(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(path, "must be a mapping", value)
    return value


def _no_unknown(data: dict[str, Any], allowed: tuple[str, ...], path: str) -> None:
    for key in data:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise SpecError(where, f"unknown field; allowed: {', '.join(allowed)}")


def _objective(value: Any) -> tuple[str, Mode]:
    obj = _mapping(value, "objective")
    _no_unknown(obj, ("metric", "mode"), "objective")
    metric = obj.get("metric")
    if not isinstance(metric, str) or not metric:
        raise SpecError("objective.metric", "must be a metric name such as val_loss", metric)
    mode = obj.get("mode", "min")
    if mode not in ("min", "max"):
        raise SpecError("objective.mode", "must be min or max", mode)
    return metric, Mode(mode)


def _scheduler(value: Any) -> dict[str, Any]:
    cfg = _mapping(value, "scheduler")
    kind = cfg.get("type", "fifo")
    if kind not in SCHEDULER_TYPES:
        raise SpecError("scheduler.type", f"must be one of {', '.join(SCHEDULER_TYPES)}", kind)
    _no_unknown(cfg, ("type",), "scheduler")
    return {"type": kind}


def _positive_int(value: Any, path: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(path, f"must be an integer >= {minimum}", value)
    return value


def _budget(value: Any, sampler_type: str) -> Budget:
    cfg = _mapping(value, "budget")
    _no_unknown(cfg, ("trials", "usd", "trial_seconds"), "budget")
    trials = None if cfg.get("trials") is None else _positive_int(cfg["trials"], "budget.trials")
    usd = None if cfg.get("usd") is None else usd_to_micros(cfg["usd"], "budget.usd")
    seconds = cfg.get("trial_seconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0):
        raise SpecError("budget.trial_seconds", "must be a number of seconds > 0", seconds)
    if trials is None and usd is None and sampler_type in ("random", "bayes"):
        raise SpecError("budget", f"a {sampler_type} sweep needs an end: give trials and/or usd", cfg)
    return Budget(trials=trials, usd_micros=usd, trial_seconds=seconds)


def _resources(value: Any) -> Resources:
    cfg = _mapping(value, "resources")
    _no_unknown(cfg, ("provider", "usd_per_hour", "workers", "price_as", "market"), "resources")
    provider = cfg.get("provider", "local")
    if provider not in PROVIDERS:
        raise SpecError("resources.provider", f"must be one of {', '.join(PROVIDERS)}", provider)
    workers = _positive_int(cfg.get("workers", 1), "resources.workers")
    market = cfg.get("market", "on-demand")
    if market not in MARKETS:
        raise SpecError("resources.market", f"must be one of {', '.join(sorted(MARKETS))}", market)
    if cfg.get("price_as") is None:
        rate = usd_to_micros(cfg.get("usd_per_hour", 0), "resources.usd_per_hour")
        return Resources(provider=provider, usd_per_hour_micros=rate, workers=workers, market=market)
    if "usd_per_hour" in cfg:
        raise SpecError("resources.usd_per_hour", "give usd_per_hour or price_as, not both", cfg["usd_per_hour"])
    ref = cfg["price_as"]
    cloud, region, instance_type = parse_price_ref(ref, "resources.price_as")
    try:
        price = PriceTable.bundled().rate(cloud, region, instance_type, market)
    except PriceNotFound as exc:
        raise SpecError("resources.price_as", str(exc)) from None
    return Resources(provider=provider, usd_per_hour_micros=price.usd_per_hour_micros, workers=workers,
                     price_as=price.ref, market=market, billing=billing_rule(cloud),
                     rate_source=f"{price.source} (as of {price.as_of.isoformat()})")


def _command(value: Any, space: SearchSpace) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            value = shlex.split(value)
        except ValueError as exc:
            raise SpecError("command", f"cannot split into arguments ({exc})", value) from None
    if not isinstance(value, list) or not value:
        raise SpecError("command", "must be a non-empty list of arguments", value)
    allowed = set(space.names) | set(RESERVED_PLACEHOLDERS)
    sample = {**space.sample(np.random.default_rng(0)), **dict.fromkeys(RESERVED_PLACEHOLDERS, "x")}
    sample["trial_number"] = 0
    args: list[str] = []
    for i, arg in enumerate(value):
        path = f"command[{i}]"
        if isinstance(arg, bool) or not isinstance(arg, str | int | float):
            raise SpecError(path, "must be a string or a number", arg)
        text = str(arg)
        _check_template(text, path, allowed, sample)
        args.append(text)
    return tuple(args)


def _check_template(text: str, path: str, allowed: set[str], sample: dict[str, Any]) -> None:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        raise SpecError(path, f"bad placeholder ({exc}); write {{{{ and }}}} for literal braces", text) from None
    for name in fields:
        if name not in allowed:
            raise SpecError(path, f"unknown placeholder {{{name}}}; known: {', '.join(sorted(allowed))}", text)
    try:
        text.format(**sample)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise SpecError(path, f"placeholder cannot be formatted ({exc})", text) from None


def _env(value: Any) -> dict[str, str]:
    cfg = _mapping(value, "env")
    out: dict[str, str] = {}
    for key, val in cfg.items():
        if not isinstance(key, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise SpecError(f"env.{key}", "must be an environment variable name")
        if isinstance(val, bool) or not isinstance(val, str | int | float):
            raise SpecError(f"env.{key}", "must be a string or a number", val)
        out[key] = str(val)
    return out


def _optional_path(value: Any, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise SpecError(path, "must be a path", value)
    return value


__all__ = ["SAMPLER_TYPES", "Budget", "Resources", "SweepSpec", "load_sweep", "parse_sweep"]
