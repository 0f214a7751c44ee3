"""Bayesian optimisation: a Gaussian-process surrogate and log expected improvement.

Configurations live in the unit cube (``encoding.py``). What the sampler proposes depends only on the
``History`` and the ``rng`` it is handed, so a seeded sweep is reproducible whatever the worker count;
the only state it keeps is memoised work (encoded trials, observations and cost columns kept for the
trials that did not change, see ``rows.py`` and ``cost_rows.py``; fitted hyperparameters, see
``surrogate.py``) that makes a suggestion at 10,000 trials cost tens of milliseconds, not seconds.
Whenever the model cannot be used (too few trials, a numerical failure, a config it cannot decode) it
falls back to ``space.sample(rng)``: a sweep must never die because of its surrogate. With
``cost_aware`` and a searched instance type or market, see ``resource.py``.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import optimize

from costtune.errors import SpecError
from costtune.history import History
from costtune.samplers.acquisition import log_expected_improvement
from costtune.samplers.cost_model import CostPenalty, cost_exponent, fit_cost_penalty
from costtune.samplers.encoding import ONEHOT, Encoder, is_real
from costtune.samplers.gp import GaussianProcess, single_threaded_blas
from costtune.samplers.novelty import finite_size, taken_keys, untried
from costtune.samplers.resource import CheapestPenalty, ResourceCost, resource_split
from costtune.samplers.rows import TrialRows
from costtune.samplers.screen import screened_scores
from costtune.samplers.surrogate import Surrogate

if TYPE_CHECKING:
    from costtune.space import SearchSpace

__all__ = ["BayesSampler"]

_logger = logging.getLogger(__name__)

Penalty = CostPenalty | CheapestPenalty  # what log EI is reduced by: alpha * log predicted dollars
_COST_OBSERVATIONS = 128  # cap on the cost model's posterior points
_ENUMERATE_CANDIDATES = 4096  # finite spaces up to this size have every untried point scored
# L-BFGS-B iterations of the polish: the starts are the best of thousands of candidates, so 10 take the
# best one to within 4e-4 of its log EI after 30 (median 1e-6, on suggest_time.py's histories; the
# polish itself gains ~0.2) in ~12 evaluations instead of ~20
_POLISH_ITERATIONS = 10


def _transform_targets(y: np.ndarray) -> np.ndarray:
    """Robust standardisation with a squashed bad tail.

    A few diverged runs (loss 1e6 next to 0.3) would otherwise set the GP's scale and flatten
    everything that matters; only the bad side is compressed because the good side is where EI looks.
    """
    med = float(np.median(y))
    q25, q75 = np.percentile(y, [25.0, 75.0])
    scale = float(q75 - q25) / 1.349 or float(np.std(y)) or 1.0
    z = (y - med) / scale
    z = np.where(z > 2.0, 2.0 + np.log1p(np.maximum(z - 2.0, 0.0)), z)
    return (z - z.mean()) / (float(z.std()) or 1.0)


class BayesSampler:
    """GP-based sampler (Matern-5/2 ARD, MAP hyperparameters, log-EI) with a random start-up phase.

    ``n_startup``: usable finished trials required before the model is consulted.
    ``n_candidates``: uniform random candidates scored per suggestion (half as many in a space of
    continuous parameters only); half as many more are drawn around the best trials, and the
    ``n_polish`` best are refined by L-BFGS-B on continuous dims. Only the candidates that can still
    rank among those are scored exactly (``screen.py``).
    ``xi``: EI margin in standardised units (0 = plain EI; raise it to explore more).
    ``max_observations``: cap on the points the GP's posterior sees and ``hyper_cap`` on those its
    hyperparameters are fitted on (best, most recent and space-filling thirds; see ``surrogate``),
    keeping the cubic cost bounded in long studies.
    ``cost_aware``: rank by log EI - alpha * log(predicted dollars), alpha cooling from ``cost_weight`` to 0
    as the study's budget is spent (see ``cost_model``); off, the sampler is exactly plain EI. A
    searched instance type or market is then a resource chosen per configuration (``resource``),
    priced exactly once ``set_rates`` gave the price of each placement.
    Raises ``SpecError`` (field ``BayesSampler.<name>``) for an out-of-range setting.
    """

    def __init__(
        self,
        *,
        n_startup: int = 10,
        n_candidates: int = 2000,
        n_polish: int = 5,
        xi: float = 0.0,
        n_restarts: int = 2,
        max_observations: int = 256,
        hyper_cap: int = 128,
        cost_aware: bool = False,
        cost_weight: float = 1.0,
    ) -> None:
        checks = {
            "n_startup": (n_startup, n_startup >= 1),
            "n_candidates": (n_candidates, n_candidates >= 1),
            "n_polish": (n_polish, n_polish >= 0),
            "xi": (xi, math.isfinite(xi) and xi >= 0.0),
            "n_restarts": (n_restarts, n_restarts >= 0),
            "max_observations": (max_observations, max_observations >= 2),
            "hyper_cap": (hyper_cap, hyper_cap >= 2),
            "cost_aware": (cost_aware, isinstance(cost_aware, bool)),
            "cost_weight": (cost_weight, is_real(cost_weight) and 0.0 < cost_weight <= 1.0),
        }
        for name, (value, ok) in checks.items():
            if not ok:
                raise SpecError(f"BayesSampler.{name}", "out of range", value)
        self.n_startup = n_startup
        self.n_candidates = n_candidates
        self.n_polish = n_polish
        self.xi = xi
        self.n_restarts = n_restarts
        self.max_observations = max_observations
        self.hyper_cap = hyper_cap
        self.cost_aware = cost_aware
        self.cost_weight = float(cost_weight)
        self.surrogate = Surrogate(max_observations=max_observations, hyper_cap=hyper_cap, n_restarts=n_restarts)
        # log cost is a smooth, low-noise surface: 128 posterior points predict it as well as 256 and
        # halve the cost model's share of a suggestion (it is predicted per candidate and resource)
        self.cost_surrogate = Surrogate(max_observations=min(max_observations, _COST_OBSERVATIONS),
                                        hyper_cap=hyper_cap, n_restarts=n_restarts)
        self._encoders: dict[str, TrialRows] = {}
        self._rate: Callable[[dict[str, Any]], float] | None = None
        self._encoder_lock = threading.Lock()
        self._split: tuple[SearchSpace, tuple[SearchSpace, dict[str, tuple[Any, ...]]] | None] | None = None

    def __repr__(self) -> str:
        cost = f", cost_aware=True, cost_weight={self.cost_weight}" if self.cost_aware else ""
        return (
            f"BayesSampler(n_startup={self.n_startup}, n_candidates={self.n_candidates}, "
            f"n_polish={self.n_polish}, xi={self.xi}, n_restarts={self.n_restarts}, "
            f"max_observations={self.max_observations}, hyper_cap={self.hyper_cap}{cost})"
        )

    def cost_penalty(self, space: SearchSpace, history: History) -> CostPenalty | None:
        """The fitted cost term at this point of the study (None: plain EI)."""
        if not self.cost_aware:
            return None
        alpha = cost_exponent(history, self.cost_weight, self.n_startup)
        return fit_cost_penalty(history, self.trial_rows(space), alpha, self.cost_surrogate)

    def set_rates(self, rate: Callable[[dict[str, Any]], float] | None) -> None:
        """Tell the sampler what a placement costs: ``rate(params)`` is the micro-dollars per hour of
        the instance type and market a trial with ``params`` runs on (the controller knows the sweep's
        price table). With it, a searched resource's cost model learns only speed; prices are exact."""
        self._rate = rate

    def encoder(self, space: SearchSpace) -> Encoder:
        """The encoder of ``space``, kept while the space stays the same (its memo is the point)."""
        return self.trial_rows(space).encoder

    def trial_rows(self, space: SearchSpace) -> TrialRows:
        """The encoded rows of the study's trials in ``space``, kept across suggestions (``rows.py``)."""
        key = json.dumps(space.to_dict(), sort_keys=True, default=str)
        with self._encoder_lock:
            if key not in self._encoders:
                if len(self._encoders) >= 4:  # the space was edited: drop the old ones
                    self._encoders.clear()
                self._encoders[key] = TrialRows(Encoder(space))
            return self._encoders[key]

    def suggest(self, space: SearchSpace, history: History, rng: np.random.Generator) -> dict[str, Any]:
        split = self._resource_split(space) if self.cost_aware else None
        if split is not None:
            return self._suggest_with_resources(space, split[0], split[1], history, rng)
        rows = self.trial_rows(space)
        encoder = rows.encoder
        x, y = rows.observations(history)
        if encoder.dim == 0 or len(y) < max(self.n_startup, 2):
            return space.sample(rng)
        try:
            with single_threaded_blas():
                config = self._suggest_with_model(rows, x, y, history, rng, self.cost_penalty(space, history))
            if space.contains(config):
                return config
            _logger.warning("BayesSampler decoded %r outside the space; sampling at random", config)
        except Exception:  # the surrogate is an optimisation, never a reason to stop a sweep
            _logger.warning("BayesSampler model failed; sampling at random", exc_info=True)
        return space.sample(rng)

    def _resource_split(self, space: SearchSpace) -> tuple[SearchSpace, dict[str, tuple[Any, ...]]] | None:
        """``resource_split(space)``, kept for the last space (immutable) it was asked about: building
        the inner space validates every distribution again, ~0.5 ms per suggestion."""
        memo = self._split
        if memo is not None and memo[0] is space:
            return memo[1]
        split = resource_split(space)
        self._split = (space, split)
        return split

    def _suggest_with_resources(self, space: SearchSpace, inner: SearchSpace,
                                resources: dict[str, tuple[Any, ...]], history: History,
                                rng: np.random.Generator) -> dict[str, Any]:
        """Cost-aware with a searched instance type or market: see ``resource.py``."""
        rows = self.trial_rows(inner)
        encoder = rows.encoder
        x, y = rows.observations(history)
        config: dict[str, Any] | None = None
        cost: ResourceCost | None = None
        try:
            with single_threaded_blas():
                cost = self._resource_cost(space, encoder, resources, history)
                if len(y) >= max(self.n_startup, 2):
                    alpha = cost_exponent(history, self.cost_weight, self.n_startup)
                    penalty = cost.penalty(alpha) if cost is not None and alpha > 0 else None
                    config = self._suggest_with_model(rows, x, y, history, rng, penalty)
                    if not inner.contains(config):
                        _logger.warning("BayesSampler decoded %r outside the space; sampling at random", config)
                        config = None
        except Exception:  # the surrogate is an optimisation, never a reason to stop a sweep
            _logger.warning("BayesSampler model failed; sampling at random", exc_info=True)
            cost = None
        if config is None:
            config = inner.sample(rng)
        row = encoder.encode(config)
        if cost is not None and row is not None:
            with single_threaded_blas():  # a small prediction: BLAS threads would only hand it around
                config.update(cost.choose(row))
        else:
            config.update({name: choices[int(rng.integers(len(choices)))] for name, choices in resources.items()})
        return {name: config[name] for name in space.names}

    def _resource_cost(self, space: SearchSpace, inner: Encoder, resources: dict[str, tuple[Any, ...]],
                       history: History) -> ResourceCost | None:
        full = self.encoder(space)
        log_prices: tuple[float, ...] = ()
        rate = self._rate
        if rate is not None:
            try:
                combos = ResourceCost(full, inner, None, resources).combos  # type: ignore[arg-type]
                log_prices = tuple(math.log(float(rate(c)) / 1e6) for c in combos)
                if not all(math.isfinite(p) for p in log_prices) or not all(
                        float(rate(t.params)) > 0 for t in history.trials if t.cost_micros > 0):
                    raise ValueError("a placement without a positive price")
            except Exception:  # an unpriced placement: learn dollars instead of hours
                _logger.debug("no usable price per placement; the cost model learns dollars", exc_info=True)
                log_prices, rate = (), None
        model = fit_cost_penalty(history, self.trial_rows(space), 1.0, self.cost_surrogate, rate=rate)
        return None if model is None else ResourceCost(full, inner, model, resources, log_prices)

    def _suggest_with_model(
        self,
        rows: TrialRows,
        x_all: np.ndarray,
        y_all: np.ndarray,
        history: History,
        rng: np.random.Generator,
        cost: Penalty | None = None,
    ) -> dict[str, Any]:
        encoder = rows.encoder
        model, _ = self.surrogate.fit(x_all, y_all, _transform_targets)
        x, yt = model.x, model.y
        best = float(yt.min())
        pending = [r for r in rows.rows(history.running()) if r is not None]
        if pending:
            xp = np.array(pending)
            # Kriging believer, floored at the median: a busy point looks no better than average, so
            # parallel workers spread out instead of piling onto the same promising spot.
            believed, _ = model.predict(xp)
            model = model.condition_on(xp, np.maximum(believed, float(np.median(yt))))
        cands = self._candidates(encoder, x, yt, model, rng)
        small = (finite_size(encoder.space) or _ENUMERATE_CANDIDATES + 1) <= _ENUMERATE_CANDIDATES
        # every state counts as taken: tried, running, queued
        fresh = untried(encoder.space, taken_keys(encoder.space, [t.params for t in history.trials])) if small else None
        unseen = [r for r in (encoder.encode(c) for c in fresh or []) if r is not None]
        if unseen:  # a small finite space: score every untried configuration, not only the random ones
            cands = np.vstack([cands, np.array(unseen)])
        taken = rows.taken(history.trials)
        scores = screened_scores(model, cands, best, self.xi, cost, taken, max(self.n_polish, 1))
        if self.n_polish and encoder.continuous_cols.size:
            top = np.argsort(-scores, kind="stable")[: self.n_polish]
            polished = self._polish(model, encoder, cands[top], best, cost)
            cands = np.vstack([cands, polished])
            scores = np.concatenate([scores, self._score(model, polished, best, cost)])
        row = self._pick(cands, scores, taken)
        return encoder.decode(row, rng)

    def _score(
        self, model: GaussianProcess, cands: np.ndarray, best: float, cost: Penalty | None = None
    ) -> np.ndarray:
        mean, std = model.predict(cands)
        scores = log_expected_improvement(mean, std, best, self.xi)[0]
        if cost is not None:
            scores = scores - cost(cands)
        return np.where(np.isfinite(scores), scores, -np.inf)

    def _candidates(
        self,
        encoder: Encoder,
        x: np.ndarray,
        yt: np.ndarray,
        model: GaussianProcess,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Uniform points for global coverage plus perturbations of the best trials for local refinement.

        In a space of continuous parameters only, half as many uniform points: the polish moves the
        best of them to the acquisition's local optimum, so a coarser grid loses little; integer,
        ordinal and categorical dimensions get no such help and keep the full count.
        """
        continuous = encoder.continuous_cols.size == len(encoder.blocks)
        n_uniform = max(self.n_candidates // 2, 1) if continuous and self.n_polish else self.n_candidates
        uniform = encoder.random(n_uniform, rng)
        n_local = max(self.n_candidates // 2, 1)
        elite = x[np.argsort(yt, kind="stable")[: min(5, len(yt))]]
        local = elite[rng.integers(len(elite), size=n_local)].copy()
        cols = encoder.numeric_cols
        if cols.size:
            # Step sizes follow the fitted lengthscales: a dimension the model finds smooth gets wider moves.
            ls = np.clip(model.params.lengthscales[cols], 0.05, 1.0)
            step = rng.choice([0.05, 0.2, 0.6], size=(n_local, 1)) * ls
            mask = rng.random((n_local, cols.size)) < max(0.5, 1.0 / cols.size)
            mask[np.arange(n_local), rng.integers(cols.size, size=n_local)] = True
            local[:, cols] += mask * step * rng.standard_normal((n_local, cols.size))
        for b in encoder.blocks:
            if b.kind == ONEHOT:
                flip = rng.random(n_local) < 0.15
                fresh = np.eye(b.width)[rng.integers(b.width, size=n_local)]
                local[flip, b.start : b.start + b.width] = fresh[flip]
        return np.vstack([uniform, encoder.snap(local)])

    def _polish(
        self,
        model: GaussianProcess,
        encoder: Encoder,
        starts: np.ndarray,
        best: float,
        cost: Penalty | None = None,
    ) -> np.ndarray:
        """A short joint L-BFGS-B run on the continuous dims; discrete dims stay where the search put them."""
        cols = encoder.continuous_cols
        base = starts.copy()
        k = len(base)

        def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
            pts = base.copy()
            pts[:, cols] = flat.reshape(k, cols.size)
            mean, std, dmean, dstd = model.predict_with_grad(pts)
            val, dval_dmean, dval_dstd = log_expected_improvement(mean, std, best, self.xi)
            grad = dval_dmean[:, None] * dmean + dval_dstd[:, None] * dstd
            if cost is not None:
                penalty, dpenalty = cost.with_grad(pts)
                val, grad = val - penalty, grad - dpenalty
            # Each start is independent, so the sum's gradient is block-diagonal: one run polishes all.
            return -float(val.sum()), -grad[:, cols].ravel()

        res = optimize.minimize(
            objective,
            base[:, cols].ravel(),
            jac=True,
            method="L-BFGS-B",
            bounds=[(0.0, 1.0)] * (k * cols.size),
            options={"maxiter": _POLISH_ITERATIONS},
        )
        out = base.copy()
        if np.all(np.isfinite(res.x)):
            out[:, cols] = np.clip(res.x.reshape(k, cols.size), 0.0, 1.0)
        return out

    @staticmethod
    def _pick(cands: np.ndarray, scores: np.ndarray, taken: frozenset[bytes]) -> np.ndarray:
        """Best-scoring candidate that is not a configuration already tried, running or queued.

        Every candidate is considered, not only the top few: in a small discrete space thousands of
        candidates collapse onto the same handful of points. Only when every candidate is taken
        (a finite space fully tried) does the best one repeat. ``taken``: the rows of those
        configurations as ``rows.py`` keys them (rounded to 9 decimals, -0.0 as 0.0).
        """
        order = np.argsort(-scores, kind="stable")
        if taken:
            keys = np.round(cands, 9) + 0.0  # + 0.0: -0.0 is 0.0
            for i in order:
                if keys[i].tobytes() not in taken:
                    return cands[i]
        return cands[order[0]]
