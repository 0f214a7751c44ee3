"""BayesSampler and its Gaussian process: does the model help, and is it safe to run unattended."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import optimize, special

from costtune.errors import SpecError
from costtune.history import FrozenTrial, History, Mode, TrialState
from costtune.samplers import surrogate as surrogate_module
from costtune.samplers.acquisition import log_h
from costtune.samplers.base import Sampler
from costtune.samplers.bayes import BayesSampler
from costtune.samplers.gp import GPFitError, LogNormalPrior, _neg_log_marginal, fit_gp
from costtune.space import (
    Beta,
    Categorical,
    Gamma,
    Int,
    LogUniform,
    Normal,
    SearchSpace,
    Uniform,
    Values,
)

BRANIN = SearchSpace({"x1": Uniform(-5, 10), "x2": Uniform(0, 15)})
MIXED = SearchSpace(
    {
        "lr": LogUniform(1e-5, 1.0),
        "dropout": Uniform(0.0, 0.5),
        "layers": Int(2, 20, step=3),
        "batch": Int(8, 512, log=True),
        "act": Categorical(("relu", "tanh", "gelu")),
    }
)


def branin(c: dict[str, Any]) -> float:
    x1, x2 = c["x1"], c["x2"]
    return (
        (x2 - 5.1 / (4 * math.pi**2) * x1**2 + 5 / math.pi * x1 - 6) ** 2
        + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1)
        + 10
    )


def mixed_objective(c: dict[str, Any]) -> float:
    act = {"relu": 0.0, "tanh": 0.5, "gelu": 0.2}[c["act"]]
    lr, batch = math.log10(c["lr"]) + 3, math.log2(c["batch"] / 64)
    return lr**2 + (c["layers"] - 11) ** 2 / 20 + batch**2 / 4 + act


def history_of(space: SearchSpace, fn: Any, n: int, seed: int = 0, mode: Mode = Mode.MIN) -> History:
    rng = np.random.default_rng(seed)
    trials = []
    for i in range(n):
        c = space.sample(rng)
        trials.append(FrozenTrial(number=i, state=TrialState.COMPLETE, params=c, value=fn(c)))
    return History(metric="y", mode=mode, trials=tuple(trials))


def add(history: History, *trials: FrozenTrial) -> History:
    return History(history.metric, history.mode, history.trials + trials)


def optimise(sampler: BayesSampler | None, space: SearchSpace, fn: Any, n: int, seed: int) -> float:
    done: list[FrozenTrial] = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        h = History("y", Mode.MIN, tuple(done))
        c = sampler.suggest(space, h, rng) if sampler else space.sample(rng)
        done.append(FrozenTrial(number=i, state=TrialState.COMPLETE, params=c, value=fn(c)))
    return min(t.value for t in done if t.value is not None)


def test_is_a_sampler() -> None:
    assert isinstance(BayesSampler(), Sampler)


def test_beats_random_on_branin(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="costtune.samplers.bayes"):
        bayes = [optimise(BayesSampler(n_startup=8), BRANIN, branin, 25, s) for s in range(5)]
    rand = [optimise(None, BRANIN, branin, 25, s) for s in range(5)]
    assert not caplog.records, "the model path must not have fallen back to random"
    assert np.median(bayes) < np.median(rand)
    assert np.median(bayes) < 0.397887 + 0.2


def test_mixed_space_suggestions_are_contained_and_plain() -> None:
    history = history_of(MIXED, mixed_objective, 12)
    sampler = BayesSampler(n_startup=5, n_candidates=500)
    for i in range(4):
        c = sampler.suggest(MIXED, history, np.random.default_rng(i))
        assert MIXED.contains(c), c
        assert list(c) == list(MIXED.names)
        assert type(c["layers"]) is int and type(c["batch"]) is int
        assert type(c["lr"]) is float and type(c["dropout"]) is float
        history = add(history, FrozenTrial(len(history.trials), TrialState.COMPLETE, c, mixed_objective(c)))


def test_mixed_space_makes_progress() -> None:
    start = history_of(MIXED, mixed_objective, 10, seed=3)
    done = list(start.trials)
    sampler = BayesSampler(n_startup=10, n_candidates=500)
    for i in range(10):
        c = sampler.suggest(MIXED, History("y", Mode.MIN, tuple(done)), np.random.default_rng([3, i]))
        done.append(FrozenTrial(len(done), TrialState.COMPLETE, c, mixed_objective(c)))
    assert min(t.value for t in done[10:]) < min(t.value for t in done[:10])  # type: ignore[type-var]


def test_every_distribution_kind_round_trips() -> None:
    space = SearchSpace(
        {
            "a": Normal(0.0, 1.0),
            "b": Gamma(2.0, 1.0),
            "c": Beta(2.0, 5.0),
            "d": Values((1, 4, 16)),
            "e": Values(("x", True, 3)),
            "f": Categorical((1, 2.5)),
        }
    )
    fn = lambda c: (c["a"] - 1) ** 2 + c["b"] + c["c"] + c["d"] + float(c["e"] == "x") + c["f"]  # noqa: E731
    history = history_of(space, fn, 12, seed=1)
    for i in range(3):
        c = BayesSampler(n_startup=5, n_candidates=300).suggest(space, history, np.random.default_rng(i))
        assert space.contains(c), c


def test_deterministic_for_a_fixed_rng() -> None:
    history = history_of(MIXED, mixed_objective, 15)
    sampler = BayesSampler(n_startup=5)
    a = sampler.suggest(MIXED, history, np.random.default_rng(42))
    b = sampler.suggest(MIXED, history, np.random.default_rng(42))
    c = sampler.suggest(MIXED, history, np.random.default_rng(43))
    assert a == b
    assert a != c


def test_pending_trials_change_the_suggestion() -> None:
    history = history_of(BRANIN, branin, 15, seed=2)
    sampler = BayesSampler(n_startup=5)
    first = sampler.suggest(BRANIN, history, np.random.default_rng(7))
    busy = add(history, FrozenTrial(number=15, state=TrialState.RUNNING, params=first))
    second = sampler.suggest(BRANIN, busy, np.random.default_rng(7))
    assert second != first
    assert BRANIN.contains(second)
    # A second worker should not be sent next door to the first one.
    dist = math.hypot((first["x1"] - second["x1"]) / 15, (first["x2"] - second["x2"]) / 15)
    assert dist > 0.01


def test_max_mode_is_min_mode_mirrored() -> None:
    low = history_of(BRANIN, branin, 12, seed=4)
    high = History(
        "y",
        Mode.MAX,
        tuple(
            FrozenTrial(t.number, t.state, t.params, -t.value)
            for t in low.trials  # type: ignore[operator]
        ),
    )
    sampler = BayesSampler(n_startup=5)
    assert sampler.suggest(BRANIN, low, np.random.default_rng(0)) == sampler.suggest(
        BRANIN, high, np.random.default_rng(0)
    )
    done = list(high.trials)
    for i in range(8):
        c = sampler.suggest(BRANIN, History("y", Mode.MAX, tuple(done)), np.random.default_rng([4, i]))
        done.append(FrozenTrial(len(done), TrialState.COMPLETE, c, -branin(c)))
    assert max(t.value for t in done[12:]) > max(t.value for t in done[:12])  # type: ignore[type-var]


def test_falls_back_to_random_with_too_few_trials() -> None:
    history = history_of(BRANIN, branin, 9)
    got = BayesSampler(n_startup=10).suggest(BRANIN, history, np.random.default_rng(5))
    assert got == BRANIN.sample(np.random.default_rng(5))
    empty = History("y", Mode.MIN)
    assert BayesSampler().suggest(BRANIN, empty, np.random.default_rng(5)) == BRANIN.sample(
        np.random.default_rng(5)
    )


def test_falls_back_to_random_when_the_fit_fails(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise GPFitError("boom")

    monkeypatch.setattr(surrogate_module, "fit_gp", broken)
    history = history_of(BRANIN, branin, 20)
    with caplog.at_level(logging.WARNING, logger="costtune.samplers.bayes"):
        got = BayesSampler(n_startup=5).suggest(BRANIN, history, np.random.default_rng(5))
    assert BRANIN.contains(got)
    assert any("sampling at random" in r.getMessage() for r in caplog.records)


def test_nan_and_infinite_values_are_ignored() -> None:
    clean = history_of(BRANIN, branin, 12, seed=6)
    rng = np.random.default_rng(99)
    junk = tuple(
        FrozenTrial(100 + i, TrialState.COMPLETE, BRANIN.sample(rng), v)
        for i, v in enumerate([math.nan, math.inf, -math.inf])
    )
    failed = (FrozenTrial(200, TrialState.FAILED, BRANIN.sample(rng), None),)
    dirty = add(clean, *junk, *failed)
    sampler = BayesSampler(n_startup=5)
    expect = sampler.suggest(BRANIN, clean, np.random.default_rng(1))
    got = sampler.suggest(BRANIN, dirty, np.random.default_rng(1))
    assert got == expect
    # NaNs do not count towards the start-up phase either.
    few = add(history_of(BRANIN, branin, 4), *junk)
    assert BayesSampler(n_startup=5).suggest(BRANIN, few, np.random.default_rng(2)) == BRANIN.sample(
        np.random.default_rng(2)
    )


def test_trials_from_another_space_are_skipped() -> None:
    history = history_of(BRANIN, branin, 12)
    foreign = (
        FrozenTrial(50, TrialState.COMPLETE, {"x1": 0.0}, 0.1),
        FrozenTrial(51, TrialState.COMPLETE, {"x1": 50.0, "x2": 1.0}, 0.1),
    )
    sampler = BayesSampler(n_startup=5)
    assert sampler.suggest(BRANIN, add(history, *foreign), np.random.default_rng(3)) == sampler.suggest(
        BRANIN, history, np.random.default_rng(3)
    )


def test_constant_objective_uses_the_model(caplog: pytest.LogCaptureFixture) -> None:
    history = history_of(MIXED, lambda c: 1.0, 12)
    with caplog.at_level(logging.WARNING, logger="costtune.samplers.bayes"):
        c = BayesSampler(n_startup=5, n_candidates=300).suggest(MIXED, history, np.random.default_rng(0))
    assert MIXED.contains(c) and not caplog.records


def test_heavy_tailed_values_and_observation_cap() -> None:
    history = history_of(BRANIN, lambda c: math.exp(branin(c) / 10), 40)
    c = BayesSampler(n_startup=5, max_observations=20).suggest(BRANIN, history, np.random.default_rng(0))
    assert BRANIN.contains(c)


def test_discrete_space_avoids_repeats() -> None:
    space = SearchSpace({"a": Int(0, 3), "b": Categorical(("p", "q"))})
    fn = lambda c: (c["a"] - 1) ** 2 + (c["b"] == "q")  # noqa: E731
    done: list[FrozenTrial] = []
    sampler = BayesSampler(n_startup=3, n_candidates=200)
    for i in range(8):
        c = sampler.suggest(space, History("y", Mode.MIN, tuple(done)), np.random.default_rng([0, i]))
        done.append(FrozenTrial(i, TrialState.COMPLETE, c, fn(c)))
    seen = [tuple(t.params.values()) for t in done]
    assert len(set(seen)) == len(seen)


@pytest.mark.parametrize(
    "kwargs", [{"n_startup": 0}, {"n_candidates": 0}, {"xi": -1.0}, {"max_observations": 1}]
)
def test_rejects_bad_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(SpecError):
        BayesSampler(**kwargs)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 14), running=st.integers(0, 3))
def test_any_history_gives_a_contained_suggestion(seed: int, n: int, running: int) -> None:
    rng = np.random.default_rng(seed)
    trials = []
    for i in range(n):
        c = MIXED.sample(rng)
        value = mixed_objective(c) if rng.random() < 0.8 else math.nan
        trials.append(FrozenTrial(i, TrialState.COMPLETE, c, value))
    trials += [FrozenTrial(n + i, TrialState.RUNNING, MIXED.sample(rng)) for i in range(running)]
    c = BayesSampler(n_startup=3, n_candidates=200).suggest(MIXED, History("y", Mode.MIN, tuple(trials)), rng)
    assert MIXED.contains(c)


# --- the Gaussian process on its own -------------------------------------------------------------


def test_marginal_likelihood_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((25, 3))
    y = np.sin(5 * x[:, 0]) + x[:, 1] ** 2
    y = (y - y.mean()) / y.std()
    diff2 = (x[:, None, :] - x[None, :, :]) ** 2
    prior = LogNormalPrior.for_dims(3)
    theta = np.array([-1.0, -0.5, 0.3, 0.2, -4.0, 0.1])
    grad = _neg_log_marginal(theta, y, diff2, prior)[1]
    numeric = optimize.approx_fprime(theta, lambda t: _neg_log_marginal(t, y, diff2, prior)[0], 1e-6)
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-4)


def test_gp_interpolates_and_predicts_gradients() -> None:
    rng = np.random.default_rng(1)
    x = rng.random((30, 2))
    y = np.cos(4 * x[:, 0]) * x[:, 1]
    gp = fit_gp(x, (y - y.mean()) / y.std(), rng)
    mean, std = gp.predict(x)
    np.testing.assert_allclose(mean, (y - y.mean()) / y.std(), atol=0.05)
    assert np.all(std < 0.1)
    pts = rng.random((3, 2))
    _, _, dm, ds = gp.predict_with_grad(pts)
    eps = 1e-6
    for j in range(2):
        e = np.zeros(2)
        e[j] = eps
        (mp, sp), (mm, sm) = gp.predict(pts + e), gp.predict(pts - e)
        np.testing.assert_allclose(dm[:, j], (mp - mm) / (2 * eps), atol=1e-5)
        np.testing.assert_allclose(ds[:, j], (sp - sm) / (2 * eps), atol=1e-5)


def test_log_h_is_accurate_and_smooth_in_the_tail() -> None:
    z = np.array([3.0, 0.0, -0.5, -2.0, -8.0])
    direct = np.log(z * special.ndtr(z) + np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi))
    np.testing.assert_allclose(log_h(z)[0], direct, rtol=1e-10)
    val, grad = log_h(np.array([-30.0, -39.0, -199.0, -201.0, -1e5]))
    assert np.all(np.isfinite(val)) and np.all(np.diff(val) < 0) and np.all(grad > 0)
    # The two tail formulas meet at z = -200 without a visible jump.
    val, grad = log_h(np.array([np.nextafter(-200.0, 0.0), -200.0]))
    assert abs(val[0] - val[1]) < 1e-8 and abs(grad[0] - grad[1]) < 1e-5 * grad[0]
