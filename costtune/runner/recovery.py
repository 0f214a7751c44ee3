"""What the controller does at the edges of a run: pick up after a dead controller, let go on Ctrl-C.

On start it re-queues the trials of controllers that died, books their open attempts as
interrupted at their last booked cost, kills processes they left running, settles their ledger
reservations, sets the study's cap in the ledger and replays stored reports into the rung
scheduler. On Ctrl-C (or SIGTERM) it stops what runs and books it the same way.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from costtune.errors import CosttuneError, StoreError
from costtune.history import TrialState
from costtune.schedulers.replay import replay_rungs
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
    _on_event: Callable[[str], None]

    def _finish(self, live: LiveAttempt, status: Any) -> None: ...

    def _trial_limit(self) -> int | None: ...

    def _prepare(self) -> None:
        """Recover what a dead controller left, settle its reservations, set the cap, replay rungs."""
        self.study.recover()
        for handle in self._owned_strays():
            self._on_event(f"terminating stray process group {handle.pid} ({handle.key})")
            self.provider.terminate(handle)
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

    def _abandon(self) -> None:
        """Ctrl-C: terminate what runs, book it as interrupted, re-queue its trials."""
        for live in list(self._live.values()):
            try:
                if live.handle is not None:
                    self.provider.terminate(live.handle)
                live.stop_reason = "interrupted"
                with self.store.batch():
                    self._finish(live, self.provider.poll(live.handle))
            except (CosttuneError, StoreError):
                log.warning("could not book interrupted trial %s", live.number, exc_info=True)
        self._live.clear()

    def _scope_tags(self) -> dict[str, str]:
        """Tags that name this study in this store: another store's same-named study is not ours."""
        if self._tags is None:
            store_id = hashlib.sha256(self.store.display_url.encode()).hexdigest()[:12]
            self._tags = {"study": self.study.name, "store": store_id}
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


