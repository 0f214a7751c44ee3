"""What the Bayesian sampler keeps between suggestions saves time and never changes a proposal.

A controller hands its sampler a new ``History`` after every trial; most of its trials are the very
objects of the previous one. The sampler reuses what it derived from those (encoded rows, the
observations, the no-repeat keys, the cost model's columns) and looks again only at trials after the
first one that differs. These tests grow a study the way a controller does, with trials starting,
reporting, finishing and (rarely) changing after they finished, and compare every proposal of one
long-lived sampler with that of a fresh sampler given the same history and generator.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from costtune.history import FrozenTrial, History, Mode, TrialState
from costtune.samplers.bayes import BayesSampler
from costtune.samplers.cost_model import cost_data
from costtune.samplers.encoding import Encoder
from costtune.samplers.gp import GaussianProcess, GPParams
from costtune.samplers.rows import TrialRows, row_key
from costtune.space import Categorical, SearchSpace, Uniform

USD = 1_000_000
PLAIN = SearchSpace({"x": Uniform(0, 1), "y": Uniform(0, 1), "z": Uniform(0, 1)})
PLACED = SearchSpace({"x": Uniform(0, 1), "y": Uniform(0, 1), "instance_type": Categorical(("cpu", "gpu"))})
SMALL: dict[str, Any] = {"n_startup": 5, "n_candidates": 64, "n_polish": 1, "max_observations": 24,
                         "hyper_cap": 16}


def _loss(c: dict[str, Any]) -> float:
    return (c["x"] - 0.3) ** 2 + math.sin(4 * c["y"])


def _bill(c: dict[str, Any], steps: int) -> int:
    return int(USD * (0.2 + 0.05 * steps * (1 + c["x"])) * (3 if c.get("instance_type") == "gpu" else 1))


def _grow(space: SearchSpace, n: int, seed: int) -> list[History]:
    """Histories of a study with two trials running at a time: each step a running trial reports or
    finishes, a new one starts, and now and then an old finished trial is billed late (a new object
    with a higher cost, as the store hands back a changed trial)."""
    rng = np.random.default_rng(seed)
    trials: list[FrozenTrial] = []
    out = []
    for i in range(n):
        running = [j for j, t in enumerate(trials) if t.state == TrialState.RUNNING]
        for j in running:
            t = trials[j]
            steps = (t.last_step or 0) + 2
            if steps >= 10 or rng.random() < 0.3:
                state = TrialState.COMPLETE if rng.random() < 0.8 else TrialState.STOPPED
                trials[j] = FrozenTrial(t.number, state, t.params, _loss(t.params), cost_micros=_bill(t.params, steps),
                                        last_step=steps - 1)
            else:
                trials[j] = FrozenTrial(t.number, t.state, t.params, _loss(t.params),
                                        cost_micros=_bill(t.params, steps), last_step=steps - 1)
        done = [j for j, t in enumerate(trials) if t.state.finished]
        if done and rng.random() < 0.15:
            j = done[int(rng.integers(len(done)))]
            t = trials[j]
            trials[j] = FrozenTrial(t.number, t.state, t.params, t.value, cost_micros=t.cost_micros + 1000,
                                    last_step=t.last_step)
        c = space.sample(rng)
        trials.append(FrozenTrial(i, TrialState.RUNNING, c, None, cost_micros=_bill(c, 1), last_step=0))
        out.append(History("loss", Mode.MIN, tuple(trials), budget_micros=200 * USD))
    return out


@pytest.mark.parametrize(("space", "kwargs"), [(PLAIN, {}), (PLACED, {"cost_aware": True})],
                         ids=["plain", "cost-aware-with-instance-types"])
def test_a_long_lived_sampler_proposes_what_a_fresh_one_does_as_the_study_grows(
        space: SearchSpace, kwargs: dict[str, Any]) -> None:
    long_lived = BayesSampler(**SMALL, **kwargs)
    histories = _grow(space, 40, seed=1)
    for k, history in enumerate(histories[8:], start=8):
        proposal = long_lived.suggest(space, history, np.random.default_rng(k))
        assert proposal == BayesSampler(**SMALL, **kwargs).suggest(space, history, np.random.default_rng(k))


def test_only_trials_after_the_first_changed_one_are_looked_at_again() -> None:
    rows = TrialRows(Encoder(PLAIN))
    rng = np.random.default_rng(0)
    trials = tuple(FrozenTrial(i, TrialState.COMPLETE, c, _loss(c)) for i, c in
                   enumerate(PLAIN.sample(rng) for _ in range(500)))
    x, _ = rows.observations(History("loss", Mode.MIN, trials))
    assert rows.examined == 500 and rows.encoded == 500 and x.shape == (500, 3)
    more = (*trials, FrozenTrial(500, TrialState.COMPLETE, PLAIN.sample(rng), 0.5))
    x2, y2 = rows.observations(History("loss", Mode.MIN, more))
    assert rows.examined == 501 and rows.encoded == 501  # only the new trial
    assert np.array_equal(x2[:500], x) and y2[-1] == 0.5
    # trial 10 changes value (a new object): it and the trials after it are looked at again, not encoded
    changed = list(more)
    changed[10] = FrozenTrial(10, TrialState.COMPLETE, dict(more[10].params), -9.0)
    x3, y3 = rows.observations(History("loss", Mode.MIN, tuple(changed)))
    assert rows.examined == 501 + 491 and rows.encoded == 501
    assert y3[10] == -9.0 and np.array_equal(x3, x2)
    fresh_x, fresh_y = TrialRows(Encoder(PLAIN)).observations(History("loss", Mode.MIN, tuple(changed)))
    assert np.array_equal(fresh_x, x3) and np.array_equal(fresh_y, y3)


def test_taken_configurations_follow_trials_that_change() -> None:
    rows = TrialRows(Encoder(PLAIN))
    a, b = {"x": 0.1, "y": 0.2, "z": 0.3}, {"x": 0.4, "y": 0.5, "z": 0.6}
    first = (FrozenTrial(0, TrialState.COMPLETE, a, 1.0), FrozenTrial(1, TrialState.QUEUED, b))
    key_a, key_b = (row_key(rows.encoder.encode(t.params)) for t in first)  # type: ignore[arg-type]
    assert rows.taken(first) == {key_a, key_b}
    # trial 1's configuration is replaced (a new object): b is no longer taken
    c = {"x": 0.7, "y": 0.8, "z": 0.9}
    second = (first[0], FrozenTrial(1, TrialState.QUEUED, c))
    taken = rows.taken(second)
    assert key_b not in taken and key_a in taken and len(taken) == 2


def test_cost_columns_reused_across_suggestions_equal_a_fresh_computation() -> None:
    encoder = Encoder(PLACED)
    price = {"cpu": 1_000_000, "gpu": 3_000_000}

    def rate(params: dict[str, Any]) -> int:
        return price[params["instance_type"]]

    for how in (None, rate):
        rows = TrialRows(encoder)
        for history in _grow(PLACED, 60, seed=5):
            cached = cost_data(history, rows, rate=how)
            fresh = cost_data(history, encoder.encode, rate=how)
            assert cached[2] == fresh[2]
            assert np.array_equal(cached[0], fresh[0]) and np.array_equal(cached[1], fresh[1])
        assert rows.examined < 60 * 60 / 4  # the columns were reused, not rebuilt per suggestion


def test_gp_blocked_predictions_and_mean_gradient() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.random((40, 3)), rng.standard_normal(40)
    gp = GaussianProcess(x, y, GPParams(np.log(np.full(3, 0.4)), 0.0, math.log(1e-3), 0.0))
    pts = rng.random((300, 3))  # more than one block of candidates
    mean, std = gp.predict(pts)
    one_by_one = [gp.predict(p[None, :]) for p in pts[::37]]
    assert np.allclose(mean[::37], [m[0] for m, _ in one_by_one])
    assert np.allclose(std[::37], [s[0] for _, s in one_by_one])
    assert np.allclose(gp.predict_mean(pts), mean)
    m2, dm2 = gp.predict_mean_with_grad(pts[:4])
    m4, _, dm4, _ = gp.predict_with_grad(pts[:4])
    assert np.allclose(m2, m4) and np.allclose(dm2, dm4)
    h = 1e-6
    for d in range(3):
        step = np.zeros(3)
        step[d] = h
        numeric = (gp.predict_mean(pts[:4] + step) - gp.predict_mean(pts[:4] - step)) / (2 * h)
        assert np.allclose(dm2[:, d], numeric, rtol=1e-4, atol=1e-6)
