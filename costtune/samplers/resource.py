"""Resource dimensions (instance type, market) in cost-aware Bayesian optimisation.

When the sweep searches the instance type or the market, the cost-aware sampler treats them as what
they are: they decide how fast and how dear a trial is, not what it learns. So the objective's GP is
fitted on the other parameters only (a trial's loss on a c5 and on a g4dn counts as the same
configuration's), the acquisition ranks a configuration by its expected improvement per dollar *on
its cheapest resource*, and the resource is then chosen for that configuration as the one whose
predicted cost is lowest, optimistically (mean - one standard deviation of the cost GP, so a type
the study knows little about still gets tried). The choice stays cost-driven when the cost weight
has cooled to 0: an instance 5x pricier and no faster never becomes a coin flip.

The cost GP (``cost_model``) sees the resource as one-hot columns next to the configuration, so a
per-type price x speed factor is learnt across configurations while a speed-up that only some
configurations get (a GPU for large matrices) is learnt as an interaction.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from costtune.samplers.cost_model import RESOURCE_PARAMS, CostPenalty
from costtune.samplers.encoding import Encoder

if TYPE_CHECKING:
    from costtune.space import SearchSpace

__all__ = ["RESOURCE_PARAMS", "ResourceCost", "resource_split"]

_OPTIMISM = 1.0  # standard deviations of the cost GP subtracted when choosing a resource


def resource_split(space: SearchSpace) -> tuple[SearchSpace, dict[str, tuple[Any, ...]]] | None:
    """(the space without resource dimensions, each resource dimension's choices); None when the space
    searches no resource or has nothing else (then there is no configuration to separate)."""
    from costtune.space import SearchSpace

    resources = {
        name: tuple(dist.options)
        for name, dist in space.items()
        if name in RESOURCE_PARAMS and getattr(dist, "options", None)
    }
    if not resources or len(resources) == len(space):
        return None
    return SearchSpace({n: d for n, d in space.items() if n not in resources}), resources


@dataclass(frozen=True)
class ResourceCost:
    """The cost GP seen from the configuration's side: the cheapest resource per configuration row.

    ``full``: the encoder of the whole space (configuration and resources); ``inner``: that of the
    space without resources; ``model``: the fitted log-cost penalty (alpha 1) on ``full`` rows;
    ``log_prices``: per resource combination (in ``combos`` order), the log price added to the model's
    prediction when it models hours rather than dollars (empty: it models dollars).
    """

    full: Encoder
    inner: Encoder
    model: CostPenalty
    resources: dict[str, tuple[Any, ...]]
    log_prices: tuple[float, ...] = ()

    @cached_property
    def combos(self) -> list[dict[str, Any]]:
        names = list(self.resources)
        return [dict(zip(names, values, strict=True)) for values in itertools.product(*self.resources.values())]

    @cached_property
    def _layout(self) -> tuple[np.ndarray, list[list[int]]]:
        """(the full-encoding column of each inner column, per combination the full columns it sets to 1)."""
        full_blocks = {b.name: b for b in self.full.blocks}
        cols: list[int] = []
        for b in self.inner.blocks:
            fb = full_blocks[b.name]
            cols.extend(range(fb.start, fb.start + fb.width))
        ones = [[full_blocks[n].start + full_blocks[n].options.index(v) for n, v in combo.items()]
                for combo in self.combos]
        return np.array(cols, dtype=int), ones

    def _all_rows(self, inner_rows: np.ndarray) -> np.ndarray:
        """(combos * m, full.dim): ``inner_rows`` (m, inner.dim) on every combination, combination-major,
        so one batched prediction covers every resource."""
        cols, ones = self._layout
        out = np.zeros((len(ones), len(inner_rows), self.full.dim))
        out[:, :, cols] = inner_rows
        for c, on in enumerate(ones):
            out[c, :, on] = 1.0
        return out.reshape(-1, self.full.dim)

    def _columns(self) -> np.ndarray:
        """For each inner column, its column in the full encoding."""
        return self._layout[0]

    def log_costs(self, inner_rows: np.ndarray, optimism: float = 0.0) -> np.ndarray:
        """(m, combos) predicted log dollars of each row on each resource combination, minus
        ``optimism`` standard deviations."""
        m, n_combos = len(inner_rows), len(self.combos)
        rows = self._all_rows(inner_rows)
        if optimism:
            mean, std = self.model.gp.predict(rows)
            logs = self.model.loc + self.model.scale * (mean - optimism * std)
        else:
            logs = self.model.log_cost(rows)
        logs = logs.reshape(n_combos, m).T
        if self.log_prices:
            logs = logs + np.array(self.log_prices)
        return logs

    def log_costs_with_grad(self, inner_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``log_costs(inner_rows)`` (m, combos) and its gradient (m, combos, inner.dim)."""
        m, n_combos = len(inner_rows), len(self.combos)
        mean, dmean = self.model.gp.predict_mean_with_grad(self._all_rows(inner_rows))
        logs = (self.model.loc + self.model.scale * mean).reshape(n_combos, m).T
        if self.log_prices:
            logs = logs + np.array(self.log_prices)
        grad = self.model.scale * dmean[:, self._layout[0]].reshape(n_combos, m, -1).transpose(1, 0, 2)
        return logs, grad

    def choose(self, inner_row: np.ndarray) -> dict[str, Any]:
        """The resource combination to run a configuration on: lowest optimistic predicted cost."""
        scores = self.log_costs(inner_row[None, :], optimism=_OPTIMISM)[0]
        scores = np.where(np.isfinite(scores), scores, np.inf)
        return self.combos[int(np.argmin(scores))]

    def penalty(self, alpha: float) -> CheapestPenalty:
        return CheapestPenalty(self, alpha)


@dataclass(frozen=True)
class CheapestPenalty:
    """``alpha * log cost`` of a configuration on its cheapest resource: what log EI is reduced by."""

    cost: ResourceCost
    alpha: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        value = self.alpha * self.cost.log_costs(x).min(axis=1)
        return np.where(np.isfinite(value), value, self.alpha * self.cost.model.loc)

    def floor(self) -> float:
        """A practical lower bound on ``self(x)``: the cost model's floor plus the lowest log price."""
        prices = self.cost.log_prices
        return self.cost.model.floor() / self.cost.model.alpha * self.alpha + (
            self.alpha * min(prices) if prices else 0.0)

    def with_grad(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logs, grads = self.cost.log_costs_with_grad(x)
        best = np.argmin(np.where(np.isfinite(logs), logs, np.inf), axis=1)
        pick = np.arange(len(x))
        return self.alpha * logs[pick, best], self.alpha * grads[pick, best]
