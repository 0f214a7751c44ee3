"""The GP surrogate at scale: bounded training sets and hyperparameters refitted on a schedule.

An exact GP costs O(n^3) per likelihood evaluation and a MAP fit takes a few hundred of them, so
refitting on every suggestion of a 1,000-trial study took seconds. Three bounds keep it interactive:

* The posterior sees at most ``max_observations`` points: the best third, the most recent third and
  a space-filling remainder (greedy farthest-point over the rest), so the incumbent's neighbourhood,
  what the study does now and the overall landscape all stay in view.
* Hyperparameters are fitted on at most ``hyper_cap`` points chosen the same way from the first
  ``refit_point(n)`` observations in trial order. ``refit_point`` moves on every trial early in a
  study and in steps of ~3-6% of the history later (every 32 trials at 1,000), so between steps the
  data, and hence the fit, is the same.
* Fitted hyperparameters are memoised by a digest of exactly the data they were fitted on. A hit is
  the value a refit would give (the fit's restarts use a generator seeded from the data size, not
  the suggestion's), so a seeded sweep proposes the same configurations in one long process or
  across restarts; the memo only saves time.

The constant mean is re-estimated in closed form (generalised least squares) on the posterior's own
points, since they are standardised apart from the hyperparameter data.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from costtune.samplers.gp import GaussianProcess, GPParams, fit_gp

__all__ = ["Surrogate", "refit_point", "select"]

_CHUNK = 1024  # rows per block of the farthest-point distance matrix
_EVERY_TRIAL_UNTIL = 32  # below this many observations the hyperparameters are refitted every time


def refit_point(count: int) -> int:
    """How many leading observations (in trial order) the hyperparameters are fitted on.

    ``count`` itself up to 32, then ``count`` rounded down to a multiple of 2**floor(log2(count/16)):
    a step of 2 from 32, 4 from 64, ..., 32 from 512, 512 from 8,192.
    """
    if count <= _EVERY_TRIAL_UNTIL:
        return count
    step = 1 << math.floor(math.log2(count / 16))
    return count - count % step


def select(x: np.ndarray, y: np.ndarray, cap: int) -> np.ndarray:
    """Sorted indices of at most ``cap`` rows of ``x`` (n, d) with values ``y`` (n,), lower better,
    rows in trial order: the best third, the most recent third, then farthest-point picks."""
    n = len(y)
    if n <= cap:
        return np.arange(n)
    chosen = np.zeros(n, dtype=bool)
    chosen[np.argsort(y, kind="stable")[: cap // 3]] = True
    recent = cap - cap // 3 - cap // 3
    for i in range(n - 1, -1, -1):
        if recent == 0:
            break
        if not chosen[i]:
            chosen[i] = True
            recent -= 1
    rest = np.flatnonzero(~chosen)
    picked = np.flatnonzero(chosen)
    need = cap - len(picked)
    if need > 0 and len(rest):
        pts = x[rest]
        # squared distance of every remaining row to its nearest chosen row, updated as rows join;
        # |p|^2 is the same along a row, so it is added after the minimum (one pass less over the matrix)
        sq = (pts * pts).sum(1)
        block = x[picked]
        block_t, block_sq = block.T * -2.0, (block * block).sum(1)
        gap = np.empty(len(rest))
        for i in range(0, len(rest), _CHUNK):  # in chunks: a (rest, picked) matrix does not fit in cache
            d2 = pts[i : i + _CHUNK] @ block_t
            d2 += block_sq
            gap[i : i + _CHUNK] = d2.min(1)
        gap += sq
        for _ in range(min(need, len(rest))):
            j = int(np.argmax(gap))
            chosen[rest[j]] = True
            step = pts @ pts[j]
            step *= -2.0
            step += sq
            step += sq[j]
            np.minimum(gap, step, out=gap)
            gap[j] = -np.inf
    return np.flatnonzero(chosen)


def _digest(x: np.ndarray, y: np.ndarray, extra: tuple[int, ...]) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(x, dtype=float).tobytes())
    h.update(np.ascontiguousarray(y, dtype=float).tobytes())
    h.update(repr((x.shape, extra)).encode())
    return h.digest()


class Surrogate:
    """Fits GPs for one sampler, remembering hyperparameters by the data they were fitted on.

    ``max_observations``: cap on the posterior's points; ``hyper_cap``: cap on the points the
    hyperparameters are fitted on; ``n_restarts``: random restarts of each hyperparameter fit;
    ``memo``: how many fitted hyperparameter sets are kept (one per model the sampler uses).
    """

    def __init__(self, *, max_observations: int = 300, hyper_cap: int = 128, n_restarts: int = 2,
                 memo: int = 8) -> None:
        self.max_observations = max_observations
        self.hyper_cap = hyper_cap
        self.n_restarts = n_restarts
        self._memo: OrderedDict[bytes, GPParams] = OrderedDict()
        self._memo_size = memo
        self._lock = threading.Lock()
        self.fits = 0  # hyperparameter fits actually run (the rest were memo hits)

    def fit(self, x: np.ndarray, y: np.ndarray, transform: Callable[[np.ndarray], np.ndarray],
            *, seed: int = 0, stable: int | None = None) -> tuple[GaussianProcess, np.ndarray]:
        """A GP on rows ``x`` (n, d) in trial order with raw values ``y`` (n,), lower better, and the
        indices of the rows it was conditioned on.

        ``transform`` maps raw values to the standardised targets the GP models; it is applied to
        each training subset on its own. The model's ``x``/``y`` are the posterior's subset and its
        transformed targets; the indices are the posterior's rows of ``x``. ``stable``: how many
        leading rows no longer change (finished trials; default all): the hyperparameters are fitted
        on those only. Raises ``GPFitError`` when no hyperparameters could be fitted.
        """
        m = refit_point(len(y) if stable is None else min(stable, len(y)))
        if m < 2:  # too little settled data: fit on everything there is
            m = len(y)
        # keyed by the raw leading data, so a hit costs a hash, not the subset selection
        key = _digest(x[:m], y[:m], (seed, self.n_restarts, self.hyper_cap))
        with self._lock:
            params = self._memo.get(key)
            if params is not None:
                self._memo.move_to_end(key)
        if params is None:
            keep = select(x[:m], y[:m], self.hyper_cap)
            rng = np.random.default_rng([seed, m])
            params = fit_gp(x[:m][keep], transform(y[:m][keep]), rng, n_restarts=self.n_restarts).params
            with self._lock:
                self.fits += 1
                self._memo[key] = params
                while len(self._memo) > self._memo_size:
                    self._memo.popitem(last=False)
        keep = select(x, y, self.max_observations)
        return GaussianProcess(x[keep], transform(y[keep]), params, refit_mean=True), keep
