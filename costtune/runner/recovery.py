"""What the controller does at the edges of a run: pick up after a dead controller, let go on Ctrl-C.

On start it stops what controllers that died left running (and waits until it is gone), books
their open attempts as interrupted, billed from what each attempt's resource recorded (a local
supervisor's start and end; the last heartbeat when there is no record), re-queues their trials,
settles their ledger reservations, sets the study's cap in the ledger and replays stored reports
into the rung scheduler. On Ctrl-C (or SIGTERM) it stops what runs and books it the same way.
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
from costtune.schedulers.replay import replay_rungs
from costtune.store import AttemptEnd, OpenAttempt
from costtune.store.owner import is_alive

if TYPE_CHECKING:
    from costtune.providers.base import Provider
    from costtune.runner.attempts import LiveAttempt
    from costtune.runner.status import RunStatus
    from costtune.schedulers import RungScheduler
    from costtune.spec import SweepSpec
    from costtune.store import Store
    from costtune.study import Study

log = logging.getLogger(__name__)
_STRAY_SLACK_S = 3.0  # strays get the provider's grace period and this much more to be gone
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
    _spent_at_iteration: int
    _failures_in_a_row: int
    _streak_before: int
    _failure_streak: Callable[[], int]
    _on_event: Callable[[str], None]

    def _finish(self, live: LiveAttempt, status: Any) -> None: ...

    def _trial_limit(self) -> int | None: ...

    def _prepare(self) -> None:
        """Recover what a dead controller left, settle its reservations, set the cap, replay rungs."""
        self._recover()
        for reservation in self.store.open_reservations(self.scope):
            booked = self.store.attempt_cost_by_key(reservation.key)
            if booked is None:
                self.store.release(reservation.key)
            elif booked[1]:  # its attempt is closed: book what it cost
                self.store.charge(reservation.key, booked[0])
        self.store.sync_study_cap(self.study.id)  # the study's stored cap, less what it spent outside the ledger
        self._spent_at_iteration = self.store.balance(self.scope).spent_micros
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
        self.status.spend_micros = history.spent_micros
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

    def _recover(self) -> None:
        """Close dead controllers' open attempts, each billed from its resource's own record.

        What they left running is stopped first (and waited for, before the loop starts), so the
        records are final: a local attempt is billed from its supervisor's start to the moment its
        whole process tree was gone; without a record, up to the last heartbeat (the attempt's note
        says which).
        """
        self._stop_strays()
        ends: dict[int, AttemptEnd] = {}
        for attempt in self.store.orphaned_attempts(self.study.id, is_alive):
            end = self._attempt_end(attempt)
            if end is not None:
                ends[attempt.attempt_id] = end
        self.store.recover_orphans(self.study.id, is_alive, ends=ends)

    def _stop_strays(self) -> None:
        strays = self._owned_strays()
        for handle in strays:
            self._on_event(f"terminating stray process group {handle.pid} ({handle.key})")
        deadline = time.monotonic() + getattr(self.provider, "grace", 5.0) + _STRAY_SLACK_S
        while strays and time.monotonic() < deadline:
            for handle in strays:
                self.provider.terminate(handle)  # SIGTERM first; SIGKILL on a call after the grace
            strays = [h for h in strays if self.provider.poll(h).running]
            if strays:
                time.sleep(0.05)

    def _attempt_end(self, attempt: OpenAttempt) -> AttemptEnd | None:
        """How ``attempt`` really ended, from its provider's facts; None when they do not say."""
        if attempt.provider == "simulated":
            return None  # virtual time: what its reports booked is what it cost
        source: Any = self.provider
        if attempt.provider != self.provider.name:
            from costtune.providers import make_provider

            try:
                source = make_provider(attempt.provider)
            except CosttuneError:
                return None
        facts_of = getattr(source, "facts", None)
        if facts_of is None:
            return None
        try:
            facts = facts_of(attempt.key, output_dir=attempt.output_dir)
        except (OSError, CosttuneError):
            log.warning("could not read the facts of attempt %s", attempt.key, exc_info=True)
            return None
        if facts is None or facts.ended_at is None:
            return None
        held_ms = max(0, int((facts.ended_at - facts.started_at).total_seconds() * 1000))
        how = f", {facts.how}" if facts.how else ""
        return AttemptEnd(billable_ms=held_ms, ended_at=facts.ended_at, exit_code=facts.exit_code,
                          note=f"billed from {facts.source or attempt.provider}: held {held_ms / 1000:.3f} s{how}")

    def _abandon(self) -> None:
        """Stop what runs now (no grace period), book it as interrupted, re-queue its trials.

        Further signals are ignored meanwhile; it takes at most about ``_KILL_WAIT_S`` seconds.
        """
        restore = catch_signals(lambda: None)
        try:
            running = [live for live in self._live.values() if live.handle is not None]
            kill = getattr(self.provider, "kill", self.provider.terminate)
            for live in running:
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
                        self._finish(live, self.provider.poll(live.handle))
                except (CosttuneError, StoreError):
                    log.warning("could not book interrupted trial %s", live.number, exc_info=True)
            self._live.clear()
        finally:
            restore()

    def _scope_tags(self) -> dict[str, str]:
        """Tags that name this study in this store: another store's same-named study is not ours."""
        if self._tags is None:
            from costtune.store.reads import store_tag

            self._tags = {"study": self.study.name, "store": store_tag(self.store)}
        return self._tags

    def _owned_strays(self) -> list[Any]:
        """Attempts tagged with this study whose controller is dead."""
        lister = getattr(self.provider, "list_owned", None)
        if lister is None:
            return []
        try:
            found = lister(self._scope_tags())
        except (OSError, CosttuneError):
            return []
        return [h for h in found if not is_alive(getattr(h, "tags", {}).get("owner", ""), None)]



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


