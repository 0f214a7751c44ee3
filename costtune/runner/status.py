"""What a progress display reads while a sweep runs, and the small helpers around a trial's files."""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STDERR_TAIL_BYTES = 4000


@dataclass
class RunStatus:
    """Counters the controller keeps up to date as it goes (read by the progress line)."""

    finished: int = 0
    failed: int = 0
    running: int = 0
    launched: int = 0
    spend_micros: int = 0
    best_value: float | None = None
    best_trial: int | None = None
    stop_reason: str = ""
    preemptions: int = 0
    waste_micros: int = 0
    sim_seconds: float = 0.0  # virtual time the sweep took, when simulated


def write_header(trial_dir: Path, attempt: int, argv: tuple[str, ...], provider: str) -> None:
    """A line per attempt in the trial's logs, so `costtune logs` shows where each run began."""
    if provider == "simulated":
        return  # nothing is written by a simulated trial
    trial_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    for name in ("stdout.log", "stderr.log"):
        with open(trial_dir / name, "a", encoding="utf-8") as handle:
            handle.write(f"=== costtune attempt {attempt} at {stamp}: {shlex.join(argv)}\n")


def stderr_tail(trial_dir: Path) -> str:
    try:
        data = (trial_dir / "stderr.log").read_bytes()[-STDERR_TAIL_BYTES:]
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace").strip()


def short_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
