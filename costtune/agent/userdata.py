"""The cloud-init user data that turns a fresh instance into one attempt's worker.

A bash script (cloud-init runs a user-data script that starts with ``#!``) that

1. writes the attempt's token to a file only root can read (a quoted here-document: the token is
   never echoed, never on a command line, and the script never runs with ``set -x``);
2. installs Python and costtune at the controller's version into ``/opt/costtune`` (or runs the
   ``install`` override: a wheel, a local checkout, or a costtune that is already there);
3. starts ``costtune agent``, which fetches the code bundle and the launch description, runs the
   sweep's ``setup`` lines, runs the trial and shuts the instance down when it ends.

Any failed step before the agent runs calls the shutdown command too (a bootstrap that fails never
leaves an instance running). The user data is readable on the instance itself (instance metadata,
root-only files under /var/lib/cloud) and to whoever may call ``DescribeInstanceAttribute``: the
token it holds opens only this attempt's routes, and only while the attempt is open.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

DEFAULT_HOME = "/var/lib/costtune"
DEFAULT_SHUTDOWN = "shutdown -h now"
_TOKEN_END = "COSTTUNE_TOKEN_END"


def controller_version() -> str:
    try:
        return version("costtune")
    except PackageNotFoundError:
        return "0+unknown"


@dataclass(frozen=True)
class Install:
    """How the instance gets costtune.

    ``command``: a costtune that is already installed (argv, e.g. ``["/opt/venv/bin/costtune"]``):
    nothing is installed. Else ``requirement`` is pip-installed into a new venv at ``venv``
    (default ``costtune[aws]==<the controller's version>``; a wheel's path or a checkout works too).
    """

    command: tuple[str, ...] = ()
    requirement: str | None = None
    venv: str = "/opt/costtune"


def _install_block(install: Install) -> tuple[str, str]:
    """(shell lines, the costtune command as shell words)."""
    if install.command:
        return "", " ".join(shlex.quote(part) for part in install.command)
    requirement = install.requirement or f"costtune[aws]=={controller_version()}"
    venv = shlex.quote(install.venv)
    lines = [
        "if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then",
        "  if command -v apt-get >/dev/null 2>&1; then",
        "    DEBIAN_FRONTEND=noninteractive apt-get update -q && "
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 python3-venv python3-pip",
        "  elif command -v dnf >/dev/null 2>&1; then dnf install -y -q python3 python3-pip",
        "  else yum install -y -q python3 python3-pip; fi",
        "fi",
        f"python3 -m venv {venv}",
        f"{venv}/bin/pip install --quiet --upgrade pip",
        f"{venv}/bin/pip install --quiet {shlex.quote(requirement)}",
    ]
    return "\n".join(lines) + "\n", f"{venv}/bin/costtune"


def render_user_data(*, server_url: str, attempt_id: int, token: str, install: Install = Install(),
                     home: str = DEFAULT_HOME, shutdown_command: str = DEFAULT_SHUTDOWN,
                     metadata_url: str | None = "http://169.254.169.254", grace_s: float = 60.0,
                     metadata_interval_s: float = 5.0, heading: str = "") -> str:
    """The user-data script for one attempt. ``token`` is written to ``<home>/token-<attempt_id>`` (mode 0600).

    Raises ValueError for a token that is not URL-safe text (``secrets.token_urlsafe`` gives one).
    """
    if not token or not all(c.isalnum() or c in "-_" for c in token):
        raise ValueError("token: must be URL-safe text (secrets.token_urlsafe)")
    install_lines, costtune = _install_block(install)
    token_file = f"{home}/token-{attempt_id}"
    workdir = f"{home}/attempt-{attempt_id}"
    agent = [costtune, "agent", "--server", shlex.quote(server_url), "--attempt", str(attempt_id),
             "--token-file", shlex.quote(token_file), "--workdir", shlex.quote(workdir),
             "--grace", repr(float(grace_s)), "--shutdown-command", shlex.quote(shutdown_command)]
    agent += (["--metadata-url", shlex.quote(metadata_url), "--metadata-interval", repr(float(metadata_interval_s))]
              if metadata_url else ["--no-metadata"])
    comment = "".join(f"# {line}\n" for line in heading.splitlines())
    return (
        "#!/bin/bash\n"
        f"# costtune worker for attempt {attempt_id} (costtune {controller_version()})\n{comment}"
        "set -euo pipefail\n"
        "umask 077\n"
        f"trap {shlex.quote(shutdown_command)} ERR\n"
        f"mkdir -p {shlex.quote(home)}\n"
        f"cat > {shlex.quote(token_file)} <<'{_TOKEN_END}'\n{token}\n{_TOKEN_END}\n"
        f"{install_lines}"
        "shopt -s execfail\n"
        f"exec {' '.join(agent)} || {{ {shutdown_command}; exit 1; }}\n"
    )


__all__ = ["DEFAULT_HOME", "DEFAULT_SHUTDOWN", "Install", "controller_version", "render_user_data"]
