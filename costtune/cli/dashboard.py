"""``costtune dashboard``: the web dashboard over a store (pages, ``/api/v1``), until interrupted."""

from __future__ import annotations

import os
from typing import Any

import click

from costtune.cli.common import db_option, err_console, handled, open_store
from costtune.errors import InputError, SpecError

DEFAULT_BIND = "127.0.0.1:8471"


def dashboard_routes(store: Any, host: str, port: int, *, public_read: bool) -> list[Any]:
    """The dashboard's routes over ``store`` and the lines telling the user where and with what token.

    The token is ``COSTTUNE_DASHBOARD_TOKEN`` when set, else a new random one printed on stderr.
    Reading needs no token on a loopback bind or with ``public_read``. Raises InputError without
    the server extra."""
    try:
        from costtune.server.dashboard.app import routes
        from costtune.server.dashboard.auth import ENV, Access, is_loopback, new_token
    except ImportError:
        raise InputError("costtune dashboard needs the server extra: pip install 'costtune[server]'") from None
    from costtune.store.audit import current_actor

    given = os.environ.get(ENV, "").strip()
    token = given or new_token()
    open_read = public_read or is_loopback(host)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    err_console.print(f"costtune dashboard on {url} (store {store.display_url})", highlight=False)
    if given:
        err_console.print(f"actions need the token in {ENV}", highlight=False)
    else:
        err_console.print(f"actions need this token (set {ENV} to choose your own): {token}", highlight=False)
        err_console.print(f"open with the token: {url}#token={token}", highlight=False)
    if not open_read:
        err_console.print(f"reading needs the token too (not a loopback bind): open {url}#token=TOKEN, or paste "
                          "it in the page's token box (a POST to /login), or use --public-read", highlight=False)
    return routes(store, Access(token=token, open_read=open_read), actor=f"dashboard:{current_actor()}")


def parse_bind_option(bind: str) -> tuple[str, int]:
    from costtune.spec.server import parse_bind

    try:
        return parse_bind(bind, "--bind")
    except SpecError as exc:
        raise InputError(str(exc)) from None


@click.command("dashboard", short_help="Serve the web dashboard: studies, costs, charts, money, live.")
@db_option
@click.option("--bind", default=DEFAULT_BIND, show_default=True, metavar="HOST:PORT",
              help="Address to listen on; off this machine (0.0.0.0:8471) reading needs the token too.")
@click.option("--public-read", is_flag=True, help="Let anyone who reaches the address read without the token.")
@click.option("--quiet", is_flag=True, help="No access log.")
@handled
def dashboard(db: str | None, bind: str, public_read: bool, quiet: bool) -> None:
    """Serve the web dashboard: studies, leaderboards with cost, charts, money and what runs now, live.

    Actions (enqueue, stop a trial, pause/resume launches, export) need the token printed at start
    (or COSTTUNE_DASHBOARD_TOKEN). The same pages are served by `costtune serve` beside the worker API.
    """
    host, port = parse_bind_option(bind)
    from costtune.server.run import bind_socket
    from costtune.server.run import serve as run_server

    sock = bind_socket(host, port)  # before the store, the banner and the token: a busy port says so, nothing else
    port = sock.getsockname()[1]  # the port it got (--bind HOST:0)
    store = open_store(db, create=True)
    routes = dashboard_routes(store, host, port, public_read=public_read)
    run_server(store, host, port, access_log=not quiet, routes=routes, worker_api=False, sock=sock)
