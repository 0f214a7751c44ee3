"""Who runs a trial, and whether that controller still lives.

A controller is named ``host:pid:start-ticks``: on the same host a dead pid (or a reused one,
which has a different start time) means the controller is gone at once; from another host we
only know its heartbeats, so it is gone once they stop for ``STALE_AFTER``.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from functools import cache

STALE_AFTER = timedelta(seconds=60)
HEARTBEAT_SECONDS = 5.0


def _start_ticks(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return fields[19]  # field 22 of stat: start time in clock ticks since boot
    except (OSError, IndexError):
        return None


@cache
def hostname() -> str:
    return socket.gethostname()


def controller_id() -> str:
    pid = os.getpid()
    return f"{hostname()}:{pid}:{_start_ticks(pid) or 0}"


def describe_owner(owner: str) -> str:
    """``pid 4242 on host-a`` for a controller named ``host-a:4242:<start ticks>``."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    return f"pid {pid} on {host}" if pid.isdigit() else owner


def is_alive(owner: str, heartbeat_at: datetime | None, now: datetime | None = None) -> bool:
    host, _, rest = owner.partition(":")
    pid_text, _, ticks = rest.partition(":")
    if host == hostname() and pid_text.isdigit():
        if not os.path.exists("/proc"):
            return _pid_exists(int(pid_text))
        return _start_ticks(int(pid_text)) == ticks
    now = now or datetime.now(UTC)
    if heartbeat_at is None:
        return False
    if heartbeat_at.tzinfo is None:
        heartbeat_at = heartbeat_at.replace(tzinfo=UTC)
    return now - heartbeat_at < STALE_AFTER


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
