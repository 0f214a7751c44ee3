"""Search-space behaviour users rely on: sampling laws, unit maps, grids, round trips and messages."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from costtune.errors import SpecError
from costtune.space import (
    Beta,
    Categorical,
    Exponential,
    Gamma,
    GridPlan,
    Int,
    LogNormal,
    LogUniform,
    Normal,
    SearchSpace,
    Uniform,
    Values,
    parse_distribution,
)
from costtune.yamlfile import CoreLoader

N = 4000
FAST = settings(max_examples=60, deadline=None)

# (distribution, exact CDF built independently of the implementation)
CONTINUOUS = [
    (Uniform(-2.0, 3.0), stats.uniform(-2.0, 5.0).cdf),
    (LogUniform(1e-4, 1.0), stats.loguniform(1e-4, 1.0).cdf),
    (Normal(1.0, 2.0), stats.norm(1.0, 2.0).cdf),
    (Normal(0.0, 1.0, -0.5, 2.0), stats.truncnorm(-0.5, 2.0).cdf),
    (Normal(3.0, 2.0, low=4.0), stats.truncnorm(0.5, np.inf, loc=3.0, scale=2.0).cdf),
    (Normal(0.0, 1.0, high=-1.0), stats.truncnorm(-np.inf, -1.0).cdf),
    (LogNormal(0.5, 0.8), stats.lognorm(0.8, scale=math.exp(0.5)).cdf),
    (Exponential(2.0), stats.expon(scale=2.0).cdf),
    (Gamma(2.5, 1.5), stats.gamma(2.5, scale=1.5).cdf),
    (Beta(2.0, 5.0, 10.0, 20.0), stats.beta(2.0, 5.0, loc=10.0, scale=10.0).cdf),
]

ALL = [d for d, _ in CONTINUOUS] + [
    Int(3, 20, step=4),
    Int(1, 32, log=True),
    Int(2, 50, step=4, log=True),
    Categorical(("a", 1, None, True, 2.5)),
    Values((0.1, 0.01, 0.001)),
]


def _draw(dist, n=N, seed=0):
    rng = np.random.default_rng(seed)
    return [dist.sample(rng) for _ in range(n)]


def _log_int_probs(dist: Int) -> tuple[list[int], np.ndarray]:
    """Log-uniform on [low, top], then rounded to the nearest allowed value: each value owns
    [v - step/2, v + step/2] cut to [low, top], weighted by its log-length."""
    values = list(range(dist.low, dist.top + 1, dist.step))
    lo, hi = math.log(dist.low), math.log(dist.top)
    probs = []
    for v in values:
        a = max(v - dist.step / 2, dist.low)
        b = min(v + dist.step / 2, dist.top)
        probs.append((math.log(b) - math.log(a)) / (hi - lo))
    return values, np.array(probs)


# ---------------------------------------------------------------- sampling laws


@pytest.mark.parametrize(("dist", "cdf"), CONTINUOUS, ids=[repr(d) for d, _ in CONTINUOUS])
def test_continuous_samples_follow_the_declared_law(dist, cdf):
    xs = _draw(dist)
    assert all(type(x) is float and dist.contains(x) for x in xs)
    assert stats.kstest(xs, cdf).pvalue > 0.001


def _chi2(observed_values, values, probs):
    index = {v: i for i, v in enumerate(values)}
    counts = np.zeros(len(values))
    for x in observed_values:
        counts[index[x]] += 1
    return stats.chisquare(counts, probs / probs.sum() * len(observed_values)).pvalue


def test_int_linear_is_uniform_over_the_step_grid():
    dist = Int(3, 20, step=4)
    xs = _draw(dist)
    assert all(type(x) is int and dist.contains(x) for x in xs)
    assert set(xs) == {3, 7, 11, 15, 19}
    assert _chi2(xs, [3, 7, 11, 15, 19], np.ones(5)) > 0.001


@pytest.mark.parametrize("dist", [Int(1, 32, log=True), Int(2, 50, step=4, log=True)])
def test_int_log_matches_log_uniform_then_round(dist):
    values, probs = _log_int_probs(dist)
    assert math.isclose(probs.sum(), 1.0)
    xs = _draw(dist)
    assert all(type(x) is int and dist.contains(x) for x in xs)
    assert _chi2(xs, values, probs) > 0.001


@pytest.mark.parametrize("dist", [Categorical(("a", 1, None, True, 2.5)), Values((0.1, 0.01, 0.001))])
def test_choices_are_equally_likely_and_returned_as_given(dist):
    xs = _draw(dist)
    opts = dist.options
    assert all(any(x is o for o in opts) for x in xs)
    counts = [sum(1 for x in xs if x is o) for o in opts]
    assert stats.chisquare(counts).pvalue > 0.001


def test_sampling_is_reproducible_from_the_generator():
    space = SearchSpace({f"p{i}": d for i, d in enumerate(ALL)})
    a = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    b = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    assert a == b
    assert all(space.contains(c) for c in a)


# ---------------------------------------------------------------- unit maps


@pytest.mark.parametrize("dist", ALL, ids=lambda x: repr(x)[:40])
@FAST
@given(u=st.floats(-0.5, 1.5), v=st.floats(-0.5, 1.5))
def test_from_unit_is_contained_monotone_and_clipped(dist, u, v):
    a, b = dist.from_unit(u), dist.from_unit(v)
    assert dist.contains(a)
    assert dist.from_unit(min(max(u, 0.0), 1.0)) == a
    if dist.is_numeric and not isinstance(dist, Values) and u <= v:
        assert a <= b
    assert 0.0 <= dist.to_unit(a) <= 1.0


@pytest.mark.parametrize("dist", [d for d, _ in CONTINUOUS], ids=lambda x: repr(x)[:40])
@FAST
@given(u=st.floats(1e-6, 1 - 1e-6))
def test_continuous_to_unit_inverts_from_unit(dist, u):
    assert dist.to_unit(dist.from_unit(u)) == pytest.approx(u, abs=1e-7)


@FAST
@given(low=st.floats(-1e6, 1e6), width=st.floats(1e-3, 1e6), t=st.floats(0, 1))
def test_uniform_value_round_trip(low, width, t):
    dist = Uniform(low, low + width)
    x = low + t * width
    assert dist.from_unit(dist.to_unit(x)) == pytest.approx(x, rel=1e-9, abs=1e-9 * width)


@FAST
@given(low=st.floats(1e-8, 1e3), ratio=st.floats(1.01, 1e6), t=st.floats(0, 1))
def test_loguniform_value_round_trip(low, ratio, t):
    dist = LogUniform(low, low * ratio)
    x = low * ratio**t
    assert dist.from_unit(dist.to_unit(x)) == pytest.approx(x, rel=1e-9)


def _int(low: int, span: int, step: int, log: bool) -> Int:
    low = max(low, 1) if log else low
    return Int(low, low + span, min(step, span), log)


int_dists = st.builds(_int, st.integers(-50, 1000), st.integers(1, 2000), st.integers(1, 30), st.booleans())


@FAST
@given(dist=int_dists, data=st.data())
def test_int_every_allowed_value_round_trips(dist, data):
    k = data.draw(st.integers(0, dist.count - 1))
    v = dist.low + k * dist.step
    u = dist.to_unit(v)
    assert 0.0 <= u <= 1.0
    assert dist.from_unit(u) == v
    if not dist.log:
        assert u == pytest.approx((k + 0.5) / dist.count)  # equal-width cells


def test_choice_unit_cells():
    dist = Categorical(("x", "y", "z", "w"))
    assert [dist.to_unit(c) for c in dist.choices] == [0.125, 0.375, 0.625, 0.875]
    assert [dist.from_unit(u) for u in (0.0, 0.24, 0.25, 0.99, 1.0)] == ["x", "x", "y", "w", "w"]
    with pytest.raises(SpecError):
        dist.to_unit("nope")


def test_unit_maps_are_the_natural_ones():
    assert Uniform(0, 10).to_unit(2.5) == 0.25
    assert LogUniform(1, 100).to_unit(10) == pytest.approx(0.5)
    assert Int(1, 100, log=True).to_unit(10) == pytest.approx(0.5)
    assert Normal(0, 1).to_unit(0.0) == pytest.approx(0.5)
    assert Normal(0, 1).from_unit(0.0) == pytest.approx(stats.norm.ppf(1e-9))
    assert Exponential(1).from_unit(1.0) == pytest.approx(stats.expon.ppf(1 - 1e-9))


# ---------------------------------------------------------------- grids


def test_grid_contents_per_kind():
    assert Categorical(("a", "b")).grid(5) == ["a", "b"]
    assert Values((3, 1, 2)).grid() == [3, 1, 2]
    assert Int(1, 5).grid() == [1, 2, 3, 4, 5]
    assert Int(0, 10, step=3).grid() == [0, 3, 6, 9]
    assert Int(0, 9).grid(4) == [0, 3, 6, 9]
    assert Int(0, 9).grid(100) == list(range(10))
    assert Int(0, 9, points=2).grid() == [0, 9]
    assert Int(1, 1000, log=True).grid(4) == [1, 10, 100, 1000]
    assert Uniform(0, 1).grid(5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert LogUniform(1e-3, 1).grid(4) == pytest.approx([1e-3, 1e-2, 1e-1, 1.0])
    assert Uniform(0, 1, points=3).grid() == [0.0, 0.5, 1.0]
    assert Uniform(0, 1, points=3).grid(2) == [0.0, 1.0]  # an explicit argument wins
    assert Normal(0, 1).grid(3) == pytest.approx(list(stats.norm.ppf([1 / 6, 0.5, 5 / 6])))
    assert Beta(2, 2, 10, 20).grid(2) == pytest.approx(list(stats.beta(2, 2, 10, 10).ppf([0.25, 0.75])))
    for dist in (LogNormal(0, 1), Exponential(1), Gamma(2, 1)):
        g = dist.grid(4)
        assert g == sorted(g) and len(set(g)) == 4 and all(dist.contains(x) for x in g)


def test_continuous_grid_without_points_is_an_error():
    with pytest.raises(SpecError) as err:
        Uniform(0, 1).grid(path="space.lr")
    assert str(err.value) == "space.lr: a grid needs explicit values or a point count (points: N)"
    with pytest.raises(SpecError, match=r"space.lr"):
        SearchSpace({"lr": Uniform(0, 1)}).grid()


@FAST
@given(dist=int_dists, points=st.integers(1, 50))
def test_int_grid_is_sorted_unique_and_keeps_the_ends(dist, points):
    g = dist.grid(points)
    assert len(g) == min(points, dist.count)
    assert g == sorted(set(g)) and all(dist.contains(v) for v in g)
    assert g[0] == dist.low
    if points > 1:
        assert g[-1] == dist.top


def test_grid_plan_is_a_bijection_in_mixed_radix_order():
    space = SearchSpace.from_dict({
        "a": [1, 2, 3],
        "b": {"type": "int", "low": 0, "high": 3},
        "c": {"type": "categorical", "choices": ["x", "y"]},
    })
    plan = space.grid()
    assert isinstance(plan, GridPlan)
    assert plan.size == len(plan) == 24
    configs = [plan.config(i) for i in range(24)]
    assert len({tuple(c.items()) for c in configs}) == 24
    assert all(space.contains(c) for c in configs)
    assert [plan.index_of(c) for c in configs] == list(range(24))
    assert configs[0] == {"a": 1, "b": 0, "c": "x"}
    assert configs[1] == {"a": 1, "b": 0, "c": "y"}
    assert configs[2] == {"a": 1, "b": 1, "c": "x"}
    assert configs[8] == {"a": 2, "b": 0, "c": "x"}
    assert list(plan) == configs
    assert plan.index_of({"a": 4, "b": 0, "c": "x"}) is None
    assert plan.index_of({"a": 1, "b": 0}) is None
    for bad in (-1, 24, True, 1.0):
        with pytest.raises(SpecError):
            plan.config(bad)


def test_grid_plan_never_materialises_the_product():
    space = SearchSpace({f"p{i}": Uniform(0, 1) for i in range(12)})
    plan = space.grid(1000)
    assert plan.size == 1000**12
    last = plan.config(plan.size - 1)
    assert set(last.values()) == {1.0}
    assert plan.index_of(last) == plan.size - 1
    assert plan.index_of({**last, "p0": 0.5 + 1e-15}) is None


def test_space_points_default_yields_to_a_parameters_own():
    space = SearchSpace.from_dict({"x": {"type": "uniform", "low": 0, "high": 1, "points": 2},
                                   "y": {"type": "uniform", "low": 0, "high": 1}})
    assert space.grid(5).counts == (2, 5)


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("dist", [*ALL, Uniform(0, 1, points=7), Values(("fixed",)), Int(1, 9, points=3)],
                         ids=lambda x: repr(x)[:40])
def test_dict_round_trip(dist):
    assert parse_distribution(dist.to_dict(), "space.p") == dist
    assert dist.to_dict()["type"] == dist.kind


def _full_space() -> SearchSpace:
    return SearchSpace({f"p{i}": d for i, d in enumerate(ALL)}).with_param("z", Values((None, False, "s")))


def test_space_round_trips_through_dict_json_and_yaml():
    space = _full_space()
    assert SearchSpace.from_dict(space.to_dict()) == space
    assert SearchSpace.from_json(space.to_json()) == space
    text = yaml.safe_dump(space.to_dict(), sort_keys=False)
    again = SearchSpace.from_dict(yaml.safe_load(text))
    assert again == space and again.names == space.names


def test_yaml_sweep_forms():
    text = """
    lr: {type: loguniform, low: 1e-5, high: 1e-1}
    hidden: {type: int, low: 16, high: 256, step: 16}
    act: [relu, tanh]
    mode: {values: [fast, slow]}
    seed: 42
    flag: true
    """
    space = SearchSpace.from_dict(yaml.load(text, Loader=CoreLoader))  # costtune's reader: YAML 1.2 core
    assert space.names == ("lr", "hidden", "act", "mode", "seed", "flag")
    assert space["lr"] == LogUniform(1e-5, 0.1)
    with pytest.raises(SpecError, match=r"space.lr.low: must be a number \(not quoted.*got '1e-5'"):
        SearchSpace.from_dict(yaml.safe_load(text), path="space")  # PyYAML (YAML 1.1) reads 1e-5 as text
    assert space["act"] == Values(("relu", "tanh"))
    assert space["mode"] == Values(("fast", "slow"))
    assert space["seed"] == Values((42,)) and space["flag"] == Values((True,))
    assert [len(space[n].grid()) for n in space.names[1:]] == [16, 2, 2, 1, 1]  # no count needed
    assert space.grid(3).size == 3 * 3 * 2 * 2  # a space-wide count thins ints too
    assert space["hidden"].is_discrete and space["lr"].is_numeric and not space["act"].is_numeric


def test_space_is_an_ordered_immutable_mapping():
    space = SearchSpace({"b": Uniform(0, 1), "a": Int(1, 3)})
    assert list(space) == ["b", "a"] and len(space) == 2 and space["a"] == Int(1, 3)
    assert dict(space.items()) == {"b": Uniform(0, 1), "a": Int(1, 3)}
    assert space != SearchSpace({"a": Int(1, 3), "b": Uniform(0, 1)})  # order fixes the grid
    with pytest.raises(TypeError):
        space["c"] = Uniform(0, 1)  # type: ignore[index]
    bigger = space.with_param("c", {"type": "uniform", "low": 0, "high": 2})
    assert bigger.names == ("b", "a", "c") and space.names == ("b", "a")
    assert bigger.with_param("c", Uniform(0, 2)) is bigger
    with pytest.raises(SpecError, match=r"space.c: already defined"):
        bigger.with_param("c", Uniform(0, 3))
    assert pickle.loads(pickle.dumps(bigger)) == bigger


def test_choice_equality_minds_order_and_bools():
    assert Categorical((1, True)) != Categorical((True, 1))
    assert Categorical((1, True)) == Categorical((1.0, True))
    assert Categorical(("a",)) != Values(("a",))
    assert len({Values((1, 2)), Values((1, 2)), Values((2, 1))}) == 2


# ---------------------------------------------------------------- coercion


def test_coerce_from_cli_strings():
    space = SearchSpace.from_dict({
        "lr": {"type": "loguniform", "low": 1e-4, "high": 1},
        "hidden": {"type": "int", "low": 16, "high": 256},
        "act": {"type": "categorical", "choices": ["relu", "tanh"]},
        "flag": {"type": "categorical", "choices": [True, False]},
        "n": {"values": [1, 2, None]},
    })
    raw = {"lr": "0.01", "hidden": "64", "act": "relu", "flag": "true", "n": "null"}
    assert space.coerce_config(raw) == {"lr": 0.01, "hidden": 64, "act": "relu", "flag": True, "n": None}
    assert space.coerce_config({**raw, "n": "2", "hidden": 64.0, "flag": "False"})["n"] == 2
    with pytest.raises(SpecError) as err:
        space.coerce_config({**raw, "hidden": "3.5"})
    assert str(err.value) == "config.hidden: must be an integer in [16, 256] step 1, got '3.5'"
    with pytest.raises(SpecError) as err:
        space.coerce_config({**raw, "act": "gelu"})
    assert str(err.value) == "config.act: must be one of [relu, tanh], got gelu"
    with pytest.raises(SpecError) as err:
        space.coerce_config({**raw, "lr": "2"})
    assert str(err.value) == "config.lr: must be a number in [0.0001, 1], got '2'"
    with pytest.raises(SpecError) as err:
        space.coerce_config({**raw, "extra": 1})
    assert str(err.value) == "config.extra: unknown parameter; allowed: lr, hidden, act, flag, n"
    with pytest.raises(SpecError, match=r"config.n: missing"):
        space.coerce_config({k: v for k, v in raw.items() if k != "n"})


@pytest.mark.parametrize("dist", ALL, ids=lambda x: repr(x)[:40])
def test_coerce_reads_back_the_string_form_of_every_sample(dist):
    for x in _draw(dist, n=20, seed=3):
        assert dist.coerce(str(x), "config.p") == x
        assert dist.coerce(x, "config.p") == x
    with pytest.raises(SpecError, match=r"config.p"):
        dist.coerce("not a value", "config.p")


# ---------------------------------------------------------------- validation messages

TYPES = "uniform, loguniform, normal, lognormal, exponential, gamma, beta, int, categorical, values"


@pytest.mark.parametrize(("spec", "message"), [
    ({"type": "loguniform", "low": -1, "high": 1}, "space.lr.low: must be > 0 for loguniform, got -1"),
    ({"type": "loguniform", "low": 1e-5, "hgih": 1},
     "space.lr.hgih: unknown field for loguniform; allowed: low, high, points"),
    ({"type": "gauss", "mu": 0}, f"space.lr.type: unknown distribution type; allowed: {TYPES}, got gauss"),
    ({"low": 0, "high": 1}, "space.lr.type: missing; give a distribution type or a values list"),
    ({"type": "uniform", "low": 0}, "space.lr.high: missing required field for uniform"),
    ({"type": "uniform", "low": True, "high": 1}, "space.lr.low: must be a number, got true"),
    ({"type": "uniform", "low": "abc", "high": 1}, "space.lr.low: must be a number, got abc"),
    ({"type": "uniform", "low": 1, "high": 1}, "space.lr.high: must be > low (1), got 1"),
    ({"type": "uniform", "low": 0, "high": math.inf}, "space.lr.high: must be finite, got .inf"),
    ({"type": "uniform", "low": math.nan, "high": 1}, "space.lr.low: must be finite, got .nan"),
    ({"type": "normal", "mu": 0, "sigma": 0}, "space.lr.sigma: must be > 0 for normal, got 0"),
    ({"type": "normal", "mu": 0, "sigma": 1, "low": 2, "high": -2},
     "space.lr.high: must be > low (2), got -2"),
    ({"type": "gamma", "shape": 1}, "space.lr.scale: missing required field for gamma"),
    ({"type": "beta", "a": 1, "b": 1, "low": 1}, "space.lr.high: must be > low (1), got 1.0"),
    ({"type": "int", "low": 0.5, "high": 10}, "space.lr.low: must be an integer, got 0.5"),
    ({"type": "int", "low": 0, "high": 10, "log": True},
     "space.lr.low: must be >= 1 when log is true, got 0"),
    ({"type": "int", "low": 0, "high": 10, "step": 0}, "space.lr.step: must be >= 1, got 0"),
    ({"type": "int", "low": 0, "high": 10, "log": "yes"}, "space.lr.log: must be true or false, got 'yes'"),
    ({"type": "categorical", "choices": []}, "space.lr.choices: must be a non-empty list, got []"),
    ({"type": "categorical", "choices": "relu"}, "space.lr.choices: must be a non-empty list, got relu"),
    ({"type": "categorical", "choices": ["a", "a"]}, "space.lr.choices[1]: duplicates choices[0], got a"),
    ({"type": "categorical", "choices": [[1]]},
     "space.lr.choices[0]: must be a string, number, boolean or null, got [1]"),
    ({"type": "categorical"}, "space.lr.choices: missing required field for categorical"),
    ({"type": "uniform", "low": 0, "high": 1, "points": 0},
     "space.lr.points: must be an integer >= 1, got 0"),
    ({"values": [1, 2], "step": 1}, "space.lr.step: unknown field for values; allowed: values"),
    (None, "space.lr: must be a mapping with a type, a list of values or a single value, got null"),
])
def test_validation_messages(spec, message):
    with pytest.raises(SpecError) as err:
        SearchSpace.from_dict({"lr": spec})
    assert str(err.value) == message


@pytest.mark.parametrize(("space", "message"), [
    ({}, "space: must define at least one parameter, got {}"),
    ([1, 2], "space: must be a mapping of parameter names to distributions, got [1, 2]"),
    ({"learning-rate": [1]},
     "space.learning-rate: a parameter name must be ASCII letters, digits and '_', not starting with a digit (it "
     "becomes the environment variable COSTTUNE_PARAM_<NAME>), got learning-rate"),
])
def test_space_level_messages(space, message):
    with pytest.raises(SpecError) as err:
        SearchSpace.from_dict(space)
    assert str(err.value) == message


def test_objects_built_directly_are_checked_on_entry():
    with pytest.raises(SpecError, match=r"space.lr.low: must be > 0 for loguniform"):
        SearchSpace({"lr": LogUniform(-1, 1)})
    with pytest.raises(SpecError, match=r"space.x.high: must be > low"):
        SearchSpace().with_param("x", Int(5, 1))
    with pytest.raises(SpecError, match=r"space: invalid JSON"):
        SearchSpace.from_json("{")


def test_coerce_config_fills_constants_but_not_real_parameters() -> None:
    space = SearchSpace.from_dict({"lr": {"type": "uniform", "low": 0, "high": 1}, "epochs": 20, "opt": ["a"]})
    assert space.coerce_config({"lr": "0.5"}) == {"lr": 0.5, "epochs": 20, "opt": "a"}
    with pytest.raises(SpecError, match=r"config\.lr: missing"):
        space.coerce_config({"epochs": 20})
