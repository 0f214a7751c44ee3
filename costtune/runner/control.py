"""What a controller does about requests from outside (the dashboard, ``Store.request_stop`` /
``Store.set_paused``): it reads them about once a wall-clock second, launches nothing while its
study is paused (running trials go on) and stops the trials it is asked to stop (booked
``stopped``, charged as usual)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

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
    _paused_words: str = ""  # why launches are paused, for the progress line ("" while not paused)

    if TYPE_CHECKING:  # the controller's own
        _warn: Callable[[str], None]
        _on_event: Callable[[str], None]

        def _guarded(self, live: LiveAttempt, step: Callable[[LiveAttempt], None]) -> None: ...

        def _check(self, live: LiveAttempt) -> None: ...

    def _obey(self) -> bool:
        """Read the requests when due; stop the trials asked to stop; True while launches are paused."""
        now = time.monotonic()
        if now - self._control_at < CONTROL_S:
            return self._paused
        self._control_at = now
        asked = self.store.controls(self.study.id)
        if asked.paused and not self._paused:
            self._paused_words = paused_words(self.study.name, asked.paused_by, asked.paused_at)
            self._warn(f"study {self.study.name!r} is {self._paused_words}")  # even with --quiet: it waits, not hung
        elif self._paused and not asked.paused:
            self._paused_words = ""
            self._on_event(f"study {self.study.name!r} resumed: launching again")
        self._paused = asked.paused
        for live in list(self._live.values()):
            if live.claimed.id in asked.stop and live.stop_reason is None:
                live.stop_reason = "stopped"
                live.decision = "stopped from the dashboard"
                self._guarded(live, self._check)
        return self._paused

    def _paused_note(self) -> str:
        """The progress line's note while paused ("" otherwise)."""
        return self._paused_words if self._paused else ""

    def _wait_while_paused(self) -> None:
        """Between groups of ticks (outside any transaction): a paused, idle controller sleeps a little."""
        if self._paused and not self._live:
            time.sleep(PAUSED_WAIT_S)
            self._control_at = float("-inf")


def paused_words(study: str, by: str | None, at: datetime | None) -> str:
    """``paused by dashboard:ana@lab for 127.0.0.1 at 2026-11-30 22:14 UTC: nothing new launches until ...``:
    why a run launches nothing, who paused it, when, and how to resume it."""
    when = ""
    if at is not None:
        moment = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
        when = f" at {moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    return (f"paused{' by ' + by if by else ''}{when}: nothing new launches until it is resumed (the dashboard's "
            f"'resume launches' button, or POST /api/v1/studies/{quote(study, safe='')}/resume with its token)")
