"""Running the worker API: in the foreground (``costtune serve``) or on a thread beside a controller.

uvicorn's access log shows method, path and status only; tokens travel in a header (or a login
form's body) and are never written anywhere: a ``token=`` a client puts in a URL is logged as ``***``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from costtune.errors import InputError

if TYPE_CHECKING:
    from costtune.store import Store

_START_TIMEOUT_S = 20.0


def _missing_extra() -> InputError:
    return InputError("costtune serve needs the server extra: pip install 'costtune[server]'")


def _config(store: Store, host: str, port: int, *, access_log: bool, max_body: int | None,  # type: ignore[no-untyped-def]
            routes: Sequence[Any] = (), worker_api: bool = True):
    try:
        import uvicorn
        from starlette.applications import Starlette

        from costtune.server.app import MAX_BODY_BYTES, create_app
    except ImportError:
        raise _missing_extra() from None
    if worker_api:
        app = create_app(store, max_body=max_body or MAX_BODY_BYTES, extra_routes=routes)
    else:
        app = Starlette(routes=list(routes))
    config = uvicorn.Config(app, host=host, port=port, log_level="info" if access_log else "warning",
                            access_log=access_log, lifespan="off", server_header=False)
    _redact_access_log()
    return config


class _RedactTokens:
    """A logging filter: a token a client put in a URL query is written as ``token=***``."""

    def filter(self, record: Any) -> bool:
        from costtune.server.dashboard.auth import redact_query

        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


def _redact_access_log() -> None:
    import logging

    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _RedactTokens) for f in access.filters):
        access.addFilter(_RedactTokens())


def bind_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (not yet listening; ``serve`` listens on it), so a command can find
    out that it cannot listen there before it prints where it serves and with what token.
    Raises InputError (naming ``--bind`` and the address) when the address is in use or not this machine's."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a restart reuses the port
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        shown = f"[{host}]" if ":" in host else host
        raise InputError(f"--bind: cannot listen on {shown}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def serve(store: Store, host: str, port: int, *, access_log: bool = True, max_body: int | None = None,
          routes: Sequence[Any] = (), worker_api: bool = True, sock: socket.socket | None = None) -> None:
    """Serve the worker API (and ``routes`` beside it; only ``routes`` without ``worker_api``) until
    interrupted (KeyboardInterrupt / SIGTERM). ``sock``: the socket ``bind_socket`` bound (else the
    address is bound here). Raises InputError when the ``server`` extra is missing or the address
    cannot be bound."""
    config = _config(store, host, port, access_log=access_log, max_body=max_body, routes=routes, worker_api=worker_api)
    import uvicorn

    if sock is None:
        sock = bind_socket(host, port)
    server = uvicorn.Server(config)
    with contextlib.suppress(SystemExit):  # uvicorn's answer to an address it cannot use (it logged why)
        server.run(sockets=[sock])
    if not server.started:
        raise InputError(f"--bind: cannot listen on {host}:{port} (in use, or not an address of this machine)")


class BackgroundServer:
    """The worker API on a daemon thread (a controller's own, or a test's); ``url`` once started."""

    def __init__(self, store: Store, host: str = "127.0.0.1", port: int = 0, *, max_body: int | None = None,
                 routes: Sequence[Any] = (), worker_api: bool = True) -> None:
        config = _config(store, host, port, access_log=False, max_body=max_body, routes=routes, worker_api=worker_api)
        import uvicorn

        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # the thread's owner has them
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()), daemon=True,
                                        name="costtune-serve")
        self.host = host
        self.port = port

    def start(self) -> BackgroundServer:
        """Start and wait until it listens; InputError if it cannot."""
        self._thread.start()
        until = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > until:
                raise InputError(f"--bind: cannot listen on {self.host}:{self.port}")
            time.sleep(0.01)
        sockets = [s for srv in self._server.servers for s in srv.sockets]
        self.port = sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


__all__ = ["BackgroundServer", "bind_socket", "serve"]
