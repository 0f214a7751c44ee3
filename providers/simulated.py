"""The simulated provider: attempts are learning curves played out on a virtual clock.

Nothing runs for real. A workload callable says, for each step, the metric value reached and how
long the step took on the given instance type; the provider turns that into ``costtune:report``
lines that become readable at the virtual moment each step ends, billable time from launch, and
spot preemptions. A controller driving it jumps from one ``next_event_time()`` to the next, so a
10,000-trial sweep (or a cost forecast) takes seconds and every time in it is exact.

State is brought up to ``clock.now()`` lazily at each call, through one heap of pending events
for all live attempts; the provider never registers callbacks on the clock, so it works the same
whoever advances it. At equal times a step's end comes before a preemption, so a report due at the
very moment an attempt ends (completed, preempted or terminated) is still delivered.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from costtune.providers.base import FatalProviderError, LaunchRequest, Status
from costtune.providers.workload_loading import WORKLOAD_FIELD, Workload, load_workload  # noqa: F401  (load_workload: re-exported)

from costtune.clock import VirtualClock
from costtune.protocol import TimedReport, format_line

MARKETS = ("spot", "on-demand")
TERMINATED_EXIT_CODE = -15  # what a local trial stopped by SIGTERM reports


@dataclass(eq=False)
class SimHandle:
    """One simulated attempt; its fields are the provider's books, read them through ``poll``."""

    key: str
    tags: dict[str, str]
    params: dict[str, Any]
    instance_type: str
    market: str
    launched_at: float
    startup_end: float
    preempt_at: float | None  # None: never preempted
    started: bool = False  # start-up over, a step is under way
    step: int = 0  # the step under way (or the next one)
    step_end: float = math.inf
    step_value: float = 0.0
    ended_at: float | None = None
    exit_code: int | None = None
    preempted: bool = False
    error: str | None = None  # why the workload failed, when it did
    reports: list[tuple[int, float, float]] = field(default_factory=list)  # (step, value, time) of each step ended
    read: int = 0  # reports already handed out, as lines (output) or as reports (take_reports)
    heap_seq: int = -1  # the sequence number of this attempt's live heap entry

    def next_event(self) -> float:
        """The earliest moment its state changes (start-up end or step end, or preemption)."""
        own = self.step_end if self.started else self.startup_end
        return own if self.preempt_at is None else min(own, self.preempt_at)


