"""The candidate screen: bounds only where they cannot matter, exact scores wherever a pick is made."""

from __future__ import annotations

import numpy as np
import pytest

from costtune.samplers.acquisition import log_expected_improvement
from costtune.samplers.gp import fit_gp
from costtune.samplers.screen import _best_subset, screened_scores, variance_bound


def _model(n: int, d: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.random((n, d))
    y = np.sin(6.0 * x[:, 0]) + (x[:, 1:] ** 2).sum(1) + 0.05 * rng.standard_normal(n)
    y = (y - y.mean()) / y.std()
    return fit_gp(x, y, np.random.default_rng(seed), n_restarts=0), rng


class _Penalty:
    """A cost penalty with a known floor: alpha * (a smooth log cost)."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return 0.7 * (1.5 * x[:, 0] + np.cos(4.0 * x[:, 1]))

    def floor(self) -> float:
        return 0.7 * -1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_variance_bound_is_never_below_the_posterior_std(seed: int) -> None:
    model, rng = _model(80, 4, seed)
    cands = np.vstack([rng.random((500, 4)), model.x[:20] + 0.01 * rng.standard_normal((20, 4))])
    _, std = model.predict(cands)
    assert np.all(variance_bound(model, model.cross_kernel(cands)) >= std)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_best_points_bound_is_never_below_the_posterior_std_and_tightens_near_them(seed: int) -> None:
    model, rng = _model(120, 4, seed)
    subset = _best_subset(model)
    assert subset is not None
    elite = model.x[np.argsort(model.y)[:5]]
    near = np.clip(elite[rng.integers(5, size=300)] + 0.05 * rng.standard_normal((300, 4)), 0, 1)
    cands = np.vstack([rng.random((300, 4)), near])
    ks = model.cross_kernel(cands)
    _, std = model.predict(cands)
    both, nearest = variance_bound(model, ks, subset), variance_bound(model, ks)
    assert np.all(both >= std)
    assert np.all(both <= nearest)
    assert np.median(both[300:]) < np.median(nearest[300:])  # the point of it: tighter where winners are


@pytest.mark.parametrize("cost", [None, _Penalty()])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_screen_ranks_the_top_and_the_best_untaken_exactly(seed: int, cost: _Penalty | None) -> None:
    model, rng = _model(120, 4, seed)
    best = float(model.y.min())
    elite = model.x[np.argsort(model.y)[:5]]
    cands = np.clip(np.vstack([rng.random((1500, 4)),
                               elite[rng.integers(5, size=700)] + 0.05 * rng.standard_normal((700, 4))]), 0, 1)
    mean, std = model.predict(cands)
    exact = log_expected_improvement(mean, std, best)[0] - (cost(cands) if cost is not None else 0.0)
    order = np.argsort(-exact, kind="stable")
    # the three best candidates count as already tried: the pick must be the fourth, exactly scored
    taken = frozenset((np.round(cands[i], 9) + 0.0).tobytes() for i in order[:3])
    scores = screened_scores(model, cands, best, 0.0, cost, taken, 5)
    top = np.argsort(-scores, kind="stable")[:5]
    np.testing.assert_array_equal(top, order[:5])
    np.testing.assert_allclose(scores[top], exact[top], rtol=1e-9, atol=1e-9)
    assert np.all(scores <= np.max(exact) + 1e-9)
    # everything scored below the fourth best is either exact or a bound below it
    cut = exact[order[3]]
    assert np.all((scores < cut) | np.isclose(scores, exact))
