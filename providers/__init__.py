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
                  instance_types: Sequence[str] = (), user_data: Any = None, session: Any = None, store: Any = None,
                  server: Any = None, price_overrides: str | None = None, **remote: Any) -> Provider:
    """The provider a sweep names; a simulated one needs the sweep's ``simulation`` and a virtual clock.

    provider aws needs the sweep's ``resources.aws`` and either ``store`` (trials run by the worker
    agent reporting to the worker API on that store, with the sweep's ``server`` settings; ``remote``
    overrides RemoteProvider's timings) or, for the bare instance adapter, ``user_data``. With
    ``instance_types`` it asks EC2 whether they, the image, subnet, groups and zones exist first.

    Raises SpecError for an unknown provider or a resource EC2 does not know (naming the field);
    FatalProviderError for AWS credentials or permissions.
    """
    if name == "aws":
        from costtune.errors import SpecError

        if aws is None:
            raise SpecError("resources.provider", "provider aws needs the sweep's resources (region, image, ...)")
        provider: Any
        if store is not None:
            from costtune.providers.aws.workers import AwsWorkers

            from costtune.agent.userdata import Install
            from costtune.spec.server import ServerSettings

            settings = server or ServerSettings()
            options = {"heartbeat_s": settings.heartbeat_s, "grace_s": settings.stop_grace_s,
                       "describe_every_s": min(5.0, settings.heartbeat_s), **remote}
            provider = AwsWorkers(store, settings, aws, session=session, price_overrides=price_overrides,
                                  install=Install(command=aws.agent_command, requirement=aws.install), **options)
        else:
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
