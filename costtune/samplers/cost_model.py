"""What a configuration will cost, for cost-aware Bayesian optimisation (EI per dollar with cost cooling).

When a study pays for every trial, a point that is slightly more promising but ten times dearer is a poor
buy. The sampler divides expected improvement by the predicted cost raised to ``alpha`` (CArBO, Lee et
al. 2020); ``alpha`` starts at ``cost_weight`` and cools to 0 as the budget is spent, so a study explores
cheaply first and ends as plain EI, free to pay for the expensive region if that is where the optimum is.

Cost is modelled as a GP on log dollars over the sampler's own unit-cube encoding, so a categorical such
as ``instance_type`` or a parameter that slows every step is learnt like any other effect. Everything
here returns ``None`` rather than raising: without a usable cost model the sampler is plain EI.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from costtune.history import FrozenTrial, History, TrialState
from costtune.samplers.gp import GaussianProcess
from costtune.samplers.surrogate import Surrogate

__all__ = ["MIN_COST_OBSERVATIONS", "CostPenalty", "cost_exponent", "cost_observations", "fit_cost_penalty"]

_logger = logging.getLogger(__name__)

MIN_COST_OBSERVATIONS = 3
# The cost fit gets its own fixed-seed generator: drawing from the suggestion's rng would shift every
# later draw, and then a cooled-off (alpha = 0) sampler would no longer propose what plain EI proposes.
_COST_FIT_SEED = 0x0C057

Encode = Callable[[dict[str, Any]], "np.ndarray | None"]


def cost_exponent(history: History, cost_weight: float, n_startup: int) -> float:
    """CArBO's cooled exponent: ``cost_weight * (B - spent) / (B - spent_at_init)`` clipped to [0, weight].

    ``spent_at_init`` is what had been spent by the time the model became usable: the cost of every trial
    numbered up to the ``n_startup``-th finished trial with a finite value (all spend while fewer exist).
    Without a budget there is nothing to cool towards, so the weight stays as configured.
    """
    budget = history.budget_micros
    if budget is None:
        return cost_weight
    spent = history.spent_micros
    remaining = budget - spent
    if remaining <= 0:
        return 0.0
    usable = sorted(t.number for t in history.completed() if _finite(t.value))
    if len(usable) >= n_startup:
        cutoff = usable[n_startup - 1]
        spent_at_init = sum(t.cost_micros for t in history.trials if t.number <= cutoff)
    else:
        spent_at_init = spent
    span = budget - spent_at_init
    if span <= 0:
        return 0.0
    return float(min(max(cost_weight * remaining / span, 0.0), cost_weight))


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def cost_observations(history: History, encode: Encode,
                      max_observations: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Encoded rows and log-dollar costs of finished trials that were charged.

    Trials a rung scheduler stopped early cost less than a full run of the same config would; they are
    used only until there are enough complete trials to learn from.
    """
    charged = [
        t
        for t in sorted(history.trials, key=lambda t: t.number)
        if t.state in (TrialState.COMPLETE, TrialState.STOPPED) and t.cost_micros > 0
    ]
    complete = [t for t in charged if t.state == TrialState.COMPLETE]
    pairs = _encoded(complete, encode)
    if len(pairs) < MIN_COST_OBSERVATIONS:
        pairs = _encoded(charged, encode)
    if max_observations is not None:
        pairs = pairs[-max_observations:]  # the most recent: prices and code change over a long study
    if not pairs:
        return np.zeros((0, 0)), np.zeros(0)
    rows, costs = zip(*pairs, strict=True)
    return np.array(rows), np.log(np.array(costs) / 1_000_000)


def _encoded(trials: list[FrozenTrial], encode: Encode) -> list[tuple[np.ndarray, int]]:
    out = []
    for t in trials:
        row = encode(t.params)
        if row is not None:
            out.append((row, t.cost_micros))
    return out


def _standardise(v: np.ndarray) -> np.ndarray:
    return (v - float(np.mean(v))) / (float(np.std(v)) or 1.0)


@dataclass(frozen=True)
class CostPenalty:
    """``alpha * E[log cost(x)]``: what the sampler subtracts from log EI."""

    gp: GaussianProcess
    loc: float
    scale: float
    alpha: float

    def log_cost(self, x: np.ndarray) -> np.ndarray:
        """Predicted mean of log dollars (the median cost, under the model's log-normal view)."""
        return self.loc + self.scale * self.gp.predict_mean(x)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        value = self.alpha * self.log_cost(x)
        # A non-finite prediction must not win or lose on its own: treat it as an average-cost point.
        return np.where(np.isfinite(value), value, self.alpha * self.loc)

    def with_grad(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, _, dmean, _ = self.gp.predict_with_grad(x)
        return self.alpha * (self.loc + self.scale * mean), self.alpha * self.scale * dmean


def fit_cost_penalty(
    history: History,
    encode: Encode,
    alpha: float,
    surrogate: Surrogate | None = None,
) -> CostPenalty | None:
    """The penalty to apply, or None when there is none to apply (alpha 0, too little data, equal costs).

    ``surrogate`` fits the GP (bounded training set, memoised hyperparameters); a default one when None.
    """
    if not alpha > 0.0:
        return None
    try:
        x, log_cost = cost_observations(history, encode)
        if len(log_cost) < MIN_COST_OBSERVATIONS:
            return None
        if float(np.std(log_cost)) < 1e-9:
            return None  # every trial cost the same: nothing to trade against
        fitter = surrogate or Surrogate()
        # Each training subset is standardised on its own, so the hyperparameter data (and the memo's
        # key) stays the same between refit points. The cost has no "better" end: the subset's first
        # third is simply the cheapest trials.
        gp, keep = fitter.fit(x, log_cost, _standardise, seed=_COST_FIT_SEED)
        loc, scale = float(np.mean(log_cost[keep])), float(np.std(log_cost[keep])) or 1.0
        if not (math.isfinite(loc) and math.isfinite(scale)):
            return None
        return CostPenalty(gp, loc, scale, float(alpha))
    except Exception:  # the cost model refines EI; losing it must never cost a suggestion
        _logger.warning("cost model could not be fitted; using plain expected improvement", exc_info=True)
        return None
