"""Real-valued distributions: Uniform, LogUniform and the scipy-backed Normal, LogNormal,
Exponential, Gamma and Beta.
"""

from __future__ import annotations

import functools
import itertools
import math
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from costtune.errors import SpecError
from costtune.space._base import _EPS, _Base, _fmt, _is_real, _literal, _number, _order, _positive, _unit

_FLOAT_MAX = sys.float_info.max
_TAIL = 1e-16  # about the smallest tail probability a 64-bit draw resolves: samples reach this quantile
_PROBES = (0.0, _EPS, 0.25, 0.5, 0.75, 1.0 - _EPS, 1.0)


@functools.lru_cache(maxsize=256)
def _scipy(dist: _ScipyBased) -> Any:
    """Frozen scipy objects are slow to build; distributions are hashable, so cache per instance."""
    return dist._make_scipy()


def _round(x: float, scale: float, digits: int) -> float:
    """``x`` rounded to ``digits`` significant digits of ``scale`` (0.30000000000000004 -> 0.3)."""
    if x == 0 or scale == 0 or not math.isfinite(scale):
        return x
    try:
        return round(x, digits - 1 - math.floor(math.log10(scale)))
    except OverflowError:  # rounding up past the largest float
        return x


def _tidy(xs: Any, lo: float, hi: float, *, relative: bool, exact_ends: bool, points: int, path: str) -> list[float]:
    """Grid points as clean decimals inside [lo, hi], every one distinct.

    ``relative``: round each point to 12 significant digits of itself (log grids), else of the grid's
    span too (so a point at rounding noise from 0 becomes 0). ``exact_ends`` keeps the bounds as
    given (``lo`` and ``hi``). Falls back to 15 digits, then to the raw points, if rounding would merge two.
    """
    raw = [min(max(float(x), lo), hi) for x in xs]
    span = raw[-1] - raw[0]
    for digits in (12, 15, None):
        out = raw if digits is None else [
            min(max(_round(x, abs(x) if relative else max(abs(x), span), digits), lo), hi) for x in raw]
        if exact_ends and len(out) > 1:
            out[0], out[-1] = lo, hi
        if all(a < b for a, b in itertools.pairwise(out)):
            return out
    raise SpecError(f"{path}.points" if path else "points",
                    "asks for more grid points than there are distinct 64-bit floats in the range", points)


