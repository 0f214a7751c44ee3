"""Search methods: grid, random, manual and Bayesian, behind one ``Sampler`` interface.

A sampler's configuration is a plain dict (what the sweep file says, with defaults filled in) so
that a study can store it and rebuild the very same sampler when a sweep is resumed.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from costtune.errors import SpecError
from costtune.samplers.base import Sampler
from costtune.samplers.simple import GridSampler, ManualSampler, RandomSampler

if TYPE_CHECKING:
    from costtune.space import SearchSpace

SAMPLER_TYPES = ("grid", "random", "manual", "bayes")
_FIELDS = {
    "grid": ("type", "points", "configs"),
    "random": ("type", "seed", "configs"),
    "manual": ("type", "configs"),
    "bayes": ("type", "seed", "configs", "n_startup", "cost_aware", "cost_weight"),
}


def sampler_config(value: Any, space: SearchSpace) -> dict[str, Any]:
    """Validate a sweep file's ``sampler`` section; fill in defaults (a fresh seed when none)."""
    if not isinstance(value, dict):
        raise SpecError("sampler", "must be a mapping such as {type: bayes, seed: 0}", value)
    kind = value.get("type", "random")
    if kind not in SAMPLER_TYPES:
        raise SpecError("sampler.type", f"must be one of {', '.join(SAMPLER_TYPES)}", kind)
    for key in value:
        if key not in _FIELDS[kind]:
            raise SpecError(f"sampler.{key}", f"unknown field for {kind}; allowed: {', '.join(_FIELDS[kind])}")
    from costtune.spec.fields import integer  # here: costtune.spec imports this module

    cfg: dict[str, Any] = {"type": kind}
    if "seed" in _FIELDS[kind]:
        seed = value.get("seed")
        if seed is None:
            seed = secrets.randbelow(2**31)
        cfg["seed"] = integer(seed, "sampler.seed", minimum=0)
    if kind == "grid" and value.get("points") is not None:
        cfg["points"] = integer(value["points"], "sampler.points")
    if kind == "bayes":
        # Cost-aware: every random start-up trial is paid for before the model can steer the money,
        # and the benchmarks (benchmarks/vs_optuna.py) reach targets for less with 5 than with 10.
        n_startup = value.get("n_startup", 5 if value.get("cost_aware") is True else 10)
        cfg["n_startup"] = integer(n_startup, "sampler.n_startup")
        cfg.update(_cost_fields(value))
    configs = value.get("configs", [])
    if not isinstance(configs, list):
        raise SpecError("sampler.configs", "must be a list of parameter mappings", configs)
    if kind == "manual" and not configs:
        raise SpecError("sampler.configs", "a manual sweep needs at least one configuration", configs)
    cfg["configs"] = [
        space.coerce_config(_as_mapping(c, f"sampler.configs[{i}]"), path=f"sampler.configs[{i}]")
        for i, c in enumerate(configs)
    ]
    return cfg


def _cost_fields(value: dict[str, Any]) -> dict[str, Any]:
    """Cost-aware settings; absent unless switched on, so existing stored configs read back unchanged."""
    cost_aware = value.get("cost_aware", False)
    if not isinstance(cost_aware, bool):
        raise SpecError("sampler.cost_aware", "must be true or false", cost_aware)
    if "cost_weight" in value:
        weight = value["cost_weight"]
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 < weight <= 1.0:
            raise SpecError("sampler.cost_weight", "must be a number in (0, 1]", weight)
        if not cost_aware:
            raise SpecError("sampler.cost_weight", "only applies with cost_aware: true", weight)
    if not cost_aware:
        return {}
    return {"cost_aware": True, "cost_weight": float(value.get("cost_weight", 1.0))}


def describe_sampler(cfg: dict[str, Any], scheduler: dict[str, Any] | None = None,
                     dimensions: int | None = None) -> str:
    """What proposes the configurations, in words: ``bayes (cost-aware, 5 start-up, seed 7)``, ``random (seed 3)``.

    ``cfg`` is the stored sampler config. Under a ``bohb`` ``scheduler`` BOHB's own model proposes
    (``samplers.rung_model``, set up by the controller and ``Study``): a Bayes sampler (the section's own
    when it is bayes, else a default one) fitted on the highest rung with ``min_points`` results
    (default ``dimensions`` + 2), random proposals until then; a section of another type is named as
    not the one that proposes: ``bohb model (bayes fitted on the highest rung with 8+ results once it
    has 10, random until then; seed 0; not the sampler section's random)``.
    """
    if scheduler is not None and scheduler.get("type") == "bohb":
        return _describe_bohb(cfg, scheduler, dimensions)
    kind = str(cfg.get("type", "random"))
    parts: list[str] = []
    if cfg.get("cost_aware"):
        weight = cfg.get("cost_weight", 1.0)
        parts.append("cost-aware" + ("" if weight == 1.0 else f", cost weight {weight:g}"))
    if kind == "bayes":
        parts.append(f"{cfg.get('n_startup', 10)} start-up")
    if cfg.get("points") is not None:
        parts.append(f"{cfg['points']} points")
    if "seed" in cfg:
        parts.append(f"seed {cfg['seed']}")
    return f"{kind} ({', '.join(parts)})" if parts else kind


