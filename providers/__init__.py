"""Providers run trial attempts: local processes now; simulated and cloud adapters plug in here.

Cloud SDKs are imported lazily inside their adapters, never by this package.
"""

from costtune.providers.base import (
    CapacityError,
    FatalProviderError,
    LaunchRequest,
    Provider,
    ProviderError,
    RetryableError,
    Status,
)

__all__ = ["CapacityError", "FatalProviderError", "LaunchRequest", "Provider", "ProviderError",
           "RetryableError", "Status", "make_provider"]


def make_provider(name: str) -> Provider:
    if name == "local":
        from costtune.providers.local import LocalProvider

        return LocalProvider()
    from costtune.errors import SpecError

    raise SpecError("resources.provider", "must be one of local", name)
