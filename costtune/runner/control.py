"""What a controller does about requests from outside (the dashboard, ``Store.request_stop`` /
``Store.set_paused``): it reads them about once a wall-clock second, launches nothing while its
study is paused (running trials go on) and stops the trials it is asked to stop (booked
``stopped``, charged as usual)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from costtune.runner.attempts import LiveAttempt
    from costtune.store import Store
    from costtune.study import Study

CONTROL_S = 1.0  # wall seconds between reads of the study's requests
PAUSED_WAIT_S = 0.25  # a paused controller with nothing running waits this long between looks


class Control:
    """Mixed into ``SweepController``; uses its fields."""

    store: Store
    study: Study
    _live: dict[int, LiveAttempt]
    _control_at: float = float("-inf")
    _paused: bool = False

    if TYPE_CHECKING:  # the controller's own
        def _guarded(self, live: LiveAttempt, step: Callable[[LiveAttempt], None]) -> None: ...

        def _check(self, live: LiveAttempt) -> None: ...

    def _obey(self) -> bool:
        """Read the requests when due; stop the trials asked to stop; True while launches are paused."""
        now = time.monotonic()
        if now - self._control_at < CONTROL_S:
            return self._paused
        self._control_at = now
        asked = self.store.controls(self.study.id)
        self._paused = asked.paused
        for live in list(self._live.values()):
            if live.claimed.id in asked.stop and live.stop_reason is None:
                live.stop_reason = "stopped"
                live.decision = "stopped from the dashboard"
                self._guarded(live, self._check)
        return self._paused

    def _wait_while_paused(self) -> None:
        """Between groups of ticks (outside any transaction): a paused, idle controller sleeps a little."""
        if self._paused and not self._live:
            time.sleep(PAUSED_WAIT_S)
            self._control_at = float("-inf")
