"""Every distribution a space accepts yields finite, representable numbers; grids are clean decimals.

Issue 7: `uniform {low: 0, high: 1, points: 11}` handed a trial 0.30000000000000004, a lognormal with
`mu: 1000` handed one `x=Infinity`, and bounds of +/-1.7e308 or an int range up to 1e30 raised tracebacks.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costtune.errors import SpecError
from costtune.limits import INT64_MAX, INT64_MIN, MAX_GRID_POINTS
from costtune.space import SearchSpace

FLOAT_MAX = 1.7976931348623157e308


def grid(spec: dict[str, Any], points: int) -> list[Any]:
    return list(SearchSpace.from_dict({"x": spec})["x"].grid(points))


def test_uniform_grid_points_are_the_decimals_a_user_expects() -> None:
    assert grid({"type": "uniform", "low": 0, "high": 1}, 11) == [i / 10 for i in range(11)]
    assert 0.3 in grid({"type": "uniform", "low": 0, "high": 1}, 11)
    assert grid({"type": "uniform", "low": -1, "high": 1}, 11)[5] == 0.0
    assert grid({"type": "uniform", "low": 0.1, "high": 0.7}, 7) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]


@pytest.mark.parametrize(("spec", "points"), [
    ({"type": "uniform", "low": 0, "high": 1}, 11),
    ({"type": "uniform", "low": 0.123456789012345678, "high": 7.3}, 9),
    ({"type": "uniform", "low": -1e300, "high": 1e300}, 7),
    ({"type": "loguniform", "low": 1e-5, "high": 0.3}, 7),
    ({"type": "loguniform", "low": 1e-300, "high": 1e300}, 13),
    ({"type": "normal", "mu": 0, "sigma": 1}, 5),
    ({"type": "normal", "mu": 3, "sigma": 2, "low": 4}, 6),
    ({"type": "lognormal", "mu": 0, "sigma": 1}, 5),
    ({"type": "exponential", "scale": 0.01}, 4),
    ({"type": "gamma", "shape": 2, "scale": 3}, 4),
    ({"type": "beta", "a": 2, "b": 5, "low": 10, "high": 20}, 8),
])
def test_every_continuous_grid_is_clean_distinct_and_inside_its_bounds(spec: dict[str, Any], points: int) -> None:
    dist = SearchSpace.from_dict({"x": spec})["x"]
    xs = dist.grid(points)
    assert len(xs) == points and xs == sorted(set(xs))
    assert all(dist.contains(x) for x in xs)
    inner = xs
    if spec["type"] in ("uniform", "loguniform"):
        assert xs[0] == dist.low and xs[-1] == dist.high  # the bounds exactly as written
        inner = xs[1:-1]
    assert all(len(Decimal(repr(x)).normalize().as_tuple().digits) <= 15 for x in inner)  # no 0.30000000000000004


def test_more_grid_points_than_distinct_floats_is_refused() -> None:
    with pytest.raises(SpecError, match=r"^space\.x\.points: asks for more grid points than there are distinct"):
        SearchSpace.from_dict({"x": {"type": "uniform", "low": 1, "high": 1.0000000000000004}}).grid(10)


@pytest.mark.parametrize(("spec", "message"), [
    ({"type": "uniform", "low": -1.7e308, "high": 1.7e308}, "space.x: high - low must be a finite 64-bit float"),
    ({"type": "beta", "a": 1, "b": 1, "low": -1e308, "high": 1e308}, "space.x: high - low must be a finite"),
    ({"type": "lognormal", "mu": 1000, "sigma": 1}, "space.x: samples can overflow a 64-bit float"),
    ({"type": "lognormal", "mu": 0, "sigma": 100}, "space.x: samples can overflow"),
    ({"type": "normal", "mu": 1e308, "sigma": 1e308}, "space.x: samples can overflow"),
    ({"type": "exponential", "scale": 1e308}, "space.x: samples can overflow"),
    ({"type": "gamma", "shape": 1, "scale": 1e307}, "space.x: samples can overflow"),
    ({"type": "int", "low": 0, "high": 1e30}, "space.x.high: must be a 64-bit integer"),
    ({"type": "int", "low": -(2**70), "high": 0}, "space.x.low: must be a 64-bit integer"),
    ({"type": "int", "low": INT64_MIN, "high": INT64_MAX}, "space.x: (high - low) / step must be below 2**63"),
    ({"values": [1, 2**70]}, "space.x.values[1]: must be a 64-bit integer"),
    ({"type": "categorical", "choices": ["relu", "re\x00lu"]}, "space.x.choices[1]: holds a NUL character"),
    ({"type": "uniform", "low": 0, "high": 1, "points": MAX_GRID_POINTS + 1},
     f"space.x.points: must be at most {MAX_GRID_POINTS}"),
])
def test_distributions_that_cannot_stay_finite_are_refused_naming_field_and_value(
        spec: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as info:
        SearchSpace.from_dict({"x": spec})
    assert str(info.value).startswith(message) and ", got " in str(info.value)


def test_a_grid_over_too_many_integers_asks_for_points() -> None:
    space = SearchSpace.from_dict({"n": {"type": "int", "low": 0, "high": 10**9}})
    with pytest.raises(SpecError, match=r"^space\.n: holds 1000000001 integers, more than a grid takes"):
        space.grid()
    assert space.grid(points=3).axes == ((0, 500000000, 1000000000),)


def test_extreme_but_representable_bounds_are_accepted_and_stay_finite() -> None:
    space = SearchSpace.from_dict({
        "a": {"type": "loguniform", "low": 1e-300, "high": FLOAT_MAX},
        "b": {"type": "uniform", "low": -FLOAT_MAX, "high": 0},
        "c": {"type": "int", "low": INT64_MIN + 2, "high": 0},
        "e": {"type": "int", "low": 1, "high": INT64_MAX, "log": True},
        "d": {"type": "lognormal", "mu": 700, "sigma": 1},
    })
    _assert_finite(space, points=5)


# Random parameters from every family, with exponents up to the float limits: a space either
# refuses them (SpecError) or every number it hands out is finite and inside the space.
_EXTREME = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=64),
                     st.sampled_from([0.0, 1.0, -1.0, 1e-300, 1e300, 1.7e308, -1.7e308, 5e-324, 709.0, 1000.0]))
_POSITIVE = st.one_of(st.floats(min_value=5e-324, max_value=FLOAT_MAX), st.sampled_from([1e-300, 1e300, 1e-9]))
_INTS = st.one_of(st.integers(INT64_MIN, INT64_MAX), st.integers(-1000, 1000))


@st.composite
def _specs(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["uniform", "loguniform", "normal", "normal_t", "lognormal", "exponential", "gamma",
                                 "beta", "int", "int_log"]))
    lo, hi = sorted([draw(_EXTREME), draw(_EXTREME)])
    if kind == "uniform":
        return {"type": kind, "low": lo, "high": hi}
    if kind == "loguniform":
        a, b = sorted([draw(_POSITIVE), draw(_POSITIVE)])
        return {"type": kind, "low": a, "high": b}
    if kind in ("normal", "normal_t"):
        extra = {"low": lo, "high": hi} if kind == "normal_t" else {}
        return {"type": "normal", "mu": draw(_EXTREME), "sigma": draw(_POSITIVE), **extra}
    if kind == "lognormal":
        return {"type": kind, "mu": draw(_EXTREME), "sigma": draw(_POSITIVE)}
    if kind == "exponential":
        return {"type": kind, "scale": draw(_POSITIVE)}
    if kind == "gamma":
        return {"type": kind, "shape": draw(_POSITIVE), "scale": draw(_POSITIVE)}
    if kind == "beta":
        return {"type": kind, "a": draw(_POSITIVE), "b": draw(_POSITIVE), "low": lo, "high": hi}
    a, b = sorted([draw(_INTS), draw(_INTS)])
    return {"type": "int", "low": a, "high": b, "log": kind == "int_log"}


def _assert_finite(space: SearchSpace, points: int) -> None:
    rng = np.random.default_rng(0)
    for name, dist in space.items():
        values = [dist.sample(rng) for _ in range(20)]
        values += [dist.from_unit(u) for u in (0.0, 1e-12, 0.3, 0.5, 0.7, 1 - 1e-12, 1.0)]
        values += list(dist.grid(points))
        for x in values:
            assert dist.contains(x), (name, dist, x)
            assert math.isfinite(x) and (not isinstance(x, int) or INT64_MIN <= x <= INT64_MAX)
            assert 0.0 <= dist.to_unit(x) <= 1.0


@settings(max_examples=150, deadline=None)
@given(spec=_specs())
def test_an_accepted_distribution_only_hands_out_finite_representable_values(spec: dict[str, Any]) -> None:
    try:
        space = SearchSpace.from_dict({"x": spec})
    except SpecError as exc:
        assert str(exc).startswith("space.x") and "\n" not in str(exc)
        return
    try:
        _assert_finite(space, points=4)
    except SpecError as exc:  # only a grid may still be refused: too few distinct floats for the points
        assert "asks for more grid points" in str(exc)


def test_a_truncated_normal_far_in_its_tail_samples_inside_its_bounds_not_one_value() -> None:
    """Issue 7: `normal {mu: 0, sigma: 1, low: 1000, high: 1001}` must not collapse onto 1000."""
    dist = SearchSpace.from_dict({"x": {"type": "normal", "mu": 0, "sigma": 1, "low": 1000, "high": 1001}})["x"]
    rng = np.random.default_rng(0)
    values = [dist.sample(rng) for _ in range(50)]
    assert all(1000 <= x <= 1001 for x in values) and len(set(values)) == 50
    # the tail's law: the excess over low is close to exponential with rate low (mean ~ 1/1000)
    assert 0.0005 < float(np.mean(values)) - 1000 < 0.002


@pytest.mark.parametrize(("spec", "message"), [
    ({"type": "normal", "mu": 0, "sigma": 1, "low": 1e8, "high": 1e8 + 1}, "space.x: its samples would all be"),
    ({"type": "normal", "mu": 0, "sigma": 1, "low": 1e12, "high": 1e13}, "space.x: its probabilities cannot be"),
    ({"type": "normal", "mu": 0, "sigma": 1, "high": -1e12}, "space.x: its probabilities cannot be"),
    ({"type": "normal", "mu": 1e10, "sigma": 1e-10}, "space.x: its samples would all be 10000000000"),
    ({"type": "lognormal", "mu": 10, "sigma": 1e-17}, "space.x: its samples would all be"),
    ({"type": "gamma", "shape": 1e-9, "scale": 1}, "space.x: its samples would all be 0"),
    ({"type": "beta", "a": 1e300, "b": 1e300}, "space.x: its samples would all be 0.5"),
])
def test_a_distribution_whose_samples_collapse_onto_one_float_is_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as info:
        SearchSpace.from_dict({"x": spec})
    assert str(info.value).startswith(message) and ", got " in str(info.value)


@settings(max_examples=60, deadline=None)
@given(mu=st.floats(-1e6, 1e6), sigma=st.floats(1e-6, 1e6), start=st.floats(-1e7, 1e7), width=st.floats(1e-3, 1e4),
       side=st.sampled_from(["both", "low", "high"]))
def test_an_accepted_truncated_normal_samples_inside_its_bounds_and_not_one_value(
        mu: float, sigma: float, start: float, width: float, side: str) -> None:
    """Truncations anywhere, deep in either tail included: refused at validation, or sampled properly."""
    low, high = start * sigma + mu, (start + width) * sigma + mu
    bounds = {"both": {"low": low, "high": high}, "low": {"low": low}, "high": {"high": high}}[side]
    try:
        dist = SearchSpace.from_dict({"x": {"type": "normal", "mu": mu, "sigma": sigma, **bounds}})["x"]
    except SpecError as exc:
        assert str(exc).startswith("space.x: ") and "\n" not in str(exc)
        return
    rng = np.random.default_rng(0)
    values = [dist.sample(rng) for _ in range(20)]
    assert all(dist.contains(x) for x in values)
    assert len(set(values)) > 1
