"""Exact acquisition scores where they matter, cheap upper bounds everywhere else.

Scoring thousands of candidates against a few hundred posterior points is most of a suggestion's
time at 1,000 trials: a triangular solve per candidate for the posterior variance and, when the
sampler is cost-aware, a cost-GP prediction per candidate and resource. Only the best few scores are
ever used (the polish starts and the best candidate not already taken), so the candidates are first
bounded from above, cheaply, and scored exactly in order of their bound until no bound left can
reach the scores already found. The result is the exact ranking at the top:

* The posterior variance given a subset of the training points is never smaller than given all of
  them (conditioning on more data cannot add uncertainty; Rasmussen & Williams 2006, section 2.2).
  Each candidate's variance is bounded by conditioning on its most correlated point only, a closed
  form (bounds from the 2-8 nearest points pruned no better at 1,000 trials and cost more), and on
  the 32 training points with the best targets (one shared 32x32 factor): the candidates that can
  win lie near those, where the nearest point alone leaves the bound loose. With both, one block
  of 32 exact scores usually settles the ranking at 1,000 trials (the nearest point alone let
  250-700 candidates through to exact scoring, most of a cost-aware suggestion's screen). Log EI
  grows with the standard deviation at a fixed mean, and the mean is exact, so the bound on log EI
  is an upper bound.
* The cost penalty is bounded from below by its ``floor`` (the lowest log cost the cost model can
  plausibly predict, see ``cost_model.CostPenalty.floor``); no penalty is computed for a candidate
  that cannot win even at that floor.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from scipy import linalg

from costtune.samplers.acquisition import log_expected_improvement
from costtune.samplers.gp import GaussianProcess

__all__ = ["screened_scores", "variance_bound"]

_BLOCK = 128  # candidates per block, as in gp.py
_COST_BLOCK = 32  # candidates per cost-penalty evaluation within a block
# candidates scored exactly first, in bound order (then twice as many each time, up to _BLOCK): with
# both variance bounds, one such block usually settles the ranking at 1,000 trials
_FIRST_EXACT = 32
_SUBSET = 32  # training points of the second variance bound: those with the best targets


class _Penalty(Protocol):
    def __call__(self, x: np.ndarray) -> np.ndarray: ...

    def floor(self) -> float: ...


def _best_subset(model: GaussianProcess) -> tuple[np.ndarray, np.ndarray] | None:
    """(indices, lower Cholesky factor of their kernel matrix, noise included) of the ``_SUBSET``
    training points with the lowest targets; None when there are no more points than that or the
    factorisation fails."""
    n = len(model.y)
    if n <= _SUBSET:
        return None
    idx = np.argsort(model.y, kind="stable")[:_SUBSET]
    try:
        chol = linalg.cholesky(model.kernel_matrix[np.ix_(idx, idx)], lower=True, check_finite=False)
    except linalg.LinAlgError:
        return None
    return idx, chol


def variance_bound(model: GaussianProcess, ks: np.ndarray,
                   subset: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """(m,) upper bound on the posterior standard deviation of the candidates whose cross kernel with
    the training points is ``ks`` (m, n): the standard deviation given only their most correlated
    training point j, ``sqrt(s - k_j^2 / K_jj)`` with ``s`` the prior variance and ``K_jj`` the
    point's prior variance plus noise. The prior standard deviation where that is not finite.
    ``subset`` (``_best_subset``): also the standard deviation given only those training points
    (a triangular solve of their size per candidate), and the lower of the two bounds. The
    candidates that can win sit near the best points, where many observations together pin the
    variance down far below what the nearest one alone does."""
    if ks.shape[1] == 0:
        return np.full(len(ks), np.sqrt(model.signal))
    reduction = _nearest_reduction(model, ks)
    if subset is not None:
        reduction = np.maximum(reduction, _subset_reduction(subset, ks[:, subset[0]]))
    return _std_bound(model, reduction)


def _nearest_reduction(model: GaussianProcess, ks: np.ndarray) -> np.ndarray:
    """k_j^2 / K_jj for each row's most correlated training point j (0 where not finite)."""
    j = np.argmax(ks, axis=1)
    near = np.take_along_axis(ks, j[:, None], axis=1)[:, 0]
    reduction = near * near / np.diag(model.kernel_matrix)[j]
    reduction[~np.isfinite(reduction)] = 0.0
    return reduction


