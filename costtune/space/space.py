"""The search space: an ordered, immutable mapping of parameter names to distributions.

Order matters: it fixes the grid enumeration (first parameter varies slowest), so equality is
order-sensitive and YAML dumps should use ``sort_keys=False``.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from costtune.errors import SpecError
from costtune.names import check_param_name
from costtune.space.distributions import Distribution, Values, _same, parse_distribution


def _check_name(name: Any, path: str, taken: dict[str, str]) -> str:
    """The one parameter-name rule (``costtune.names.check_param_name``): ASCII identifiers that work as
    ``{name}`` template fields, keyword arguments and ``COSTTUNE_PARAM_<NAME>``, no built-in placeholder,
    no two names that upper-case alike. ``taken`` (upper-cased name -> path) grows by ``name``."""
    where = f"{path}.{name}"
    check_param_name(name, where, taken)
    taken.setdefault(name.upper(), where)
    return name


def _matches(a: Any, b: Any) -> bool:
    """Grid lookup: exact (type-aware) or, for floats, equal up to rounding noise."""
    if _same(a, b):
        return True
    numeric = all(isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_)) for x in (a, b))
    return numeric and math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-300)


class GridPlan:
    """The cartesian product of per-parameter grids, indexed lazily in mixed radix.

    Only the per-parameter value lists are held, so a grid of 10**30 points costs nothing until a
    config is asked for. ``len()`` fails above ``sys.maxsize``; ``size`` never does.
    """

    __slots__ = ("_axes", "_names", "_size")

    def __init__(self, names: Sequence[str], axes: Sequence[Sequence[Any]]) -> None:
        if len(names) != len(axes) or any(len(axis) == 0 for axis in axes):
            raise SpecError("grid", "needs one non-empty value list per parameter")
        self._names = tuple(names)
        self._axes = tuple(tuple(axis) for axis in axes)
        self._size = math.prod(len(axis) for axis in self._axes)

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    @property
    def axes(self) -> tuple[tuple[Any, ...], ...]:
        """The value list of each parameter, in parameter order."""
        return self._axes

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(len(axis) for axis in self._axes)

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self.config(i) for i in range(self._size))

    def config(self, index: int) -> dict[str, Any]:
        """The combination at ``index``; the last parameter varies fastest."""
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, numbers.Integral) \
                or not 0 <= index < self._size:
            raise SpecError("grid index", f"must be an integer in [0, {self._size})", index)
        rest = int(index)
        picks = [0] * len(self._axes)
        for i in range(len(self._axes) - 1, -1, -1):
            rest, picks[i] = divmod(rest, len(self._axes[i]))
        return {name: axis[k] for name, axis, k in zip(self._names, self._axes, picks, strict=True)}

    def index_of(self, config: Mapping[str, Any]) -> int | None:
        """Inverse of ``config``; None when the config is not a point of this grid."""
        if not isinstance(config, Mapping) or set(config) != set(self._names):
            return None
        index = 0
        for name, axis in zip(self._names, self._axes, strict=True):
            k = next((j for j, v in enumerate(axis) if _matches(v, config[name])), None)
            if k is None:
                return None
            index = index * len(axis) + k
        return index

    def __repr__(self) -> str:
        return f"GridPlan(names={self._names!r}, counts={self.counts!r}, size={self._size})"


class SearchSpace(Mapping[str, Distribution]):
    """Parameter name -> distribution, in declaration order; every entry is validated on the way in."""

    __slots__ = ("_params",)

    def __init__(self, params: Mapping[str, Any] | None = None, *, path: str = "space") -> None:
        checked: dict[str, Distribution] = {}
        taken: dict[str, str] = {}
        for name, spec in (params or {}).items():
            checked[_check_name(name, path, taken)] = parse_distribution(spec, f"{path}.{name}")
        self._params: dict[str, Distribution] = checked  # never handed out, so never mutated

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "space") -> SearchSpace:
        """Parse the ``space:`` section of a sweep file; it must name at least one parameter."""
        if not isinstance(d, Mapping):
            raise SpecError(path, "must be a mapping of parameter names to distributions", d)
        if not d:
            raise SpecError(path, "must define at least one parameter", dict(d))
        return cls(d, path=path)

    @classmethod
    def from_json(cls, s: str, path: str = "space") -> SearchSpace:
        try:
            data = json.loads(s)
        except json.JSONDecodeError as exc:
            where = f"line {exc.lineno} column {exc.colno}"
            raise SpecError(path, f"invalid JSON ({exc.msg} at {where})") from exc
        return cls.from_dict(data, path)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: dist.to_dict() for name, dist in self._params.items()}

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def __getitem__(self, name: str) -> Distribution:
        return self._params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._params)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SearchSpace):
            return NotImplemented
        return list(self._params.items()) == list(other._params.items())

    def __hash__(self) -> int:
        return hash(tuple(self._params.items()))

    def __repr__(self) -> str:
        return f"SearchSpace({dict(self._params)!r})"

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return {name: dist.sample(rng) for name, dist in self._params.items()}

    def contains(self, config: Mapping[str, Any]) -> bool:
        if not isinstance(config, Mapping) or set(config) != set(self._params):
            return False
        return all(dist.contains(config[name]) for name, dist in self._params.items())

    def coerce_config(self, config: Mapping[str, Any], path: str = "config") -> dict[str, Any]:
        """Type a user-given config (CLI strings included); every parameter present, nothing extra.

        A constant (a single-value list or a bare value in the space) may be left out.
        """
        if not isinstance(config, Mapping):
            raise SpecError(path, "must be a mapping of parameter names to values", config)
        allowed = ", ".join(self._params)
        for name in config:
            if name not in self._params:
                raise SpecError(f"{path}.{name}", f"unknown parameter; allowed: {allowed}")
        out: dict[str, Any] = {}
        for name, dist in self._params.items():
            if name not in config:
                options = getattr(dist, "options", None)
                if isinstance(dist, Values) and options is not None and len(options) == 1:
                    out[name] = options[0]
                    continue
                raise SpecError(f"{path}.{name}", "missing; every parameter needs a value")
            out[name] = dist.coerce(config[name], f"{path}.{name}")
        return out

    def grid(self, points: int | None = None, path: str = "space") -> GridPlan:
        """The grid of all parameters; a parameter's own ``points`` wins over the ``points`` default here."""
        axes = []
        for name, dist in self._params.items():
            n = dist.points if dist.points is not None else points
            axes.append(dist.grid(n, path=f"{path}.{name}"))
        return GridPlan(self.names, axes)

    def with_param(self, name: str, dist: Any) -> SearchSpace:
        """A new space with one more parameter; re-declaring it identically is a no-op."""
        _check_name(name, "space", {n.upper(): f"space.{n}" for n in self._params if n != name})
        parsed = parse_distribution(dist, f"space.{name}")
        if name in self._params:
            if self._params[name] != parsed:
                current = self._params[name].to_dict()
                raise SpecError(f"space.{name}", f"already defined as {current!r}", parsed.to_dict())
            return self
        return SearchSpace({**self._params, name: parsed})
