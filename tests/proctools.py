"""Helpers for tests that watch real processes come and go (on the pytest path via pythonpath)."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


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


def run_spawned(target: Callable[..., None], argsets: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Start one spawned process per argset, all released together by a shared barrier.

    ``target(*args, barrier, results)`` puts ("ok", detail) or ("error", traceback) on ``results``.
    Fails the test on any error or non-zero exit; returns the details in completion order.
    """
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(argsets))
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, barrier, results)) for args in argsets]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [detail for kind, detail in outcomes if kind == "error"]
    assert not errors, "\n".join(errors)
    assert [p.exitcode for p in procs] == [0] * len(procs)
    return [detail for _, detail in outcomes]


def silence_heartbeat(store: Any, trial_id: int, minutes: float = 10.0) -> None:
    """Make ``trial_id``'s controller look dead: its last heartbeat ``minutes`` ago (as a controller on
    another machine that stopped would leave it)."""
    from datetime import UTC, datetime, timedelta

    from sqlmodel import Session

    from costtune.store.models import TrialRow

    with Session(store.engine) as s:
        row = s.get(TrialRow, trial_id)
        assert row is not None, f"no trial row {trial_id}"
        row.heartbeat_at = datetime.now(UTC) - timedelta(minutes=minutes)
        s.add(row)
        s.commit()

