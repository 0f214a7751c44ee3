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
from costtune.money import format_usd, usd_to_micros
from costtune.names import RESERVED_PLACEHOLDERS, check_metric_name, check_param_names, check_study_name
from costtune.policies.parse import parse_sweep_tags
from costtune.samplers import SAMPLER_TYPES, check_sampler_for_scheduler, sampler_config
from costtune.schedulers import RUNG_TYPES, plan_brackets, scheduler_config
from costtune.schedulers.defaults import choose_rungs
from costtune.schedulers.hyperband import PLAN_KINDS
from costtune.space import SearchSpace
from costtune.spec.environment import parse_env, parse_passthrough
from costtune.spec.fields import integer, os_text, seconds
from costtune.spec.paths import check_output_root, check_workdir, path_text
from costtune.spec.resources import PROVIDERS, Resources, parse_resources
from costtune.spec.server import ServerSettings, parse_server
from costtune.words import plural
from costtune.yamlfile import read_yaml_file

TOP_LEVEL = ("name", "objective", "space", "sampler", "scheduler", "budget", "resources", "command", "env",
             "env_passthrough", "workdir", "output_dir", "server", "tags")


@dataclass(frozen=True)
class Budget:
    trials: int | None = None
    usd_micros: int | None = None
    trial_seconds: float | None = None
    max_failures: int = 5  # stop launching after this many failed trials in a row; 0: never


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
    env: dict[str, str] = field(default_factory=dict)  # values as written: ${VAR} resolved at launch
    env_passthrough: tuple[str, ...] = ()  # names or globs of costtune's environment that trials see
    workdir: str | None = None
    output_dir: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)  # the file as given, kept with the study
    server: ServerSettings = field(default_factory=ServerSettings)  # the worker API of remote trials
    tags: dict[str, str] = field(default_factory=dict)  # picks the spend policies; on every launch

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
    """Validate a sweep file's mapping (as read by ``load_sweep``, or built in Python) in full.

    Also checks ``workdir`` and the output root on this machine (nothing is created). Raises
    ``SpecError`` naming the field and the value; the store is never touched.
    """
    if not isinstance(data, dict):
        raise SpecError("", "a sweep file must be a mapping of fields (name, objective, space, ...)", data)
    _no_unknown(data, TOP_LEVEL, "")
    provider = data["resources"].get("provider") if isinstance(data.get("resources"), dict) else None
    if provider is not None and provider not in PROVIDERS:  # before "command is required": it depends on this
        raise SpecError("resources.provider", f"must be one of {', '.join(PROVIDERS)}", provider)
    simulated = provider == "simulated"
    for required in ("name", "objective", "space") + (() if simulated else ("command",)):
        if required not in data:
            raise SpecError(required, "is required")
    name = check_study_name(data["name"], "name")
    metric, mode = _objective(data["objective"])
    resources = parse_resources(data.get("resources", {}))
    if simulated:
        _no_command_fields(data)
    space_cfg = dict(_mapping(data["space"], "space"))
    for param, dim in resources.searched.items():
        if param in space_cfg:
            raise SpecError(f"space.{param}", f"is set by resources.{param}; search it there, not in space")
        space_cfg[param] = dim
    space = SearchSpace.from_dict(space_cfg, path="space")
    _check_param_names(space)
    sampler = sampler_config(_with_default_type(data.get("sampler", {}), data.get("budget"), resources), space)
    section = _with_default_scheduler(data.get("scheduler"), data.get("budget"), resources)
    try:
        scheduler = scheduler_config(section, choose=True)
    except SpecError as exc:
        given = data.get("scheduler")
        if not (isinstance(given, dict) and "type" not in given and "unknown field" in exc.reason):
            raise
        raise SpecError(exc.path, f"{exc.reason} (a section without type gets the default type, "
                        f"{section['type']} here: name the type to set this field)") from None
    check_sampler_for_scheduler(sampler, scheduler)
    budget = _budget(data.get("budget", {}), sampler["type"], resources)
    if scheduler["type"] != "fifo" and resources.usd_per_hour_micros == 0:
        raise SpecError("scheduler.type", f"{scheduler['type']} judges trials by the dollars they spend: price them "
                        "with resources.usd_per_hour or resources.price_as", scheduler["type"])
    if scheduler["type"] in RUNG_TYPES and (scheduler["min_usd"] is None or scheduler["max_usd"] is None):
        scheduler = choose_rungs(scheduler, resources, budget.usd_micros)
        # stored with the study as chosen, so a resumed sweep keeps them (session.open_sweep)
        data = {**data, "scheduler": {**data["scheduler"], "min_usd": scheduler["min_usd"],
                                      "max_usd": scheduler["max_usd"], "chosen": scheduler["chosen"]}}
    configs = sampler.get("configs", [])
    if budget.trials is not None and len(configs) > budget.trials:
        raise SpecError("sampler.configs", f"lists {plural(len(configs), 'configuration')}, more than budget.trials "
                        f"({budget.trials}); each queued configuration counts toward it", len(configs))
    if budget.usd_micros is not None:
        _check_cap_funds_a_trial(budget.usd_micros, scheduler, data)
    if scheduler["type"] in PLAN_KINDS:  # a budget too small for the plan fails here
        plan_brackets(scheduler["type"], scheduler["min_usd_micros"], scheduler["max_usd_micros"], scheduler["eta"],
                      budget.usd_micros)
        if budget.usd_micros is not None and "plan_usd_micros" not in scheduler:
            # the cap its brackets are fitted to, stored with the study: a raised cap repeats them, never
            # reshapes them (schedulers.study_plan); a resume keeps the stored one (session.open_sweep)
            scheduler = {**scheduler, "plan_usd_micros": budget.usd_micros}
            data = {**data, "scheduler": {**data["scheduler"], "plan_usd_micros": budget.usd_micros}}
    if scheduler["type"] == "asha" and budget.usd_micros is None and budget.trials is None:
        raise SpecError("budget", "an asha sweep runs until its budget: give usd and/or trials", data.get("budget"))
    command = _command(data.get("command", ["simulated"]), space)
    env = _env(data.get("env", {}))
    workdir, output_dir = _directories(data, resources.provider)
    spec = SweepSpec(
        name=name, metric=metric, mode=mode, space=space, sampler=sampler, scheduler=scheduler,
        budget=budget, resources=resources, command=command, env=env, workdir=workdir, output_dir=output_dir,
        env_passthrough=parse_passthrough(data.get("env_passthrough")), raw=data,
        server=parse_server(data.get("server")), tags=parse_sweep_tags(data.get("tags")),
    )
    if spec.sampler["type"] == "grid":
        spec.space.grid(spec.sampler.get("points"), path="space")  # every parameter must be griddable
    if spec.max_trials is None and resources.usd_per_hour_micros == 0:
        raise SpecError("budget.usd", "can never be reached while resources.usd_per_hour is 0; "
                        "set a rate or budget.trials", data.get("budget", {}).get("usd"))
    return spec


