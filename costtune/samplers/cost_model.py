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
from costtune.samplers.cost_rows import RESOURCE_PARAMS, cost_columns_data
from costtune.samplers.gp import GaussianProcess
from costtune.samplers.rows import TrialRows, in_order
from costtune.samplers.surrogate import Surrogate

__all__ = ["MIN_COST_OBSERVATIONS", "RESOURCE_PARAMS", "CostPenalty", "cost_data", "cost_exponent",
           "cost_observations", "fit_cost_penalty"]

_logger = logging.getLogger(__name__)

MIN_COST_OBSERVATIONS = 3
# The cost fit gets its own fixed-seed generator: drawing from the suggestion's rng would shift every
# later draw, and then a cooled-off (alpha = 0) sampler would no longer propose what plain EI proposes.
_COST_FIT_SEED = 0x0C057
_DONE = (TrialState.COMPLETE, TrialState.STOPPED)  # what ``History.completed`` counts

Encode = Callable[[dict[str, Any]], "np.ndarray | None"]
Rate = Callable[[dict[str, Any]], float]  # params -> micro-dollars per hour of their placement


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
    spent_at_init = _spent_until_usable(in_order(history.trials), n_startup)
    if spent_at_init is None:
        spent_at_init = spent
    span = budget - spent_at_init
    if span <= 0:
        return 0.0
    return float(min(max(cost_weight * remaining / span, 0.0), cost_weight))


def _spent_until_usable(trials: tuple[FrozenTrial, ...], n_startup: int) -> int | None:
    """Micro-dollars of ``trials`` (by trial number) up to and including the ``n_startup``-th finished
    one with a finite value; None when there are fewer. Walks only that prefix: at 10,000 trials
    the whole history took milliseconds per suggestion."""
    if n_startup < 1:
        return None
    spent = found = 0
    for t in trials:
        spent += t.cost_micros
        if t.state in _DONE and t.value is not None and _finite(t.value):
            found += 1
            if found == n_startup:
                return spent
    return None


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def cost_observations(history: History, encode: Encode | TrialRows,
                      max_observations: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Encoded rows and log full-trial dollars of every charged trial; see ``cost_data``."""
    rows, log_cost, _ = cost_data(history, encode, max_observations)
    return rows, log_cost


def cost_data(history: History, encode: Encode | TrialRows, max_observations: int | None = None,
              rate: Rate | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """(rows, log dollars of a full trial, how many leading rows are finished trials).

    ``encode``: params -> row, or a ``TrialRows`` (the same rows, memoised by trial number).
    With ``rate`` (params -> micro-dollars per hour of the placement they run on), the values are
    log *hours* of a full trial instead: the price is known exactly, only the speed is learnt.

    Complete trials count as they were billed. A trial that is still running or was stopped early,
    after ``k`` of the ``K`` steps complete trials run, is projected to a full trial from what it has
    been billed so far: ``A + (cost - A) * K / k``, where ``A`` is the start-up bill of its instance
    type and market (the intercept of cost against steps over that resource's trials, clipped to
    [0, 0.9 x its cheapest trial]; 0 until it has trials at two step counts), so the model
    learns from every report, not only from finished trials. Trials without step counts cannot be
    projected: stopped ones are used only while there are fewer than three complete trials, running
    ones not at all. Finished trials come first (in trial order), then running ones, so the leading
    rows, on which the hyperparameters are fitted, do not move as running trials report.
    """
    return cost_columns_data(history.trials, encode, max_observations, rate, MIN_COST_OBSERVATIONS)


def _standardise(v: np.ndarray) -> np.ndarray:
    return (v - float(np.mean(v))) / (float(np.std(v)) or 1.0)


def _lowest_mean(gp: GaussianProcess) -> float:
    """min(targets, constant mean) - half their range: see ``CostPenalty.floor``."""
    if not len(gp.y):
        return -math.inf
    lo, hi = float(np.min(gp.y)), float(np.max(gp.y))
    return min(lo, gp.params.mean) - 0.5 * (hi - lo)


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

    def floor(self) -> float:
        """A lower bound, in practice, on ``self(x)`` anywhere: ``alpha`` times the lowest log cost the
        model can plausibly predict. The posterior mean interpolates the training targets and reverts
        to the constant mean away from them; it is taken not to undershoot the lowest of those by more
        than their whole range (a noisy GP's mean stays well inside it). Used to skip candidates that
        cannot win (``screen.py``); -inf when the model has no targets."""
        return self.alpha * (self.loc + self.scale * _lowest_mean(self.gp))

    def with_grad(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, dmean = self.gp.predict_mean_with_grad(x)
        return self.alpha * (self.loc + self.scale * mean), self.alpha * self.scale * dmean


def fit_cost_penalty(
    history: History,
    encode: Encode | TrialRows,
    alpha: float,
    surrogate: Surrogate | None = None,
    rate: Rate | None = None,
) -> CostPenalty | None:
    """The penalty to apply, or None when there is none to apply (alpha 0, too little data, equal costs).

    ``surrogate`` fits the GP (bounded training set, memoised hyperparameters); a default one when None.
    With ``rate`` the GP models log hours (``cost_data``) and the caller adds the log price.
    """
    if not alpha > 0.0:
        return None
    try:
        x, log_cost, n_finished = cost_data(history, encode, rate=rate)
        if len(log_cost) < MIN_COST_OBSERVATIONS:
            return None
        if float(np.std(log_cost)) < 1e-9:
            return None  # every trial cost the same: nothing to trade against
        fitter = surrogate or Surrogate()
        # Each training subset is standardised on its own, so the hyperparameter data (and the memo's
        # key) stays the same between refit points. The cost has no "better" end: the subset's first
        # third is simply the cheapest trials.
        gp, keep = fitter.fit(x, log_cost, _standardise, seed=_COST_FIT_SEED, stable=n_finished)
        loc, scale = float(np.mean(log_cost[keep])), float(np.std(log_cost[keep])) or 1.0
        if not (math.isfinite(loc) and math.isfinite(scale)):
            return None
        return CostPenalty(gp, loc, scale, float(alpha))
    except Exception:  # the cost model refines EI; losing it must never cost a suggestion
        _logger.warning("cost model could not be fitted; using plain expected improvement", exc_info=True)
        return None