class SimulatedProvider:
    name = "simulated"
    outlives_controller = False  # its instances live in this process's memory

    def __init__(
        self,
        clock: VirtualClock,
        workload: Workload,
        *,
        metric: str,
        max_steps: int,
        startup_seconds: float = 0.0,
        preemptions_per_hour: float = 0.0,
        seed: int = 0,
        preemption_trace: Sequence[float] | None = None,
    ) -> None:
        if not callable(workload):
            raise TypeError(f"workload must be callable, got {workload!r}")
        format_line(0, {metric: 0.0})  # a bad metric name fails here, not at the first report
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 0:
            raise ValueError(f"max_steps must be an integer >= 0, got {max_steps!r}")
        _check_seconds("startup_seconds", startup_seconds)
        _check_seconds("preemptions_per_hour", preemptions_per_hour)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        trace: list[float] | None = None
        if preemption_trace is not None:
            if preemptions_per_hour:
                raise ValueError("give preemptions_per_hour or preemption_trace, not both")
            trace = sorted(float(t) for t in preemption_trace)
            if any(not math.isfinite(t) for t in trace):
                raise ValueError(f"preemption_trace: times must be finite, got {list(preemption_trace)!r}")
        self.clock = clock
        self.workload = workload
        self.metric = metric
        self.max_steps = max_steps
        self.startup_seconds = float(startup_seconds)
        self.preemptions_per_hour = float(preemptions_per_hour)
        self.seed = seed
        self._trace = trace
        self._attempts: dict[str, SimHandle] = {}
        self._live: dict[str, SimHandle] = {}
        self._heap: list[tuple[float, int, SimHandle]] = []
        self._seq = itertools.count()
        self._changed: dict[str, SimHandle] = {}  # attempts something happened to since take_changed()
        self._woken = False  # advance(): an event that the controller must see at its moment fired
        self._synced_at: float | None = None  # clock time of the last _sync, None: an event may be due

    # -- the Provider protocol ---------------------------------------------------------------

    def launch(self, request: LaunchRequest, idempotency_key: str) -> SimHandle:
        """Hold an instance from now; the same key returns the same attempt, whatever the request."""
        if idempotency_key in self._attempts:
            return self._attempts[idempotency_key]
        self._sync()
        market = request.market or "on-demand"
        if market not in MARKETS:
            raise FatalProviderError(f"market: must be one of {', '.join(MARKETS)}, got {request.market!r}")
        now = self.clock.now()
        handle = SimHandle(
            key=idempotency_key, tags=dict(request.tags), params=dict(request.params or {}),
            instance_type=request.instance_type or "", market=market, launched_at=now,
            startup_end=now + self.startup_seconds,
            preempt_at=self._preemption_time(_draw_key(request, idempotency_key), now) if market == "spot" else None,
            step=max(0, request.start_step),
        )
        self._attempts[idempotency_key] = handle
        self._live[idempotency_key] = handle
        self._schedule(handle)
        self._synced_at = None  # its start-up may end at once
        return handle

    def poll(self, handle: SimHandle) -> Status:
        self._sync()
        end = handle.ended_at if handle.ended_at is not None else self.clock.now()
        return Status(
            running=handle.ended_at is None, exit_code=handle.exit_code,
            billable_ms=_ms(end - handle.launched_at), preempted=handle.preempted, error=handle.error,
        )

    def output(self, handle: SimHandle, timeout: float | None = None) -> Iterator[str]:
        """Report lines due by ``clock.now()`` not read yet; never blocks (``timeout`` is ignored).

        An empty read does not mean the attempt ended: ``poll`` says that.
        """
        del timeout
        self._sync()
        return self._unread(handle)

    def _unread(self, handle: SimHandle) -> Iterator[str]:
        while handle.read < len(handle.reports):
            handle.read += 1  # counted as read once handed out, even if the reader stops early
            step, value, _at = handle.reports[handle.read - 1]
            yield format_line(step, {self.metric: value})

    def take_reports(self, handle: SimHandle) -> list[TimedReport]:
        """What ``output`` would hand out now, as the reports ``protocol.parse_line`` makes of its
        lines, each with the billable milliseconds of the moment its step ended.

        The controller's fast path: a simulated sweep has one report per step, and writing each as
        a line only to parse it again was a large share of a forecast's time. Values are finite
        floats and the metric name was checked at construction, so the report is the same either way.
        """
        self._sync()
        start, handle.read = handle.read, len(handle.reports)
        metric, launched = self.metric, handle.launched_at
        return [TimedReport(step, {metric: value}, billable_ms=_ms(at - launched))
                for step, value, at in handle.reports[start:]]

    def terminate(self, handle: SimHandle) -> None:
        """Stop at the current virtual time; billable time ends here. Idempotent."""
        self._sync()
        if handle.ended_at is None:
            self._end(handle, self.clock.now(), TERMINATED_EXIT_CODE, preempted=False)

    def list_owned(self, tags: dict[str, str]) -> list[SimHandle]:
        self._sync()
        wanted = tags.items()
        return [h for h in self._live.values() if wanted <= h.tags.items()]

    # -- for an event-loop controller ----------------------------------------------------------

    def take_changed(self) -> list[SimHandle]:
        """Attempts that reported, ended or started a step since the last call (then forgets them).

        An event-loop controller with many instances looks only at these, not at every live one.
        """
        self._sync()
        changed = list(self._changed.values())
        self._changed.clear()
        return changed

    def advance(self, limit: float | None) -> None:
        """Move the clock on to the next moment the controller must look, but not past ``limit``.

        That moment is an attempt's end (completed, failed, preempted) or its first report; other
        step ends are played on the way (their reports wait, each with its own time, for the next
        read: ``take_reports``), so a controller wakes a few times per attempt instead of once per
        step. With no such event by ``limit`` the clock stops at ``limit`` (None: at the last event).
        Raises ValueError when ``limit`` is before ``clock.now()``.
        """
        now = self.clock.now()
        if limit is not None and limit < now:
            raise ValueError(f"advance: limit {limit!r} is before now {now!r}")
        self._sync()
        self._woken = False
        while True:
            self._drop_stale()
            if not self._heap or (limit is not None and self._heap[0][0] > limit):
                break
            at = self._heap[0][0]
            self.clock.advance_to(at)
            self._sync()
            if self._woken:
                return
        if limit is not None and limit > self.clock.now():
            self.clock.advance_to(limit)

    def next_event_time(self) -> float | None:
        """When anything next happens to a live attempt (start-up end, step end, preemption).

        Always later than ``clock.now()``; None when no attempt is live.
        """
        self._sync()
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    # -- internals -----------------------------------------------------------------------------

    def _preemption_time(self, key: str, now: float) -> float | None:
        """From the trace: its first time after launch. From the rate: launch + an exponential draw.

        The draw's generator is seeded by (seed, key), the key naming the trial and attempt numbers
        (``_draw_key``), so an attempt's fate depends neither on how many attempts were launched
        before it nor on what else the store holds.
        """
        if self._trace is not None:
            i = bisect_right(self._trace, now)
            return self._trace[i] if i < len(self._trace) else None
        if self.preemptions_per_hour <= 0:
            return None
        digest = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:16], "big")
        rng = np.random.default_rng([self.seed, digest])
        return now + float(rng.exponential(3600.0 / self.preemptions_per_hour))

    def _schedule(self, handle: SimHandle) -> None:
        seq = next(self._seq)
        handle.heap_seq = seq
        heapq.heappush(self._heap, (handle.next_event(), seq, handle))

    def _drop_stale(self) -> None:
        while self._heap and (self._heap[0][2].heap_seq != self._heap[0][1] or self._heap[0][2].ended_at is not None):
            heapq.heappop(self._heap)

    def _sync(self) -> None:
        """Play every event due by ``clock.now()``, in time order across attempts."""
        now = self.clock.now()
        if now == self._synced_at:
            return  # played up to this moment already, and nothing was launched since
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                self._synced_at = now
                return
            _, _, handle = heapq.heappop(self._heap)
            self._fire(handle)
            if handle.ended_at is None:
                self._schedule(handle)

    def _fire(self, handle: SimHandle) -> None:
        """Apply the attempt's earliest event; a step end at the preemption moment still reports."""
        self._changed[handle.key] = handle
        own = handle.step_end if handle.started else handle.startup_end
        if handle.preempt_at is not None and handle.preempt_at < own:
            self._end(handle, handle.preempt_at, None, preempted=True)
        elif not handle.started:
            handle.started = True
            self._begin_step(handle, own)
        else:
            handle.reports.append((handle.step, handle.step_value, own))
            if len(handle.reports) == 1:
                self._woken = True  # its first report: a trial waiting in its grace is judged now
            handle.step += 1
            self._begin_step(handle, own)

    def _begin_step(self, handle: SimHandle, at: float) -> None:
        if handle.step >= self.max_steps:
            self._end(handle, at, 0, preempted=False)
            return
        try:
            value, seconds = _call_workload(self.workload, handle.params, handle.step, handle.instance_type)
        except Exception as exc:  # the workload is the trial's code: it fails this attempt, not the sweep
            handle.error = f"workload {_name(self.workload)} raised at step {handle.step}: {type(exc).__name__}: {exc}"
            self._end(handle, at, 1, preempted=False)
            return
        handle.step_value = value
        handle.step_end = at + seconds

    def _end(self, handle: SimHandle, at: float, exit_code: int | None, *, preempted: bool) -> None:
        self._changed[handle.key] = handle
        self._woken = True
        handle.ended_at = at
        handle.exit_code = exit_code
        handle.preempted = preempted
        self._live.pop(handle.key, None)


def _draw_key(request: LaunchRequest, idempotency_key: str) -> str:
    """What seeds an attempt's preemption draw: its trial and attempt numbers when the request
    carries them (a controller's launches do, as tags), else the idempotency key."""
    trial, attempt = request.tags.get("trial"), request.tags.get("attempt")
    return f"trial {trial} attempt {attempt}" if trial is not None and attempt is not None else idempotency_key


def _call_workload(workload: Workload, params: dict, step: int, instance_type: str) -> tuple[float, float]:
    result = workload(params, step, instance_type)
    try:
        value, seconds = (float(x) for x in result)
    except (TypeError, ValueError):
        raise ValueError(
            f"workload {_name(workload)} must return (metric_value, seconds_for_step), got {result!r}"
        ) from None
    if not math.isfinite(value):
        raise ValueError(f"workload {_name(workload)}: metric value at step {step} must be finite, got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"workload {_name(workload)}: seconds at step {step} must be >= 0, got {seconds!r}")
    return value, seconds


def _name(fn: object) -> str:
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


def _ms(seconds: float) -> int:
    """Whole milliseconds, rounded so that 60 + 10 * 3 s bills exactly 90000 ms despite float noise."""
    return max(0, round(seconds * 1000))


def _check_seconds(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