def load_warnings(spec: SweepSpec) -> list[str]:
    """What a valid sweep file says that cannot work as the user likely means it: ``costtune plan`` and ``costtune
    run`` print these on stderr before anything starts (a warning, not an error: the sweep still has an end).

    - ``budget.usd`` on unpriced trials (``provider: local`` with no ``usd_per_hour`` or ``price_as``, or a rate
      of 0): every trial is charged $0, so the cap can never bind and the sweep ends by its trial count. (With
      ``usd`` as the only end, ``parse_sweep`` refuses the file instead: it would never end.)
    """
    out: list[str] = []
    res = spec.resources
    if spec.budget.usd_micros is not None and res.usd_per_hour_micros == 0 and not any(res.rates.values()):
        given = spec.raw.get("resources") if isinstance(spec.raw.get("resources"), dict) else {}
        rate = "is not set" if given.get("usd_per_hour") is None else "is 0"
        out.append(f"budget.usd ({format_usd(spec.budget.usd_micros)}) can never bind: resources.usd_per_hour {rate}, "
                   "so every trial is charged $0 and the sweep ends by its trial count alone; set "
                   "resources.usd_per_hour (or resources.price_as) to price the trials, or remove budget.usd")
    return out


def default_sampler_type(budget: Any, resources: Resources) -> dict[str, Any]:
    """The sampler a sweep gets when its file names no ``sampler.type``.

    Under a dollar budget (``budget.usd``) on priced resources: cost-aware Bayes (expected improvement
    per predicted dollar, the instance type and market chosen per configuration), which reached the
    benchmarks' targets for the fewest dollars (``benchmarks/vs_optuna.py``, README "Dollars to a
    target"). Otherwise random search.
    """
    usd = budget.get("usd") if isinstance(budget, dict) else None
    if usd is not None and (resources.usd_per_hour_micros > 0 or resources.rates):
        return {"type": "bayes", "cost_aware": True}
    return {"type": "random"}