def _subset_reduction(subset: tuple[np.ndarray, np.ndarray], ks_sub: np.ndarray) -> np.ndarray:
    """k_S^T K_SS^-1 k_S for each row of ``ks_sub`` (m, |S|), the cross kernel with the subset S
    (0 where not finite)."""
    v = linalg.solve_triangular(subset[1], ks_sub.T, lower=True, check_finite=False)
    reduction = (v * v).sum(0)
    return np.where(np.isfinite(reduction), reduction, 0.0)


def _std_bound(model: GaussianProcess, reduction: np.ndarray) -> np.ndarray:
    # 1% slack: the exact variance comes from a jittered Cholesky factor
    return 1.01 * np.sqrt(np.maximum(model.signal - reduction, 1e-20))


def screened_scores(model: GaussianProcess, cands: np.ndarray, best: float, xi: float,
                    cost: _Penalty | None, taken: frozenset[bytes], top: int) -> np.ndarray:
    """(m,) scores of ``cands`` (m, d): log EI minus the cost penalty, exact for every candidate that
    could be among the ``top`` best or the best one not in ``taken`` (rows keyed as ``rows.py`` keys
    them); every other score is an upper bound lower than all of those. -inf marks a non-finite score.
    """
    m = len(cands)
    mean, reduction = np.empty(m), np.zeros(m)
    subset = _best_subset(model)
    ks_sub = np.empty((m, 0 if subset is None else len(subset[0])))
    for i in range(0, m, _BLOCK):
        ks = model.cross_kernel(cands[i : i + _BLOCK])
        mean[i : i + _BLOCK] = model.predict_from_cross(ks, with_std=False)[0]
        if ks.shape[1]:
            reduction[i : i + _BLOCK] = _nearest_reduction(model, ks)
        if subset is not None:
            ks_sub[i : i + _BLOCK] = ks[:, subset[0]]
    if subset is not None:  # one solve for every candidate: per block, the call overhead dominated
        reduction = np.maximum(reduction, _subset_reduction(subset, ks_sub))
    std_ub = _std_bound(model, reduction)
    floor = 0.0 if cost is None else float(cost.floor())
    if not np.isfinite(floor):
        floor = -np.inf  # no usable floor: every bound is +inf and every candidate is scored exactly
    bound = log_expected_improvement(mean, std_ub, best, xi)[0] - floor
    bound = np.where(np.isnan(bound), np.inf, bound)
    order = np.argsort(-bound, kind="stable")
    scores = np.where(np.isfinite(bound), bound, -np.inf)
    found = _Found(top, taken)
    pos, size = 0, _FIRST_EXACT
    while pos < m:
        chunk = order[pos : pos + size]
        pos, size = pos + size, min(2 * size, _BLOCK)
        if bound[chunk[0]] < found.threshold:
            break
        rows = cands[chunk]
        mu, sd = model.predict_from_cross(model.cross_kernel(rows))
        le = log_expected_improvement(mu, sd, best, xi)[0]
        le = np.where(np.isfinite(le), le, -np.inf)
        if cost is None:
            scores[chunk] = le
            found.add(le, rows)
            continue
        # exact log EI, floor for the penalty: an upper bound again, far tighter; the penalty is
        # computed only where it can still reach the threshold, best log EI first
        upper = le - floor if np.isfinite(floor) else np.full(len(le), np.inf)
        scores[chunk] = upper
        by_ei = np.argsort(-upper, kind="stable")
        for k in range(0, len(by_ei), _COST_BLOCK):
            sel = by_ei[k : k + _COST_BLOCK]
            if upper[sel[0]] < found.threshold:
                break
            s = le[sel] - cost(rows[sel])
            s = np.where(np.isfinite(s), s, -np.inf)
            scores[chunk[sel]] = s
            found.add(s, rows[sel])
    return scores


class _Found:
    """The exact scores so far: the ``top`` best, and the best of a row not in ``taken``."""

    def __init__(self, top: int, taken: frozenset[bytes]) -> None:
        self.top = top
        self.taken = taken
        self.scores: list[float] = []
        self.best_free = -np.inf

    @property
    def threshold(self) -> float:
        """A bound below this cannot be among the ``top`` nor beat the best free row."""
        if len(self.scores) < self.top:
            return -np.inf
        return min(self.best_free, float(np.partition(self.scores, len(self.scores) - self.top)[-self.top]))

    def add(self, s: np.ndarray, rows: np.ndarray) -> None:
        self.scores.extend(s.tolist())
        keys = np.round(rows, 9) + 0.0  # + 0.0: -0.0 is 0.0
        for j in np.argsort(-s, kind="stable"):
            if s[j] <= self.best_free:
                break
            if keys[j].tobytes() not in self.taken:
                self.best_free = float(s[j])
                break
