"""Discrete distributions: Int on a step grid, and the option lists Categorical and Values."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from costtune.errors import SpecError, shown
from costtune.limits import INT64_MAX, MAX_GRID_POINTS
from costtune.space._base import (
    _as_int,
    _Base,
    _integer,
    _is_real,
    _literal,
    _options,
    _order,
    _same,
    _unit,
)


def _pick(count: int, targets: np.ndarray) -> list[int]:
    """Turn sorted fractional indices into unique sorted ones in [0, count) that keep both ends."""
    n = len(targets)
    picked: list[int] = []
    for j, t in enumerate(targets):
        k = math.floor(float(t) + 0.5)
        lo = picked[-1] + 1 if picked else 0
        picked.append(min(max(k, lo), count - n + j))
    return picked


@dataclass(frozen=True)
class Int(_Base):
    """Integers low, low+step, ... <= high; with log=True drawn log-uniformly, then rounded to that grid."""

    low: int
    high: int
    step: int = 1
    log: bool = False
    points: int | None = field(default=None, kw_only=True)
    kind: ClassVar[str] = "int"
    _fields: ClassVar[tuple[str, ...]] = ("low", "high", "step", "log")

    @classmethod
    def _parse(cls, spec: Mapping, path: str, points: int | None) -> Int:
        low, high = _integer(spec, "low", path, cls.kind), _integer(spec, "high", path, cls.kind)
        step = _integer(spec, "step", path, cls.kind, default=1)
        _order(low, high, spec, path)
        if step < 1:
            raise SpecError(f"{path}.step", "must be >= 1", spec["step"])
        if step > high - low:
            raise SpecError(f"{path}.step", f"must be <= high - low ({high - low})", spec["step"])
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise SpecError(f"{path}.log", "must be true or false", log)
        if log and low < 1:
            raise SpecError(f"{path}.low", "must be >= 1 when log is true", spec["low"])
        return cls(low, high, step, log, points=points)

    @property
    def is_discrete(self) -> bool:
        return True

    def _check_representable(self, path: str) -> None:
        if self.count > INT64_MAX:  # numpy draws an index below count in 64 bits
            raise SpecError(path, "(high - low) / step must be below 2**63", self.to_dict())

    @property
    def count(self) -> int:
        """How many values are allowed."""
        return (self.high - self.low) // self.step + 1

    @property
    def top(self) -> int:
        """The largest allowed value (``high`` itself only when it is on the step grid)."""
        return self.low + (self.count - 1) * self.step

    def _nearest(self, x: float) -> int:
        k = math.floor((x - self.low) / self.step + 0.5)
        return self.low + min(max(k, 0), self.count - 1) * self.step

    def sample(self, rng: np.random.Generator) -> int:
        if self.log:
            return self.from_unit(float(rng.random()))
        return self.low + int(rng.integers(self.count)) * self.step

    def contains(self, value: Any) -> bool:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            return False
        return self.low <= value <= self.high and (value - self.low) % self.step == 0

    def to_unit(self, value: float) -> float:
        x = float(value)
        if self.log:
            x = min(max(x, self.low), self.top)
            return min(max(math.log(x / self.low) / math.log(self.top / self.low), 0.0), 1.0)
        return ((self._nearest(x) - self.low) // self.step + 0.5) / self.count

    def from_unit(self, u: float) -> int:
        if self.log:
            return self._nearest(self.low * math.exp(_unit(u) * math.log(self.top / self.low)))
        return self.low + min(int(_unit(u) * self.count), self.count - 1) * self.step

    def grid(self, points: int | None = None, *, path: str = "") -> list[int]:
        if points is None and self.points is None and self.count > MAX_GRID_POINTS:
            raise SpecError(path, f"holds {self.count} integers, more than a grid takes ({MAX_GRID_POINTS}); "
                            "give points: N", self.to_dict())
        n = self.count if points is None and self.points is None else self._grid_points(points, path)
        if n >= self.count:
            return list(range(self.low, self.top + 1, self.step))
        if self.log:
            targets = (np.geomspace(self.low, self.top, n) - self.low) / self.step
        else:
            targets = np.linspace(0, self.count - 1, n)
        return [self.low + k * self.step for k in _pick(self.count, targets)]

    def coerce(self, value: Any, path: str = "") -> int:
        x = _as_int(value)
        if x is None or not self.contains(x):
            msg = f"must be an integer in [{self.low}, {self.high}] step {self.step}"
            raise SpecError(path, msg, value)
        return x


class _Choice(_Base):
    """A finite list of options; unit cells of equal width in list order."""

    takes_points: ClassVar[bool] = False  # a grid takes every option: ``points`` is refused, never ignored

    @property
    def options(self) -> tuple:
        raise NotImplementedError

    @property
    def is_numeric(self) -> bool:
        return False

    @property
    def is_discrete(self) -> bool:
        return True

    def _key(self) -> tuple:
        return type(self), self.points, tuple((isinstance(o, bool), o) for o in self.options)

    def __eq__(self, other: object) -> bool:
        """Order- and bool-aware: ``(1, True)`` and ``(True, 1)`` map to the unit interval differently."""
        return isinstance(other, _Choice) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def index(self, value: Any) -> int | None:
        """Position of ``value`` among the options (type-aware), or None."""
        v = value.item() if isinstance(value, np.generic) else value
        return next((i for i, o in enumerate(self.options) if _same(o, v)), None)

    def sample(self, rng: np.random.Generator) -> Any:
        return self.options[int(rng.integers(len(self.options)))]

    def contains(self, value: Any) -> bool:
        return self.index(value) is not None

    def to_unit(self, value: Any) -> float:
        i = self.index(value)
        if i is None:
            raise SpecError("value", f"must be one of {shown(list(self.options), bounded=False)}", value)
        return (i + 0.5) / len(self.options)

    def from_unit(self, u: float) -> Any:
        n = len(self.options)
        return self.options[min(int(_unit(u) * n), n - 1)]

    def grid(self, points: int | None = None, *, path: str = "") -> list[Any]:
        return list(self.options)

    def coerce(self, value: Any, path: str = "") -> Any:
        """Exact match first, then the string read as a literal, then the string form of a choice."""
        i = self.index(value)
        if i is None and isinstance(value, str):
            i = self.index(_literal(value))
            if i is None:
                hits = [j for j, o in enumerate(self.options) if str(o) == value]
                i = hits[0] if len(hits) == 1 else None
        if i is None:
            raise SpecError(path, f"must be one of {shown(list(self.options), bounded=False)}", value)
        return self.options[i]


@dataclass(frozen=True, eq=False)
class Categorical(_Choice):
    choices: tuple
    points: int | None = field(default=None, kw_only=True)
    kind: ClassVar[str] = "categorical"
    _fields: ClassVar[tuple[str, ...]] = ("choices",)

    @classmethod
    def _parse(cls, spec: Mapping, path: str, points: int | None) -> Categorical:
        if "choices" not in spec:
            raise SpecError(f"{path}.choices", "missing required field for categorical")
        return cls(_options(spec["choices"], f"{path}.choices"), points=points)

    @property
    def options(self) -> tuple:
        return self.choices


@dataclass(frozen=True, eq=False)
class Values(_Choice):
    """An explicit list: a grid axis as given, an ordered set for the other samplers."""

    values: tuple
    points: int | None = field(default=None, kw_only=True)
    kind: ClassVar[str] = "values"
    _fields: ClassVar[tuple[str, ...]] = ("values",)

    @classmethod
    def _parse(cls, spec: Mapping, path: str, points: int | None) -> Values:
        if "values" not in spec:
            raise SpecError(f"{path}.values", "missing required field for values")
        return cls(_options(spec["values"], f"{path}.values"), points=points)

    @property
    def options(self) -> tuple:
        return self.values

    @property
    def is_numeric(self) -> bool:
        return all(_is_real(v) for v in self.values)
