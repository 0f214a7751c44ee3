"""Helpers for tests that watch real processes come and go (on the pytest path via pythonpath)."""

from __future__ import annotations

import time
from pathlib import Path


def gone(pid: int) -> bool:
    """The process has exited (a zombie nobody reaped yet counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


def wait_gone(pids: list[int], within: float = 30.0) -> list[int]:
    """The pids still alive after waiting up to ``within`` seconds (a generous cap, not a timing check)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and not all(gone(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if not gone(p)]
