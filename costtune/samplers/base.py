"""The one interface every search method implements."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from costtune.history import History
    from costtune.space import SearchSpace


@runtime_checkable
class Sampler(Protocol):
    """Proposes the next configuration.

    ``rng`` is handed in by the study (derived from the sampler seed and the trial number), so a
    sampler keeps no random state of its own and a seeded sweep proposes the same configurations
    whatever the worker count. Raise ``SamplerExhausted`` when nothing is left to propose.
    Grid samplers also set ``grid_index`` on what they return through ``suggest_indexed``.
    """

    def suggest(self, space: SearchSpace, history: History, rng: np.random.Generator) -> dict[str, Any]:
        ...
