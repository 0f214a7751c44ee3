"""Providers run trial attempts: local processes now; simulated and cloud adapters plug in here.

Cloud SDKs are imported lazily inside their adapters, never by this package.
"""

from collections.abc import Sequence
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


def make_provider(name: str, *, simulation: Any = None, metric: str = "value", clock: Any = None, aws: Any = None,
                  instance_types: Sequence[str] = (), user_data: Any = None, session: Any = None) -> Provider:
    """The provider a sweep names; a simulated one needs the sweep's ``simulation`` and a virtual clock, an
    aws one the sweep's ``resources.aws`` and the user data that starts the worker agent on each instance;
    it asks EC2 whether ``instance_types``, the image, subnet, groups and zones exist before returning.

    Raises SpecError for an unknown provider or a resource EC2 does not know (naming the field);
    InputError for aws without user data (the agent is not built yet: `costtune run` cannot launch
    AWS trials); FatalProviderError for AWS credentials or permissions.
    """
    if name == "aws":
        from costtune.errors import InputError, SpecError

        if aws is None:
            raise SpecError("resources.provider", "provider aws needs the sweep's resources (region, image, ...)")
        if user_data is None:
            raise InputError("resources.provider: aws trials are not wired into `costtune run` yet: the worker "
                             "agent and `costtune serve` that each instance runs are still being built; "
                             "`costtune prices refresh --provider aws` and `costtune reap` work today")
        from costtune.providers.aws import AwsProvider

        provider = AwsProvider(aws, user_data=user_data, session=session)
        if instance_types:
            provider.validate(list(instance_types))
        return provider
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

    raise SpecError("resources.provider", "must be one of local, simulated, aws", name)
