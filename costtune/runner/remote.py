"""What `costtune run` adds for trials on cloud instances: checks before the store opens, the sweep's
provider, and the worker API served beside the controller for as long as the sweep runs.

Agents on the instances reach the API at ``server.public_url``; `costtune run` listens on
``server.bind`` itself unless ``server.start: false`` says a `costtune serve` of the same store does.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from costtune.errors import SpecError

if TYPE_CHECKING:
    from costtune.spec import SweepSpec
    from costtune.store import Store


def _reachable(host: str) -> bool:
    """False for a bind address instances cannot use as it is (every interface, or loopback)."""
    if host in ("0.0.0.0", "::", "localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a host name: instances resolve it as we do


def check_public_url(spec: SweepSpec) -> None:
    """SpecError naming server.public_url when instances could not reach the worker API: no public
    URL and a loopback ``server.bind``. Offline: ``costtune plan`` says it too."""
    server = spec.server
    if server.public_url is None and not _reachable(server.host):
        raise SpecError("server.public_url", f"is required for provider aws: instances cannot reach the worker API "
                        f"at {server.host}:{server.port} (server.bind); give the URL they use, e.g. "
                        f"https://tune.example.org (TLS at a reverse proxy, see infra/)")


def check_aws_sweep(spec: SweepSpec) -> None:
    """Refuse what cannot work before anything is written: an API instances cannot reach (SpecError
    naming server.public_url), a type, image, subnet, group or zone EC2 does not know (SpecError), bad
    credentials (FatalProviderError)."""
    server = spec.server
    check_public_url(spec)
    if server.start:
        _can_listen(server.host, server.port)
    from costtune.providers.aws import AwsProvider

    assert spec.resources.aws is not None
    types = list(spec.resources.instance_choices or [spec.resources.instance_type])
    AwsProvider(spec.resources.aws).validate([t for t in types if t])


def _can_listen(host: str, port: int) -> None:
    """SpecError naming server.bind when this machine cannot listen there (in use, not its address)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise SpecError("server.bind", f"cannot listen on {host}:{port} ({exc.strerror}); pick a free port, or "
                            "server.start: false when a costtune serve of this store already serves "
                            "server.public_url", f"{host}:{port}") from None


def sweep_provider(spec: SweepSpec, store: Store, **remote: Any) -> Any:
    """The provider of ``spec`` (``remote`` overrides a cloud provider's timings: heartbeat_s, grace_s, ...)."""
    from costtune.providers import make_provider

    if spec.resources.provider != "aws":
        return make_provider(spec.resources.provider, simulation=spec.resources.simulation, metric=spec.metric)
    overrides = (spec.raw.get("resources") or {}).get("price_overrides")
    return make_provider("aws", aws=spec.resources.aws, store=store, server=spec.server, price_overrides=overrides,
                         **remote)


@contextmanager
def worker_api(spec: SweepSpec, store: Store, provider: Any, on_event: Callable[[str], None]) -> Iterator[None]:
    """Serve the worker API on ``server.bind`` while the block runs, when ``provider`` has agents to hear
    (a cloud provider) and ``server.start`` is true. Raises InputError when the address cannot be bound."""
    settings = getattr(provider, "settings", None)
    if settings is None or not spec.server.start:
        yield
        return
    from costtune.server.run import BackgroundServer
    from costtune.store import Store as StoreClass

    api_store = StoreClass(store.url)  # its own connections: requests never wait on the controller's batch
    try:
        server = BackgroundServer(api_store, settings.host, settings.port).start()
        try:
            on_event(f"worker API listening on {server.url}; agents use {settings.url}")
            yield
        finally:
            server.stop()
    finally:
        api_store.close()


__all__ = ["check_aws_sweep", "sweep_provider", "worker_api"]
