"""Providers run trial attempts: local processes now; simulated and cloud adapters plug in here.

Cloud SDKs are imported lazily inside their adapters, never by this package.
"""

from typing import Any

from costtune.providers.base import (
    AttemptFacts,
    CapacityError,
    FatalProviderError,
    LaunchRequest,
    Provider,
    ProviderError,
    RetryableError,
    Status,
)

__all__ = ["AttemptFacts", "CapacityError", "FatalProviderError", "LaunchRequest", "Provider", "ProviderError",
           "RetryableError", "Status", "make_provider"]


def make_provider(name: str, *, simulation: Any = None, metric: str = "value", clock: Any = None) -> Provider:
    """The provider a sweep names; a simulated one needs the sweep's ``simulation`` and a virtual clock."""
    if name == "local":
        from costtune.providers.local import LocalProvider

        return LocalProvider()
    if name == "simulated":
        from costtune.providers.simulated import SimulatedProvider, load_workload

        from costtune.clock import VirtualClock

        if simulation is None:
            from costtune.errors import SpecError

            raise SpecError("resources.simulation", "is required for provider simulated")
        return SimulatedProvider(
            clock if clock is not None else VirtualClock(), load_workload(simulation.workload), metric=metric,
            max_steps=simulation.max_steps, startup_seconds=simulation.startup_seconds,
            preemptions_per_hour=simulation.preemptions_per_hour, seed=simulation.seed,
            preemption_trace=simulation.preemption_trace,
        )
    from costtune.errors import SpecError

    raise SpecError("resources.provider", "must be one of local, simulated", name)