def check_sampler_for_scheduler(sampler: dict[str, Any], scheduler: dict[str, Any] | None, *,
                                sampler_field: str = "sampler.type", scheduler_field: str = "scheduler.type") -> None:
    """Refuse a sampler the scheduler would leave unused: ``manual`` or ``grid`` under ``bohb``.

    BOHB differs from Hyperband only in who proposes: its own model. A manual sampler proposes nothing
    (it runs exactly its ``configs``), and a grid's points would never be proposed (the model proposes
    instead), so either pair would not be what the file says. Raises ``SpecError`` naming
    ``sampler_field`` and the sampler type (and ``scheduler_field`` in the message) with the ways out:
    hyperband to judge just those configurations (the same grid) on the same rungs, or a bayes/random
    sampler section whose ``configs`` run first, then BOHB's model."""
    if scheduler is None or scheduler.get("type") != "bohb" or sampler.get("type") not in _NOT_UNDER_BOHB:
        return
    kind = sampler["type"]
    what, effect, keep, model = _NOT_UNDER_BOHB[kind]
    raise SpecError(sampler_field, f"{what}, but {scheduler_field} bohb differs from hyperband only in proposing "
                    f"configurations with its own model{effect}; use {scheduler_field} hyperband to judge {keep} on "
                    f"the same rungs, or {sampler_field} bayes (or random) {model}", kind)


# for each sampler BOHB would leave unused: what it does, what that means under BOHB, what hyperband would judge
# in its place, and how a bayes/random section gives BOHB's model the search instead
_NOT_UNDER_BOHB = {
    "manual": ("a manual sampler runs only its configs and proposes none", "", "just these configurations",
               "with the same configs to run them first and then BOHB's model"),
    "grid": ("a grid sampler proposes its grid's points", " (so the grid's points would never run)",
             "the same grid", "to let BOHB's model search the space (any sampler.configs run first)"),
}


def _describe_bohb(cfg: dict[str, Any], scheduler: dict[str, Any], dimensions: int | None) -> str:
    if cfg.get("type") == "manual":  # stored before the pair was refused: the model never proposes
        return "manual (only its sampler.configs run; bohb's model proposes none)"
    own = cfg.get("type", "random") == "bayes"  # the controller's rule: a bayes section is BOHB's model
    model = cfg if own else {"type": "bayes"}  # make_sampler's defaults
    points = scheduler.get("min_points") or (None if dimensions is None else dimensions + 2)
    first = max(2, int(model.get("n_startup", 10)))  # results the Bayes model needs before it is consulted
    rung = f"{points}+" if points is not None else "dimensions + 2 or more"
    once = f" once it has {first}" if points is None or first > points else ""
    parts = [f"bayes fitted on the highest rung with {rung} results{once}, random until then"]
    if model.get("cost_aware"):
        weight = model.get("cost_weight", 1.0)
        parts.append("cost-aware" + ("" if weight == 1.0 else f", cost weight {weight:g}"))
    if "seed" in cfg:
        parts.append(f"seed {cfg['seed']}")
    if not own:
        parts.append(f"not the sampler section's {cfg.get('type', 'random')}")
    return f"bohb model ({'; '.join(parts)})"


def _as_mapping(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(path, "must be a mapping of parameter names to values", value)
    return value


def make_sampler(cfg: dict[str, Any]) -> Sampler:
    kind = cfg.get("type", "random")
    if kind == "grid":
        return GridSampler(points=cfg.get("points"))
    if kind == "manual":
        return ManualSampler()
    if kind == "bayes":
        from costtune.samplers.bayes import BayesSampler

        return BayesSampler(
            n_startup=cfg.get("n_startup", 10),
            cost_aware=cfg.get("cost_aware", False),
            cost_weight=cfg.get("cost_weight", 1.0),
        )
    if kind == "random":
        return RandomSampler()
    raise SpecError("sampler.type", f"must be one of {', '.join(SAMPLER_TYPES)}", kind)


__all__ = [
    "SAMPLER_TYPES",
    "GridSampler",
    "ManualSampler",
    "RandomSampler",
    "Sampler",
    "check_sampler_for_scheduler",
    "describe_sampler",
    "make_sampler",
    "sampler_config",
]
