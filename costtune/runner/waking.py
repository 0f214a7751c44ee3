"""When the controller's loop looks again, and at which attempts.

On a wall clock every tick looks at every live attempt, then sleeps ``POLL_S``. On a virtual clock
(the simulator) a tick looks only at the attempts that changed or reached a deadline, and the
clock then jumps to the next moment that matters: an attempt's first report, end or preemption,
or a deadline (a rung, a reservation used up, a time limit); the step ends between are played on
the way and their reports wait, each with its own time. Ties at one moment are taken in launch
order, so the outcome does not depend on how the events were delivered.
"""

from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from costtune.clock import Clock
    from costtune.providers.base import Provider
    from costtune.runner.attempts import LiveAttempt
    from costtune.runner.status import RunStatus

POLL_S = 0.05  # wall-clock pause between ticks


class Waking:
    """Mixed into ``SweepController``; uses its fields."""

    provider: Provider
    clock: Clock
    virtual: bool
    status: RunStatus
    _live: dict[int, LiveAttempt]
    _by_key: dict[str, LiveAttempt]
    _deadlines: list[tuple[float, int, int, int]]
    _seq: itertools.count
    _limit_ms: int | None
    _stopping: str | None
    _halt: str | None

    def _due(self) -> list[LiveAttempt]:
        """The attempts to look at this tick: all of them, or on a simulator only those that changed
        or reached a deadline (with 100 instances, most have nothing new at any one moment)."""
        take = getattr(self.provider, "take_changed", None)
        if take is None or self._stopping or self._halt:
            # every attempt is looked at; deadlines now due are spent, or the simulator's clock would stay
            # at them (``_advance`` aims at the heap's first deadline) and the loop would spin forever
            now = self.clock.now()
            while self._deadlines and self._deadlines[0][0] <= now:
                heapq.heappop(self._deadlines)
            return list(self._live.values())
        # A stop decided for an attempt outside its own look (a policy's stop-running threshold, while another
        # attempt was booked) is carried out at this same moment, as ``_advance`` expects: it waits for that.
        due = {live.attempt_id: live for live in self._live.values() if live.stop_reason}
        for handle in take():
            live = self._by_key.get(handle.key)
            if live is not None:
                due[live.attempt_id] = live
        now = self.clock.now()
        while self._deadlines and self._deadlines[0][0] <= now:
            _t, _seq, attempt_id, ms = heapq.heappop(self._deadlines)
            live = self._live.get(attempt_id)
            if live is not None and ms in (live.deadline_ms, self._limit_ms):
                due[attempt_id] = live
        return sorted(due.values(), key=lambda live: live.attempt_id)  # ties at one moment: launch order

    def _watch_deadlines(self, live: LiveAttempt) -> None:
        """Wake the loop when ``live`` reaches its deadline (and its time limit)."""
        for ms in (live.deadline_ms, self._limit_ms):
            if ms is not None:
                heapq.heappush(self._deadlines, (live.launched_at + ms / 1000, next(self._seq), live.attempt_id, ms))

    def _advance(self) -> None:
        if not self.virtual:
            self.clock.sleep(POLL_S)
            return
        for live in self._live.values():
            if live.stop_reason:
                return  # a stop decided this tick is carried out at this same moment
        while self._deadlines and self._deadlines[0][2] not in self._live:
            heapq.heappop(self._deadlines)  # its attempt ended
        deadline = self._deadlines[0][0] if self._deadlines else None
        advance = getattr(self.provider, "advance", None)
        if advance is not None and not (self._stopping or self._halt):
            # The simulator plays quiet step ends on the way to what matters. While stopping, every
            # attempt is looked at from its next step end on, as on a step-by-step clock.
            advance(None if deadline is None else max(deadline, self.clock.now()))
            self.status.sim_seconds = self.clock.now()
            return
        times = [t for t in (self.provider.next_event_time(),) if t is not None]  # type: ignore[attr-defined]
        if deadline is not None:
            times.append(deadline)
        if times:
            self.clock.advance_to(max(min(times), self.clock.now()))  # type: ignore[attr-defined]
            self.status.sim_seconds = self.clock.now()
