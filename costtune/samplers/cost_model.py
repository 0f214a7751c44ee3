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
from costtune.samplers.rows import TrialRows, in_order
from costtune.samplers.surrogate import Surrogate

__all__ = ["MIN_COST_OBSERVATIONS", "RESOURCE_PARAMS", "CostPenalty", "cost_data", "cost_exponent",
           "cost_observations", "fit_cost_penalty"]

_logger = logging.getLogger(__name__)

MIN_COST_OBSERVATIONS = 3
# The cost fit gets its own fixed-seed generator: drawing from the suggestion's rng would shift every
# later draw, and then a cooled-off (alpha = 0) sampler would no longer propose what plain EI proposes.
_COST_FIT_SEED = 0x0C057

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
    trials = in_order(history.trials)
    # one pass per trial: this runs on every suggestion of a study that may hold 10,000 trials
    charged = [t for t in trials if t.state in _CHARGED and t.cost_micros > 0]
    steps = [_steps(t) for t in charged]
    complete = [t.state == TrialState.COMPLETE for t in charged]
    n_complete = sum(complete)
    full_steps = max((k or 0 for k, c in zip(steps, complete, strict=True) if c or not n_complete), default=0)
    startup: dict[tuple[Any, ...], float] | None = None  # made when a trial needs projecting
    finished: list[tuple[FrozenTrial, float]] = []
    running: list[tuple[FrozenTrial, float]] = []
    for t, k, done in zip(charged, steps, complete, strict=True):
        if done or (k is not None and k >= full_steps):
            cost = float(t.cost_micros)
        elif k is not None and full_steps > 0:
            if startup is None:
                startup = _startup_micros([u for u, ku in zip(charged, steps, strict=True) if ku])
            a = startup.get(_resource(t), 0.0)
            cost = a + (t.cost_micros - a) * full_steps / k
        elif t.state == TrialState.STOPPED and n_complete < MIN_COST_OBSERVATIONS:
            cost = float(t.cost_micros)
        else:
            continue
        if rate is not None:
            cost = cost / rate(t.params)
        (running if t.state == TrialState.RUNNING else finished).append((t, cost))
    if max_observations is not None:  # the most recent: prices and code change over a long study
        finished = finished[-max_observations:]
        running = running[-max_observations:]
    pairs = _encoded(finished, encode)
    n_finished = len(pairs)
    pairs += _encoded(running, encode)
    if not pairs:
        return np.zeros((0, 0)), np.zeros(0), 0
    rows, costs = zip(*pairs, strict=True)
    return np.array(rows), np.log(np.array(costs) / 1_000_000), n_finished


_CHARGED = (TrialState.COMPLETE, TrialState.STOPPED, TrialState.RUNNING)
# The names spec/resources.py gives a searched instance type and market (INSTANCE_PARAM, MARKET_PARAM).
RESOURCE_PARAMS = ("instance_type", "market")


def _steps(t: FrozenTrial) -> int | None:
    """Steps done: reports are numbered from 0."""
    return None if t.last_step is None or t.last_step < 0 else t.last_step + 1


def _resource(t: FrozenTrial) -> tuple[Any, ...]:
    """The trial's placement as a dictionary key; the type is part of it (1 and True differ)."""
    instance, market = t.params.get(RESOURCE_PARAMS[0]), t.params.get(RESOURCE_PARAMS[1])
    key = (type(instance), instance, type(market), market)
    try:
        hash(key)
    except TypeError:  # an unhashable choice value: its repr
        return (repr(instance), repr(market))
    return key


def _startup_micros(trials: list[FrozenTrial]) -> dict[tuple[Any, ...], float]:
    """Per resource, the intercept of billed cost against steps done (least squares), clipped."""
    groups: dict[tuple[str, ...], list[tuple[int, int]]] = {}
    for t in trials:
        groups.setdefault(_resource(t), []).append((_steps(t) or 0, t.cost_micros))
    out = {}
    for key, points in groups.items():
        k = np.array([p[0] for p in points], dtype=float)
        c = np.array([p[1] for p in points], dtype=float)
        if len(np.unique(k)) < 2:
            continue
        _, intercept = np.polyfit(k, c, 1)
        if math.isfinite(intercept):
            out[key] = float(min(max(intercept, 0.0), 0.9 * c.min()))
    return out


def _encoded(trials: list[tuple[FrozenTrial, float]],
             encode: Encode | TrialRows) -> list[tuple[np.ndarray, float]]:
    memo = isinstance(encode, TrialRows)
    rows = encode.rows(t for t, _ in trials) if memo else [encode(t.params) for t, _ in trials]  # type: ignore[union-attr, operator]
    return [(row, cost) for row, (_, cost) in zip(rows, trials, strict=True) if row is not None]


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
