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

from costtune.errors import SpecError
from costtune.history import Mode
from costtune.money import usd_to_micros
from costtune.samplers import SAMPLER_TYPES, sampler_config
from costtune.schedulers import plan_brackets, scheduler_config
from costtune.space import SearchSpace
from costtune.spec.resources import Resources, parse_resources
from costtune.yamlfile import read_yaml_file

TOP_LEVEL = ("name", "objective", "space", "sampler", "scheduler", "budget", "resources", "command", "env",
             "workdir", "output_dir")
RESERVED_PLACEHOLDERS = ("trial_dir", "checkpoint_dir", "trial_number", "study", "params_file")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


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
    """Read and validate a sweep file (YAML 1.2 core rules, see ``costtune.yamlfile``).

    Raises ``SpecError`` (an ``InputError``) naming the file or the field; nothing is created.
    """
    return parse_sweep(read_yaml_file(path, what="sweep file"))


def parse_sweep(data: Any) -> SweepSpec:
    if not isinstance(data, dict):
        raise SpecError("", "a sweep file must be a mapping of fields (name, objective, space, ...)", data)
    _no_unknown(data, TOP_LEVEL, "")
    simulated = isinstance(data.get("resources"), dict) and data["resources"].get("provider") == "simulated"
    for required in ("name", "objective", "space") + (() if simulated else ("command",)):
        if required not in data:
            raise SpecError(required, "is required")
    name = data["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError("name", "must be letters, digits, '_', '.' or '-' (at most 128)", name)
    metric, mode = _objective(data["objective"])
    resources = parse_resources(data.get("resources", {}))
    space_cfg = dict(_mapping(data["space"], "space"))
    for param, dim in resources.searched.items():
        if param in space_cfg:
            raise SpecError(f"space.{param}", f"is set by resources.{param}; search it there, not in space")
        space_cfg[param] = dim
    space = SearchSpace.from_dict(space_cfg, path="space")
    sampler = sampler_config(data.get("sampler", {"type": "random"}), space)
    scheduler = scheduler_config(data.get("scheduler", {"type": "fifo"}))
    budget = _budget(data.get("budget", {}), sampler["type"])
    if scheduler["type"] != "fifo" and resources.usd_per_hour_micros == 0:
        raise SpecError("scheduler.type", f"{scheduler['type']} judges trials by the dollars they spend: price them "
                        "with resources.usd_per_hour or resources.price_as", scheduler["type"])
    if scheduler["type"] in ("sh", "hyperband", "bohb"):  # a budget too small for the plan fails here
        plan_brackets(scheduler["type"], scheduler["min_usd_micros"], scheduler["max_usd_micros"], scheduler["eta"],
                      budget.usd_micros)
    if scheduler["type"] == "asha" and budget.usd_micros is None and budget.trials is None:
        raise SpecError("budget", "an asha sweep runs until its budget: give usd and/or trials", data.get("budget"))
    command = _command(data.get("command", ["simulated"]), space)
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
