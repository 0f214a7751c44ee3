"""Schedulers decide, on each report, whether a trial runs on.

FIFO lets every trial run to its end. The dollar-rung schedulers (successive halving, Hyperband,
ASHA) implement the same interface: they read the trial's spend and the history of its peers.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol

from costtune.errors import SpecError
from costtune.history import FrozenTrial, History


class Decision(StrEnum):
    CONTINUE = "continue"
    STOP = "stop"


class Scheduler(Protocol):
    def on_report(self, trial: FrozenTrial, history: Callable[[], History]) -> Decision:
        """``history`` is a callable so schedulers that need no peers never pay for a read."""
        ...


class FifoScheduler:
    def on_report(self, trial: FrozenTrial, history: Callable[[], History]) -> Decision:
        return Decision.CONTINUE


def make_scheduler(cfg: dict[str, Any] | None) -> Scheduler:
    kind = (cfg or {}).get("type", "fifo")
    if kind == "fifo":
        return FifoScheduler()
    raise SpecError("scheduler.type", "must be one of fifo", kind)
