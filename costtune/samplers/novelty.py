"""The no-repeat rule every sampler follows: never propose a configuration already tried or running
while an untried one remains.

A finite space (every parameter categorical, ``values`` or integer) has a known number of
configurations; once they have all been tried a repeat is the only thing left to propose and is
allowed. In a space with a continuous parameter an exact repeat is avoided by drawing again. The
study applies ``avoid_repeat`` to whatever a sampler proposes (queued and manual configurations are
the user's explicit choice and exempt); model-based samplers also skip tried points themselves, so
their acquisition picks the best untried candidate rather than a random one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from costtune.space import GridPlan, Int, SearchSpace

ENUMERATE_LIMIT = 20_000  # finite spaces up to this size are enumerated to find what is untried
_REDRAWS = 64  # random redraws before enumerating (cheap while most of the space is untried)

Key = tuple[Any, ...]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return ("bool", value)  # True is not the integer 1 here
    if isinstance(value, list | dict | tuple):
        return ("json", json.dumps(value, sort_keys=True, default=str))
    return value


def config_key(params: Mapping[str, Any], names: Sequence[str]) -> Key | None:
    """A hashable identity of ``params`` over ``names``; None when a name is missing."""
    try:
        return tuple(_plain(params[name]) for name in names)
    except KeyError:
        return None


def taken_keys(space: SearchSpace, configs: Iterable[Mapping[str, Any]]) -> set[Key]:
    names = space.names
    keys = (config_key(c, names) for c in configs)
    return {k for k in keys if k is not None}


def axes(space: SearchSpace) -> list[list[Any]] | None:
    """Every value of every parameter when the space is finite; None when one is continuous."""
    out = []
    for dist in space.values():
        options = getattr(dist, "options", None)
        if options is not None:
            out.append(list(options))
        elif isinstance(dist, Int):
            out.append(list(range(dist.low, dist.top + 1, dist.step)))
        else:
            return None
    return out


def finite_size(space: SearchSpace) -> int | None:
    """How many configurations a finite space holds; None when a parameter is continuous."""
    size = 1
    for dist in space.values():
        options = getattr(dist, "options", None)
        if options is not None:
            size *= len(options)
        elif isinstance(dist, Int):
            size *= dist.count
        else:
            return None
    return size


def untried(space: SearchSpace, taken: set[Key], limit: int = ENUMERATE_LIMIT) -> list[dict[str, Any]] | None:
    """Every configuration of a finite space not in ``taken``; None when the space is not finite or too big."""
    values = axes(space)
    if values is None:
        return None
    plan = GridPlan(space.names, values)
    if plan.size > limit:
        return None
    names = space.names
    return [c for c in plan if config_key(c, names) not in taken]


def avoid_repeat(space: SearchSpace, proposal: dict[str, Any], configs: Iterable[Mapping[str, Any]],
                 rng: np.random.Generator) -> dict[str, Any]:
    """``proposal`` unless it repeats one of ``configs``; then an untried configuration (drawn with
    ``rng``), or ``proposal`` itself when every configuration of a finite space has been tried."""
    names = space.names
    taken = taken_keys(space, configs)
    if config_key(proposal, names) not in taken:
        return proposal
    for _ in range(_REDRAWS):
        draw = space.sample(rng)
        if config_key(draw, names) not in taken:
            return draw
    left = untried(space, taken)
    if left:
        return left[int(rng.integers(len(left)))]
    if left is None and finite_size(space) is None:  # continuous: keep drawing, a repeat is vanishingly rare
        for _ in range(_REDRAWS * 16):
            draw = space.sample(rng)
            if config_key(draw, names) not in taken:
                return draw
    return proposal
