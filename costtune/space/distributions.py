"""Parameter distributions: parsing, sampling, unit-interval maps and grids.

Each distribution is a frozen dataclass so spaces can be compared, hashed and stored. Checks live in
``parse_distribution`` rather than ``__post_init__`` because only the parser knows the field path a
message must name; objects built directly are re-parsed (and so checked) when they enter a space.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, TypeAlias

import numpy as np
from scipy import stats

from costtune.errors import SpecError

_EPS = 1e-9
_REQUIRED: Any = object()
_NEEDS_POINTS = "a grid needs explicit values or a point count (points: N)"
_SCALAR_MSG = "must be a string, number, boolean or null"


def _fmt(x: float) -> str:
    """Bounds in messages read as the user wrote them: ``16`` rather than ``16.0``."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(x)


def _is_real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def _literal(text: str) -> Any:
    """Read a CLI-style scalar: 'true' -> True, '64' -> 64, '1e-3' -> 0.001, anything else stays text."""
    t = text.strip()
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none", "~"):
        return None
    for conv in (int, float):
        try:
            return conv(t)
        except ValueError:
            pass
    return text


def _as_int(raw: Any) -> int | None:
    """An integer, an integral float or such a string as int; None if it is none of these."""
    value = _literal(raw) if isinstance(raw, str) else raw
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _unit(u: Any) -> float:
    if not _is_real(u) or math.isnan(float(u)):
        raise SpecError("u", "must be a number in [0, 1]", u)
    return min(max(float(u), 0.0), 1.0)


def _number(spec: Mapping, key: str, path: str, kind: str, default: Any = _REQUIRED) -> Any:
    """A finite float field. Numeric strings count, since PyYAML reads ``1e-5`` as a string."""
    where = f"{path}.{key}"
    if key not in spec or (spec[key] is None and default is None):
        if default is _REQUIRED:
            raise SpecError(where, f"missing required field for {kind}")
        return default
    raw = spec[key]
    value = _literal(raw) if isinstance(raw, str) else raw
    if not _is_real(value):
        raise SpecError(where, "must be a number", raw)
    if not math.isfinite(float(value)):
        raise SpecError(where, "must be finite", raw)
    return float(value)


def _positive(spec: Mapping, key: str, path: str, kind: str) -> float:
    value = _number(spec, key, path, kind)
    if value <= 0:
        raise SpecError(f"{path}.{key}", f"must be > 0 for {kind}", spec[key])
    return value


def _integer(spec: Mapping, key: str, path: str, kind: str, default: Any = _REQUIRED) -> int:
    if key not in spec:
        if default is _REQUIRED:
            raise SpecError(f"{path}.{key}", f"missing required field for {kind}")
        return default
    value = _as_int(spec[key])
    if value is None:
        raise SpecError(f"{path}.{key}", "must be an integer", spec[key])
    return value


def _order(low: float, high: float, spec: Mapping, path: str) -> None:
    if high <= low:
        raise SpecError(f"{path}.high", f"must be > low ({_fmt(low)})", spec.get("high", high))


