"""``costtune serve`` (the worker API) and ``costtune agent`` (what runs on an instance)."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import click

from costtune.cli.common import FiniteFloatRange, db_option, err_console, handled, open_store
from costtune.errors import InputError


@click.command("serve")
@click.option("--bind", default="127.0.0.1:8470", show_default=True, metavar="HOST:PORT",
              help="Address to listen on (0.0.0.0:8470 for every interface; put TLS in front, see infra/).")
@db_option
@click.option("--quiet", is_flag=True, help="No access log.")
@click.option("--no-dashboard", is_flag=True, help="Serve the worker API only, not the dashboard's pages.")
@click.option("--public-read", is_flag=True,
              help="Dashboard: let anyone who reaches the address read without the token.")
@handled
def serve(bind: str, db: str | None, quiet: bool, no_dashboard: bool, public_read: bool) -> None:
    """Serve the worker API that agents on instances talk to, and the dashboard, until interrupted."""
    from costtune.cli.dashboard import dashboard_routes, parse_bind_option

    host, port = parse_bind_option(bind)
    from costtune.server.run import bind_socket
    from costtune.server.run import serve as run_server

    sock = bind_socket(host, port)  # before the store, the banner and the token: a busy port says so, nothing else
    port = sock.getsockname()[1]  # the port it got (--bind HOST:0)
    store = open_store(db, create=True)
    err_console.print(f"costtune serve: worker API on http://{host}:{port} (store {store.display_url})",
                      highlight=False)
    routes = [] if no_dashboard else dashboard_routes(store, host, port, public_read=public_read)
    run_server(store, host, port, access_log=not quiet, routes=routes, sock=sock)


def _read_token(path: str) -> str:
    try:
        info = os.stat(path)
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise InputError(f"--token-file: cannot read {path!r}: {exc.strerror}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        err_console.print(f"warning: --token-file {path!r} can be read by others; chmod 600 it", highlight=False)
    if not token:
        raise InputError(f"--token-file: {path!r} is empty")
    return token


@click.command("agent")
@click.option("--server", required=True, metavar="URL", help="The worker API (server.public_url).")
@click.option("--attempt", required=True, type=click.IntRange(min=1), help="The attempt this instance runs.")
@click.option("--token-file", required=True, metavar="FILE", help="A file holding the attempt's token (mode 600).")
@click.option("--workdir", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Where the code bundle (code/) and the trial's files (trial/) go.")
@click.option("--shutdown-command", default="", metavar="SHELL",
              help="Run when the attempt is over (on an instance: 'shutdown -h now'); none by default.")
@click.option("--metadata-url", default="http://169.254.169.254", show_default=True, metavar="URL",
              help="Instance metadata service to watch for a spot interruption notice.")
@click.option("--no-metadata", is_flag=True, help="Watch no metadata service (not on a cloud instance).")
@click.option("--metadata-interval", default=5.0, show_default=True, type=FiniteFloatRange(min=0.05),
              help="Seconds between looks at the metadata service.")
@click.option("--grace", default=60.0, show_default=True, type=FiniteFloatRange(min=0),
              help="Seconds between SIGTERM and SIGKILL when the trial is stopped (its time to checkpoint).")
@click.option("--lost-after", type=FiniteFloatRange(min=0.1), default=None,
              help="Seconds without reaching the controller before the trial is ended (default: the server's).")
@handled
def agent(server: str, attempt: int, token_file: str, workdir: str, shutdown_command: str, metadata_url: str,
          no_metadata: bool, metadata_interval: float, grace: float, lost_after: float | None) -> None:
    """Run one attempt of a trial on this machine for a controller's worker API, then shut down."""
    from costtune.agent.worker import Agent, AgentOptions

    logging.basicConfig(level=logging.INFO, format="%(asctime)s costtune agent: %(message)s", stream=sys.stderr)
    try:
        token = _read_token(token_file)
    except InputError:
        if shutdown_command:  # on an instance: never left running because the agent could not start
            subprocess.run(shutdown_command, shell=True, check=False, stdin=subprocess.DEVNULL)
        raise
    options = AgentOptions(server=server, attempt=attempt, token=token,
                           workdir=Path(workdir).resolve(), shutdown_command=shutdown_command,
                           metadata_url=None if no_metadata else metadata_url, metadata_interval_s=metadata_interval,
                           grace_s=grace, lost_after_s=lost_after)
    code = Agent(options).run()
    sys.exit(0 if code == 0 else 1)