class _Continuous(_Base):
    """Real-valued distributions; subclasses give the support and the monotone unit map."""

    def _support(self) -> tuple[float, float, bool]:
        """(low, high, low is excluded)."""
        raise NotImplementedError

    def _reach(self) -> tuple[float, float]:
        """The least and the greatest value a sample can take."""
        lo, hi, _ = self._support()
        return lo, hi

    def _clamp(self, x: float) -> float:
        lo, hi, _ = self._support()
        return min(max(x, lo, -_FLOAT_MAX), hi, _FLOAT_MAX)

    def _check_representable(self, path: str) -> None:
        """Samples, the unit maps at both ends and in between, and the reachable tails are finite floats."""
        lo, hi, _ = self._support()
        if math.isfinite(lo) and math.isfinite(hi) and not math.isfinite(hi - lo):
            raise SpecError(path, "high - low must be a finite 64-bit float (at most 1.8e308)", self.to_dict())
        overflow = "samples can overflow a 64-bit float (a draw could be inf); use a smaller location or scale"
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                reach = self._reach()
                xs = [self.from_unit(u) for u in _PROBES]
                units = [self.to_unit(x) for x in xs]
            except OverflowError:
                raise SpecError(path, overflow, self.to_dict()) from None
            except RecursionError:  # scipy's truncnorm recurses without end far in a tail
                raise SpecError(path, "its probabilities cannot be computed in 64-bit floats (a truncation this far "
                                "in the tail?)", self.to_dict()) from None
            except (ArithmeticError, ValueError) as exc:
                raise SpecError(path, f"cannot be computed in 64-bit floats ({exc})", self.to_dict()) from None
        if not all(math.isfinite(x) and (abs(x) < _FLOAT_MAX or x in (lo, hi)) for x in (*reach, *xs)):
            raise SpecError(path, overflow, self.to_dict())
        if not all(self.contains(x) for x in xs) or not all(0.0 <= u <= 1.0 for u in units):
            raise SpecError(path, "its quantiles cannot be computed in 64-bit floats", self.to_dict())

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

    def _check_representable(self, path: str) -> None:
        """Also: the quartiles are three distinct floats, so samples are not one value over and over.

        A truncation far in a tail (``normal {mu: 0, sigma: 1, low: 1e12, high: 1e12 + 1}``: its mass
        lies within 1e-12 of ``low``) or a scale tiny next to the location puts every draw on the same
        float, an exact repeat in a continuous space; such a distribution is refused here.
        """
        super()._check_representable(path)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            q1, q2, q3 = (self.from_unit(u) for u in (0.25, 0.5, 0.75))
        if not q1 < q2 < q3:
            raise SpecError(path, f"its samples would all be {_fmt(q2)} or next to it: the distribution's mass lies "
                            f"within 64-bit float rounding of that value ({self._collapse_hint()})", self.to_dict())

    def _collapse_hint(self) -> str:
        return "its scale is too small next to its location; widen it"

    def _reach(self) -> tuple[float, float]:
        lo, hi, _ = self._support()
        dist = _scipy(self)
        return (lo if math.isfinite(lo) else float(dist.ppf(_TAIL)),
                hi if math.isfinite(hi) else float(dist.isf(_TAIL)))

    def grid(self, points: int | None = None, *, path: str = "") -> list[float]:
        n = self._grid_points(points, path)
        lo, hi, _ = self._support()
        xs = [self._clamp(float(x)) for x in _scipy(self).ppf((np.arange(n) + 0.5) / n)]
        return _tidy(xs, max(lo, -_FLOAT_MAX), min(hi, _FLOAT_MAX), relative=False, exact_ends=False, points=n,
                     path=path)


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
        n = self._grid_points(points, path)
        xs = [self.from_unit(u) for u in np.linspace(0.0, 1.0, n)]  # no overflow in between, whatever the span
        return _tidy(xs, self.low, self.high, relative=False, exact_ends=True, points=n, path=path)


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

    def _logs(self) -> tuple[float, float]:
        """log(low) and log(high) - log(low): differences of logs, as high / low can overflow."""
        start = math.log(self.low)
        return start, math.log(self.high) - start

    def to_unit(self, value: float) -> float:
        x = min(max(float(value), self.low), self.high)
        start, span = self._logs()
        return min(max((math.log(x) - start) / span, 0.0), 1.0)

    def from_unit(self, u: float) -> float:
        u = _unit(u)
        if u <= 0.0 or u >= 1.0:
            return self.low if u <= 0.0 else self.high
        start, span = self._logs()
        return self._clamp(math.exp(start + u * span))

    def grid(self, points: int | None = None, *, path: str = "") -> list[float]:
        n = self._grid_points(points, path)
        xs = [self.from_unit(u) for u in np.linspace(0.0, 1.0, n)] if n > 1 else [self.low]
        return _tidy(xs, self.low, self.high, relative=True, exact_ends=True, points=n, path=path)


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
        from scipy import stats  # scipy.stats costs ~0.5 s to import: only when a spec needs it

        if not self.truncated:
            return stats.norm(self.mu, self.sigma)
        lo, hi, _ = self._support()
        a, b = (lo - self.mu) / self.sigma, (hi - self.mu) / self.sigma
        return stats.truncnorm(a, b, loc=self.mu, scale=self.sigma)

    def _collapse_hint(self) -> str:
        if self.truncated:
            return "low/high lie too far in the tail for sigma: move them nearer mu, or widen sigma"
        return super()._collapse_hint()

    def sample(self, rng: np.random.Generator) -> float:
        if self.truncated:  # inverse CDF keeps every draw inside the bounds without rejection loops
            return self.from_unit(float(rng.random()))
        return self._clamp(float(rng.normal(self.mu, self.sigma)))


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
        return min(max(x, math.ulp(0.0)), _FLOAT_MAX)

    def _make_scipy(self) -> Any:
        from scipy import stats  # scipy.stats costs ~0.5 s to import: only when a spec needs it

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
        from scipy import stats  # scipy.stats costs ~0.5 s to import: only when a spec needs it

        return stats.expon(scale=self.scale)

    def sample(self, rng: np.random.Generator) -> float:
        return self._clamp(float(rng.exponential(self.scale)))


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
        from scipy import stats  # scipy.stats costs ~0.5 s to import: only when a spec needs it

        return stats.gamma(self.shape, scale=self.scale)

    def sample(self, rng: np.random.Generator) -> float:
        return self._clamp(float(rng.gamma(self.shape, self.scale)))


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
        from scipy import stats  # scipy.stats costs ~0.5 s to import: only when a spec needs it

        return stats.beta(self.a, self.b, loc=self.low, scale=self.high - self.low)

    def sample(self, rng: np.random.Generator) -> float:
        return self._clamp(self.low + (self.high - self.low) * float(rng.beta(self.a, self.b)))