def _same(a: Any, b: Any) -> bool:
    """Type-aware equality, so ``True`` never matches the choice ``1`` nor ``'1'`` the choice ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if a is None or b is None:
        return a is b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return _is_real(a) and _is_real(b) and a == b


def _options(raw: Any, where: str) -> tuple:
    """A non-empty list of unique scalars, with numpy scalars made plain."""
    if not isinstance(raw, (list, tuple)) or not raw:
        raise SpecError(where, "must be a non-empty list", raw)
    out: list[Any] = []
    for i, item in enumerate(raw):
        value = item.item() if isinstance(item, np.generic) else item
        if value is not None and not isinstance(value, (str, bool, int, float)):
            raise SpecError(f"{where}[{i}]", _SCALAR_MSG, item)
        if isinstance(value, float) and not math.isfinite(value):
            raise SpecError(f"{where}[{i}]", "must be finite", item)
        for j, seen in enumerate(out):
            if _same(seen, value):
                raise SpecError(f"{where}[{i}]", f"duplicates {where.rsplit('.', 1)[-1]}[{j}]", item)
        out.append(value)
    return tuple(out)


def _pick(count: int, targets: np.ndarray) -> list[int]:
    """Turn sorted fractional indices into unique sorted ones in [0, count) that keep both ends."""
    n = len(targets)
    picked: list[int] = []
    for j, t in enumerate(targets):
        k = math.floor(float(t) + 0.5)
        lo = picked[-1] + 1 if picked else 0
        picked.append(min(max(k, lo), count - n + j))
    return picked


@functools.lru_cache(maxsize=256)
def _scipy(dist: _ScipyBased) -> Any:
    """Frozen scipy objects are slow to build; distributions are hashable, so cache per instance."""
    return dist._make_scipy()


class _Base:
    """Behaviour shared by every distribution (the concrete classes are dataclasses)."""

    kind: ClassVar[str]
    _fields: ClassVar[tuple[str, ...]]
    points: int | None

    @property
    def is_numeric(self) -> bool:
        return True

    @property
    def is_discrete(self) -> bool:
        return False

    def to_dict(self) -> dict[str, Any]:
        """The YAML form; fields at their default are left out to keep sweep files short."""
        out: dict[str, Any] = {"type": self.kind}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None or (f.default is not MISSING and type(value) is type(f.default)
                                 and value == f.default):
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def _grid_points(self, points: int | None, path: str) -> int:
        n = self.points if points is None else points
        if n is None:
            raise SpecError(path, _NEEDS_POINTS)
        k = _as_int(n)
        if k is None or k < 1:
            raise SpecError(f"{path}.points" if path else "points", "must be an integer >= 1", n)
        return k


class _Continuous(_Base):
    """Real-valued distributions; subclasses give the support and the monotone unit map."""

    def _support(self) -> tuple[float, float, bool]:
        """(low, high, low is excluded)."""
        raise NotImplementedError

    def _clamp(self, x: float) -> float:
        lo, hi, _ = self._support()
        return min(max(x, lo), hi)

    def contains(self, value: Any) -> bool:
        if not _is_real(value):
            return False
        x = float(value)
        lo, hi, lo_open = self._support()
        return math.isfinite(x) and lo <= x <= hi and not (lo_open and x == lo)

    def _expect(self) -> str:
        lo, hi, lo_open = self._support()
        if math.isinf(lo) and math.isinf(hi):
            return "must be a finite number"
        if math.isinf(hi):
            return f"must be a number {'>' if lo_open else '>='} {_fmt(lo)}"
        if math.isinf(lo):
            return f"must be a number <= {_fmt(hi)}"
        return f"must be a number in [{_fmt(lo)}, {_fmt(hi)}]"

    def coerce(self, value: Any, path: str = "") -> float:
        x = _literal(value) if isinstance(value, str) else value
        if not self.contains(x):
            raise SpecError(path, self._expect(), value)
        return float(x)


class _ScipyBased(_Continuous):
    """Unit map is the CDF, its inverse the clipped ppf; grids sit at the cell-centre quantiles."""

    def _make_scipy(self) -> Any:
        raise NotImplementedError

    def to_unit(self, value: float) -> float:
        return min(max(float(_scipy(self).cdf(float(value))), 0.0), 1.0)

    def from_unit(self, u: float) -> float:
        return self._clamp(float(_scipy(self).ppf(min(max(_unit(u), _EPS), 1.0 - _EPS))))

    def grid(self, points: int | None = None, *, path: str = "") -> list[float]:
        n = self._grid_points(points, path)
        return [self._clamp(float(x)) for x in _scipy(self).ppf((np.arange(n) + 0.5) / n)]


@dataclass(frozen=True)
class Uniform(_Continuous):
    low: float
    high: float
    points: int | None = field(default=None, kw_only=True)
    kind: ClassVar[str] = "uniform"
    _fields: ClassVar[tuple[str, ...]] = ("low", "high")

    @classmethod
    def _parse(cls, spec: Mapping, path: str, points: int | None) -> Uniform:
        low, high = _number(spec, "low", path, cls.kind), _number(spec, "high", path, cls.kind)
        _order(low, high, spec, path)
        return cls(low, high, points=points)

    def _support(self) -> tuple[float, float, bool]:
        return self.low, self.high, False

    def sample(self, rng: np.random.Generator) -> float:
        return self._clamp(float(rng.uniform(self.low, self.high)))

    def to_unit(self, value: float) -> float:
        return min(max((float(value) - self.low) / (self.high - self.low), 0.0), 1.0)

    def from_unit(self, u: float) -> float:
        return self._clamp(self.low + _unit(u) * (self.high - self.low))

    def grid(self, points: int | None = None, *, path: str = "") -> list[float]:
        return [float(x) for x in np.linspace(self.low, self.high, self._grid_points(points, path))]


@dataclass(frozen=True)
class LogUniform(_Continuous):
    low: float
    high: float
    points: int | None = field(default=None, kw_only=True)
    kind: ClassVar[str] = "loguniform"
    _fields: ClassVar[tuple[str, ...]] = ("low", "high")

    @classmethod
    def _parse(cls, spec: Mapping, path: str, points: int | None) -> LogUniform:
        low, high = _positive(spec, "low", path, cls.kind), _number(spec, "high", path, cls.kind)
        _order(low, high, spec, path)
        return cls(low, high, points=points)

    def _support(self) -> tuple[float, float, bool]:
        return self.low, self.high, False

    def sample(self, rng: np.random.Generator) -> float:
        return self.from_unit(float(rng.random()))

    def to_unit(self, value: float) -> float:
        x = min(max(float(value), self.low), self.high)
        return min(max(math.log(x / self.low) / math.log(self.high / self.low), 0.0), 1.0)

    def from_unit(self, u: float) -> float:
        return self._clamp(self.low * math.exp(_unit(u) * math.log(self.high / self.low)))

    def grid(self, points: int | None = None, *, path: str = "") -> list[float]:
        xs = np.geomspace(self.low, self.high, self._grid_points(points, path))
        return [self._clamp(float(x)) for x in xs]


@dataclass(frozen=True)
class Normal(_ScipyBased):
    mu: float
    sigma: float
    low: float | None = None
    high: float | None = None
    points: int | None = field(default=None, kw_only=True)
    kind: ClassVar[str] = "normal"
    _fields: ClassVar[tuple[str, ...]] = ("mu", "sigma", "low", "high")

    @classmethod
    def _parse(cls, spec: Mapping, path: str, points: int | None) -> Normal:
        mu, sigma = _number(spec, "mu", path, cls.kind), _positive(spec, "sigma", path, cls.kind)
        low = _number(spec, "low", path, cls.kind, default=None)
        high = _number(spec, "high", path, cls.kind, default=None)
        if low is not None and high is not None:
            _order(low, high, spec, path)
        return cls(mu, sigma, low, high, points=points)

    @property
    def truncated(self) -> bool:
        return self.low is not None or self.high is not None

    def _support(self) -> tuple[float, float, bool]:
        lo = -math.inf if self.low is None else self.low
        return lo, math.inf if self.high is None else self.high, False

    def _make_scipy(self) -> Any:
        if not self.truncated:
            return stats.norm(self.mu, self.sigma)
        lo, hi, _ = self._support()
        a, b = (lo - self.mu) / self.sigma, (hi - self.mu) / self.sigma
        return stats.truncnorm(a, b, loc=self.mu, scale=self.sigma)

    def sample(self, rng: np.random.Generator) -> float:
        if self.truncated:  # inverse CDF keeps every draw inside the bounds without rejection loops
            return self.from_unit(float(rng.random()))
        return float(rng.normal(self.mu, self.sigma))


@dataclass(frozen=True)
class LogNormal(_ScipyBased):
    mu: float
    sigma: float
    points: int | None = field(default=None, kw_only=True)
    kind: ClassVar[str] = "lognormal"
    _fields: ClassVar[tuple[str, ...]] = ("mu", "sigma")

    @classmethod
    def _parse(cls, spec: Mapping, path: str, points: int | None) -> LogNormal:
        mu, sigma = _number(spec, "mu", path, cls.kind), _positive(spec, "sigma", path, cls.kind)
        return cls(mu, sigma, points=points)

    def _support(self) -> tuple[float, float, bool]:
        return 0.0, math.inf, True

    def _clamp(self, x: float) -> float:
        return max(x, math.ulp(0.0))

    def _make_scipy(self) -> Any:
        return stats.lognorm(self.sigma, scale=math.exp(self.mu))

    def sample(self, rng: np.random.Generator) -> float:
        return self._clamp(float(rng.lognormal(self.mu, self.sigma)))


@dataclass(frozen=True)
class Exponential(_ScipyBased):
    scale: float
    points: int | None = field(default=None, kw_only=True)
    kind: ClassVar[str] = "exponential"
    _fields: ClassVar[tuple[str, ...]] = ("scale",)

    @classmethod
    def _parse(cls, spec: Mapping, path: str, points: int | None) -> Exponential:
        return cls(_positive(spec, "scale", path, cls.kind), points=points)

    def _support(self) -> tuple[float, float, bool]:
        return 0.0, math.inf, False

    def _make_scipy(self) -> Any:
        return stats.expon(scale=self.scale)

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.exponential(self.scale))


@dataclass(frozen=True)
class Gamma(_ScipyBased):
    shape: float
    scale: float
    points: int | None = field(default=None, kw_only=True)
    kind: ClassVar[str] = "gamma"
    _fields: ClassVar[tuple[str, ...]] = ("shape", "scale")

    @classmethod
    def _parse(cls, spec: Mapping, path: str, points: int | None) -> Gamma:
        shape, scale = _positive(spec, "shape", path, cls.kind), _positive(spec, "scale", path, cls.kind)
        return cls(shape, scale, points=points)

    def _support(self) -> tuple[float, float, bool]:
        return 0.0, math.inf, False  # 0 included: draws with a tiny shape can underflow to it

    def _make_scipy(self) -> Any:
        return stats.gamma(self.shape, scale=self.scale)

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.gamma(self.shape, self.scale))


@dataclass(frozen=True)
class Beta(_ScipyBased):
    a: float
    b: float
    low: float = 0.0
    high: float = 1.0
    points: int | None = field(default=None, kw_only=True)
    kind: ClassVar[str] = "beta"
    _fields: ClassVar[tuple[str, ...]] = ("a", "b", "low", "high")

    @classmethod
    def _parse(cls, spec: Mapping, path: str, points: int | None) -> Beta:
        a, b = _positive(spec, "a", path, cls.kind), _positive(spec, "b", path, cls.kind)
        low = _number(spec, "low", path, cls.kind, default=0.0)
        high = _number(spec, "high", path, cls.kind, default=1.0)
        _order(low, high, spec, path)
        return cls(a, b, low, high, points=points)

    def _support(self) -> tuple[float, float, bool]:
        return self.low, self.high, False

    def _make_scipy(self) -> Any:
        return stats.beta(self.a, self.b, loc=self.low, scale=self.high - self.low)

    def sample(self, rng: np.random.Generator) -> float:
        return self._clamp(self.low + (self.high - self.low) * float(rng.beta(self.a, self.b)))


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
            raise SpecError("value", f"must be one of {list(self.options)!r}", value)
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
            raise SpecError(path, f"must be one of {list(self.options)!r}", value)
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


Distribution: TypeAlias = (
    Uniform | LogUniform | Normal | LogNormal | Exponential | Gamma | Beta | Int | Categorical | Values
)
_CLASSES = (Uniform, LogUniform, Normal, LogNormal, Exponential, Gamma, Beta, Int, Categorical, Values)
KINDS: dict[str, type[Any]] = {c.kind: c for c in _CLASSES}


def parse_distribution(spec: Any, path: str) -> Distribution:
    """Turn the YAML/JSON form (or a distribution object, re-checked) into a validated distribution."""
    if isinstance(spec, _Base):
        spec = spec.to_dict()
    if isinstance(spec, Mapping):
        if "type" in spec:
            kind = spec["type"]
            if not isinstance(kind, str) or kind not in KINDS:
                allowed_kinds = ", ".join(KINDS)
                raise SpecError(f"{path}.type", f"unknown distribution type; allowed: {allowed_kinds}", kind)
        elif "values" in spec:
            kind = "values"
        else:
            raise SpecError(f"{path}.type", "missing; give a distribution type or a values list")
        cls = KINDS[kind]
        allowed = (*cls._fields, "points")
        for key in spec:
            if key != "type" and key not in allowed:
                raise SpecError(f"{path}.{key}", f"unknown field for {kind}; allowed: {', '.join(allowed)}")
        points = spec.get("points")
        if points is not None and ((n := _as_int(points)) is None or n < 1):
            raise SpecError(f"{path}.points", "must be an integer >= 1", points)
        return cls._parse(spec, path, None if points is None else _as_int(points))
    if isinstance(spec, (list, tuple)):
        return Values(_options(spec, path))
    if isinstance(spec, (str, bool, int, float, np.generic)):
        if isinstance(spec, float) and not math.isfinite(spec):
            raise SpecError(path, "must be finite", spec)
        return Values(_options([spec], path))
    raise SpecError(path, "must be a mapping with a type, a list of values or a single value", spec)