def default_scheduler(budget: Any, resources: Resources) -> dict[str, Any]:
    """The scheduler section a sweep gets when its file has none.

    Under a dollar budget (``budget.usd``) on priced resources: learning-curve stopping
    (``{type: curve}``, ``costtune.schedulers.curve``), which with cost-aware Bayes reached the benchmarks'
    targets for fewer or equal dollars than running every trial to its end (``benchmarks/vs_optuna.py``,
    README "costtune against Optuna"). Otherwise ``{type: fifo}``: every trial runs to its end. A new
    study stores the section it got (``runner.session.open_sweep``), so a later change of this default
    never changes a study that exists.
    """
    usd = budget.get("usd") if isinstance(budget, dict) else None
    if usd is not None and resources.usd_per_hour_micros > 0:
        return {"type": "curve"}
    return {"type": "fifo"}


def _with_default_scheduler(value: Any, budget: Any, resources: Resources) -> Any:
    """The file's scheduler section with the default type filled in when it has none or names no type
    (``scheduler: {confidence: 0.9}`` under a dollar budget is curve stopping with that setting)."""
    if value is None:
        return default_scheduler(budget, resources)
    if isinstance(value, dict) and "type" not in value:
        return {**default_scheduler(budget, resources), **value}
    return value


def _with_default_type(value: Any, budget: Any, resources: Resources) -> Any:
    """``value`` (the file's sampler section) with the default type filled in when it names none."""
    if not isinstance(value, dict) or "type" in value:
        return value
    return {**default_sampler_type(budget, resources), **value}


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
    metric = check_metric_name(obj.get("metric"), "objective.metric")
    mode = obj.get("mode", "min")
    if mode not in ("min", "max"):
        raise SpecError("objective.mode", "must be min or max", mode)
    return metric, Mode(mode)


def _budget(value: Any, sampler_type: str, resources: Resources) -> Budget:
    """The ``budget`` section; ``budget.usd`` must fund one trial's minimum charge (``_least_charge``)."""
    cfg = _mapping(value, "budget")
    _no_unknown(cfg, ("trials", "usd", "trial_seconds", "max_failures"), "budget")
    trials = None if cfg.get("trials") is None else integer(cfg["trials"], "budget.trials")
    usd = None
    if cfg.get("usd") is not None:
        least, why = _least_charge(resources)
        usd = usd_to_micros(cfg["usd"], "budget.usd", minimum=least, why=why)
    limit = cfg.get("trial_seconds")
    if limit is not None:
        limit = seconds(limit, "budget.trial_seconds", positive=True)
    if trials is None and usd is None and sampler_type in ("random", "bayes"):
        raise SpecError("budget", f"a {sampler_type} sweep needs an end: give trials and/or usd", cfg)
    failures = 5 if cfg.get("max_failures") is None else integer(cfg["max_failures"], "budget.max_failures",
                                                                  minimum=0)
    return Budget(trials=trials, usd_micros=usd, trial_seconds=limit, max_failures=failures)


def _check_param_names(space: SearchSpace) -> None:
    """Each parameter reaches a command trial as ``{name}`` and as ``COSTTUNE_PARAM_<NAME>``: the one rule
    of ``costtune.names.check_param_name`` (also the Python API's and ``costtune enqueue``'s)."""
    check_param_names(space.names, "space")


def _least_charge(resources: Resources) -> tuple[int, str]:
    """The smallest cap that runs anything (micro-dollars): what the cheapest placement costs for one billable
    millisecond, and the words saying so. A sweep with no rate at all (local, usd_per_hour 0) is free: 0."""
    rates = set(resources.rates.values()) or {resources.usd_per_hour_micros}
    if resources.simulation is not None:
        rates |= {rate for trace in resources.simulation.spot_prices.values() for _, rate in trace}
    least = min(resources.billing.charge(1, rate) for rate in rates)
    return least, f": one trial's minimum charge ({resources.billing.note} at {format_usd(min(rates))}/h)"


