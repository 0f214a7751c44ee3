"""BOHB's sampler: the model-based sampler fitted on one rung's results, not on mixed fidelities.

Under Hyperband most trials stop at low rungs, so their last values are early, noisy views of
what a configuration can do; a model fitted on all of them at once mixes fidelities. Here the
inner sampler sees the values every trial had at the highest rung that has enough results
(``min_points``, default one more than the dimensions), as BOHB does; until a rung has that many
the proposals are random.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from costtune.history import History, TrialState

if TYPE_CHECKING:
    import numpy as np

    from costtune.samplers.base import Sampler
    from costtune.schedulers import RungScheduler
    from costtune.space import SearchSpace


class RungModelSampler:
    uses_history = True

    def __init__(self, inner: Sampler, rungs: RungScheduler, *, min_points: int | None = None) -> None:
        self.inner = inner
        self.rungs = rungs
        self.min_points = min_points

    def rung_history(self, space: SearchSpace, history: History) -> History | None:
        """The history as seen at the highest rung with enough results; None while none has."""
        needed = self.min_points or len(space.names) + 2
        by_number = {t.number: t for t in history.trials}
        for level in reversed(self.rungs.levels()):
            results = self.rungs.results_at(level)
            if len(results) < needed:
                continue
            seen = [dataclasses.replace(by_number[n], value=v, state=TrialState.COMPLETE)
                    for n, v in results.items() if n in by_number]
            # Every other trial without a value: not an observation, but a configuration already
            # tried or running that the inner sampler must not propose again.
            others = [t if t.state == TrialState.RUNNING else dataclasses.replace(t, value=None)
                      for t in history.trials if t.number not in results]
            return History(history.metric, history.mode, tuple(seen + others), history.budget_micros)
        return None

    def suggest(self, space: SearchSpace, history: History, rng: np.random.Generator) -> dict[str, Any]:
        at_rung = self.rung_history(space, history)
        if at_rung is None:
            return space.sample(rng)
        return self.inner.suggest(space, at_rung, rng)
