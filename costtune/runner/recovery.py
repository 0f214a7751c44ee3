"""What the controller does at the edges of a run: pick up after a dead controller, let go on Ctrl-C.

On start, before anything new is claimed or launched, it settles what controllers that died left
(``costtune.runner.settle``: stop their strays and wait, close their open attempts billed from
each resource's own record, re-queue their trials, settle their reservations), sets the study's
cap in the ledger and replays stored reports into the rung scheduler. On Ctrl-C (or SIGTERM) it
stops what runs and books it the same way.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from costtune.errors import CosttuneError, StoreError
from costtune.history import TrialState
from costtune.runner.settle import owned_strays, scope_tags, settle_dead
from costtune.schedulers.replay import replay_rungs

if TYPE_CHECKING:
    from costtune.providers.base import Provider
    from costtune.runner.attempts import LiveAttempt
    from costtune.runner.status import RunStatus
    from costtune.schedulers import RungScheduler
    from costtune.spec import SweepSpec
    from costtune.store import Store
    from costtune.study import Study

log = logging.getLogger(__name__)
_KILL_WAIT_S = 2.0  # after a kill without grace, wait at most this long before booking


class Recovery:
    """Mixed into ``SweepController``; uses its fields, keeps none of its own but the tag cache."""

    spec: SweepSpec
    study: Study
    store: Store
    provider: Provider
    rungs: RungScheduler | None
    scope: str
    status: RunStatus
    _live: dict[int, LiveAttempt]
    _tags: dict[str, str] | None
    _max_trials: int | None
    _failures_in_a_row: int
    _streak_before: int
    _unreported_before: int
    _first_ms_before: dict[str | None, list[int]]
    _failure_streak: Callable[[], int]
    _on_event: Callable[[str], None]
    virtual: bool

    def _finish(self, live: LiveAttempt, status: Any) -> None: ...

    def _read(self, live: LiveAttempt, lines: Any) -> None: ...

    def _trial_limit(self) -> int | None: ...

    def _unreported_earlier(self) -> int:
        """Earlier attempts of the study stopped without one report after spending at least half this run's top
        rung's money, while no attempt of the study ever reported; 0 otherwise (a raised max_usd starts afresh)."""
        if self.rungs is None or any(self._first_ms_before.values()):
            return 0
        top = max(self.rungs.levels(), default=0)  # max_usd: every bracket's ladder ends there
        if top <= 0:
            return 0
        # half: the verdict comes when the spend reaches the top rung, in billed granules (a raised max_usd,
        # doubled or more, counts none of them)
        return sum(2 * c >= top for c in self.store.unreported_costs(self.study.id))

    def _prepare(self) -> None:
        """Recover what a dead controller left, settle its reservations, set the cap, replay rungs."""
        self._recover()
        self.store.sync_study_cap(self.study.id)  # the study's stored cap, less what it spent outside the ledger
        history = self.study.history()
        if self.rungs is not None:
            cover = getattr(self.rungs, "cover", None)
            if cover is not None:  # iterations added by earlier runs hold trials of their own
                cover(len(history.trials))
                self._max_trials = self._trial_limit()
            self._replay_rungs(history)
        self.status.finished = sum(t.state.finished for t in history.trials)
        self.status.failed = sum(t.state == TrialState.FAILED for t in history.trials)
        self._failures_in_a_row = self._streak_before = self._failure_streak()  # fail-fast spans resumes
        self._unreported_before = self._unreported_earlier()  # so does the stop for trials that never report
        self.status.spend_micros = history.spent_micros
        self.status.finished_before, self.status.spent_before = self.status.finished, self.status.spend_micros
        self.status.results = len(history.completed())  # ended with a value: history.Outcomes' results
        self.status.failed_before, self.status.results_before = self.status.failed, self.status.results
        best = history.best()
        if best is not None:
            self.status.best_value, self.status.best_trial = best.value, best.number

    def _replay_rungs(self, history: Any) -> None:
        """Give the rung scheduler back what earlier runs decided, from the stored reports.

        A trial is judged when its spend reaches a rung, so a stopped trial's spend ends up to one
        billing granule *below* the rung it was judged at: a level counts as reached within that.
        """
        rates = self.spec.resources.rates.values() or [self.spec.resources.usd_per_hour_micros]
        granule = max(self.spec.resources.billing.charge(self.spec.resources.billing.granularity_s * 1000, r)
                      for r in rates) + 1
        replay_rungs(self.rungs, history, self.store.rung_reports(self.study.id), granule=granule)  # type: ignore[arg-type]
        credited: dict[int, int] = self.__dict__.setdefault("_credited", {})
        for trial in history.trials:  # where a relaunched trial goes on from: its last promotion
            promoted = [level for level, _value, up in trial.verdicts if up]
            if promoted:
                credited[trial.number] = max(promoted)

    def _recover(self) -> None:
        """Settle what dead controllers of the study left (``costtune.runner.settle.settle_dead``)."""
        said: set[str] = self.__dict__.setdefault("_said", set())

        def once(message: str) -> None:  # a mid-run takeover may look again every half second
            if message not in said:
                said.add(message)
                self._on_event(message)

        settle_dead(self.store, self.study.id, self.study.name, self.provider, once)

    def _abandon(self) -> None:
        """Stop what runs now (no grace period), book it as interrupted, re-queue its trials.

        Further signals are ignored meanwhile; it takes at most about ``_KILL_WAIT_S`` seconds.
        """
        restore = catch_signals(lambda: None)
        try:
            running = [live for live in self._live.values() if live.handle is not None]
            kill = getattr(self.provider, "kill", self.provider.terminate)
            for live in running:
                if live.stop_step is None and self.provider.poll(live.handle).exit_code is None:
                    live.stop_step = live.step  # cut short here (one that had ended on its own is not: finishing.py)
                kill(live.handle)
            deadline = time.monotonic() + _KILL_WAIT_S
            while running and time.monotonic() < deadline:
                running = [live for live in running if self.provider.poll(live.handle).running]
                if running:
                    time.sleep(0.02)
            for live in list(self._live.values()):
                try:
                    live.stop_reason = "interrupted"
                    with self.store.batch():
                        if live.handle is not None and not self.virtual:  # what it printed before it ended
                            self._read(live, self.provider.output(live.handle, timeout=0))  # type: ignore[call-arg]
                        self._finish(live, self.provider.poll(live.handle))
                except (CosttuneError, StoreError):
                    log.warning("could not book interrupted trial %s", live.number, exc_info=True)
            self._live.clear()
        finally:
            restore()

    def _scope_tags(self) -> dict[str, str]:
        """Tags that name this study in this store: another store's same-named study is not ours."""
        if self._tags is None:
            self._tags = scope_tags(self.store, self.study.name)
        return self._tags

    def _owned_strays(self) -> list[Any]:
        """Attempts tagged with this study whose controller is dead."""
        return owned_strays(self.provider, self._scope_tags())


def catch_signals(handler: Callable[[], None]) -> Callable[[], None]:
    """Route SIGINT and SIGTERM to ``handler`` while the loop runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda _signum, _frame: handler())

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