def _check_cap_funds_a_trial(cap: int, scheduler: dict[str, Any], data: dict[str, Any]) -> None:
    """With dollar rungs, a trial's first reservation is its first rung (``scheduler.min_usd``): a cap below it
    runs nothing; curve's ``min_usd`` must be below the cap. Errors echo the values as the file gives them."""
    given = data["budget"]["usd"]
    if scheduler["type"] not in ("fifo", "curve") and cap < scheduler["min_usd_micros"]:
        raise SpecError("budget.usd", f"must be at least scheduler.min_usd ({format_usd(scheduler['min_usd_micros'])}):"
                        " no trial can reach its first rung", given)
    if scheduler["type"] == "curve" and scheduler["min_usd_micros"] is not None and scheduler["min_usd_micros"] >= cap:
        raise SpecError("scheduler.min_usd", f"must be below budget.usd ({format_usd(cap)}): curve checks no trial "
                        "before it has spent min_usd, so with the whole study capped at that it could never stop one",
                        data["scheduler"]["min_usd"])  # as the file gives it: 0.5, or '0.5' if quoted


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
        text = os_text(str(arg), path)
        formatted = os_text(_check_template(text, path, allowed, sample), path)
        if i == 0 and not formatted.strip():
            raise SpecError(path, "must name the program to run", arg)
        args.append(text)
    return tuple(args)


def _check_template(text: str, path: str, allowed: set[str], sample: dict[str, Any]) -> str:
    """``text`` formatted with ``sample``; its placeholders must be known and their specs sane."""
    try:
        parts = [(f, spec) for _, f, spec, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        raise SpecError(path, f"bad placeholder ({exc}); write {{{{ and }}}} for literal braces", text) from None
    for name, spec in parts:
        if name not in allowed:
            raise SpecError(path, f"unknown placeholder {{{name}}}; known: {', '.join(sorted(allowed))}", text)
        if any(int(n) > 1000 for n in re.findall(r"\d+", spec or "")):
            raise SpecError(path, f"placeholder {{{name}:{spec}}} asks for a width or precision above 1000", text)
    try:
        return text.format(**sample)
    except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        raise SpecError(path, f"placeholder cannot be formatted ({exc})", text) from None


def _env(value: Any) -> dict[str, str]:
    env = parse_env(value)
    for key, text in env.items():
        os_text(text, f"env.{key}")
    return env


# What a simulated sweep would silently ignore: it runs resources.simulation.workload, no command.
_COMMAND_ONLY = {
    "command": "is not run by provider simulated, which runs resources.simulation.workload: remove it (or use "
               "provider local to run the command)",
    "env": "reaches only command trials; provider simulated runs resources.simulation.workload: remove it",
    "env_passthrough": "reaches only command trials; provider simulated runs resources.simulation.workload: "
                       "remove it",
    "workdir": "is where command trials run; provider simulated runs resources.simulation.workload: remove it",
    "output_dir": "holds command trials' directories; simulated trials write no files: remove it",
}


def _no_command_fields(data: dict[str, Any]) -> None:
    """A field a simulated sweep would ignore is refused, never dropped silently."""
    for key, reason in _COMMAND_ONLY.items():
        if key in data:
            raise SpecError(key, reason, data[key])


def _directories(data: dict[str, Any], provider: str) -> tuple[str | None, str | None]:
    """``workdir`` and ``output_dir``, checked on this machine (nothing is created).

    Local trials write under ``$COSTTUNE_HOME/runs`` when no output_dir is given: that root is checked too.
    """
    workdir = None if data.get("workdir") is None else path_text(data["workdir"], "workdir")
    output_dir = None if data.get("output_dir") is None else path_text(data["output_dir"], "output_dir")
    if workdir is not None:
        check_workdir(workdir)
    if output_dir is not None:
        check_output_root(output_dir)
    elif provider in ("local", "aws"):  # aws trials keep their logs and params here too
        from costtune.store.engine import costtune_home  # the store package is heavy: only when needed

        check_output_root(costtune_home() / "runs", f"output_dir (default {costtune_home() / 'runs'})")
    return workdir, output_dir


__all__ = ["SAMPLER_TYPES", "Budget", "Resources", "SweepSpec", "load_sweep", "load_warnings", "parse_sweep"]
