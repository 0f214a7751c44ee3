"""Injectable time: the controller asks a ``Clock`` instead of the ``time`` module.

With :class:`WallClock` it runs in real time; with :class:`VirtualClock` a simulated sweep jumps
straight from one event to the next, so hours of instance time pass in microseconds and tests can
assert exact times.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale; only differences mean anything."""
        ...

    def sleep(self, seconds: float) -> None: ...


class WallClock:
    """Real time: monotonic, so a system clock step never makes billable time negative."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


@dataclass(order=True)
class Timer:
    """A callback scheduled on a :class:`VirtualClock`; ``cancel()`` keeps it from firing."""

    when: float
    seq: int
    fn: Callable[[], object] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    """Simulated time that only moves when told to, firing scheduled callbacks on the way.

    Time never passes a callback without firing it: ``advance_to``, ``run_until`` and ``sleep`` all
    fire every callback due by the target time, in time order (ties in scheduling order), with
    ``now()`` equal to the callback's own time while it runs. Callbacks may schedule more callbacks.
    """

    def __init__(self, start: float = 0.0) -> None:
        _check_time("start", start)
        self._now = float(start)
        self._heap: list[Timer] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        """Advance by ``seconds`` at once (negative is an error, as time never runs backwards)."""
        _check_time("seconds", seconds)
        if seconds < 0:
            raise ValueError(f"sleep: seconds must be >= 0, got {seconds!r}")
        self.run_until(self._now + seconds)

    def advance_to(self, t: float) -> None:
        """Move to time ``t``, firing what is due; ValueError if ``t`` is in the past."""
        self.run_until(t)

    def run_until(self, t: float) -> None:
        _check_time("t", t)
        if t < self._now:
            raise ValueError(f"virtual clock cannot go backwards: now {self._now!r}, asked for {t!r}")
        while self._heap and self._heap[0].when <= t:
            timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            self._now = timer.when
            timer.fn()
        self._now = float(t)

    def call_at(self, t: float, fn: Callable[[], object]) -> Timer:
        """Schedule ``fn`` at time ``t`` (not in the past); it fires on the next advance reaching ``t``."""
        _check_time("t", t)
        if t < self._now:
            raise ValueError(f"call_at: time {t!r} is in the past (now {self._now!r})")
        timer = Timer(float(t), next(self._seq), fn)
        heapq.heappush(self._heap, timer)
        return timer

    def next_event_time(self) -> float | None:
        """When the earliest pending callback is due, None when nothing is scheduled."""
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0].when if self._heap else None


def _check_time(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")


def iso(epoch_s: int | float | None) -> str | None:
    """Epoch seconds -> ``YYYY-MM-DDTHH:MM:SSZ`` (UTC), as JSON and messages show times; None stays None."""
    if epoch_s is None:
        return None
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
