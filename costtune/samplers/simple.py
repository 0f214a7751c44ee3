"""The samplers that need no model: random, grid and manual."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from costtune.errors import SamplerExhausted

if TYPE_CHECKING:
    import numpy as np

    from costtune.history import History
    from costtune.space import GridPlan, SearchSpace


class RandomSampler:
    """Independent draws from each parameter's distribution; reproducible through the rng."""

    uses_history = False  # so a claim need not read the study's trials

    def suggest(self, space: SearchSpace, history: History, rng: np.random.Generator) -> dict[str, Any]:
        return space.sample(rng)


class GridSampler:
    """Every combination of the Cartesian product, each exactly once.

    The next combination is the lowest grid index no trial of the study holds yet; the store
    hands it out under the study's lock and keeps (study, grid_index) unique, so parallel
    workers and restarts never repeat one.
    """

    def __init__(self, points: int | None = None) -> None:
        self.points = points
        self._plans: dict[SearchSpace, GridPlan] = {}  # a plan per space: proposals must not rebuild it

    def suggest_indexed(
        self, space: SearchSpace, history: History, rng: np.random.Generator
    ) -> tuple[dict[str, Any], int]:
        plan = self._plans.get(space)
        if plan is None:
            plan = self._plans[space] = space.grid(self.points)
        used = history.used_grid_indices()
        for index in range(plan.size):
            if index not in used:
                return plan.config(index), index
        raise SamplerExhausted("every grid combination has been tried")

    def suggest(self, space: SearchSpace, history: History, rng: np.random.Generator) -> dict[str, Any]:
        return self.suggest_indexed(space, history, rng)[0]


class ManualSampler:
    """Proposes nothing itself: a manual sweep runs exactly the configurations enqueued."""

    def suggest(self, space: SearchSpace, history: History, rng: np.random.Generator) -> dict[str, Any]:
        raise SamplerExhausted("a manual sweep runs only its enqueued configurations")
