"""A background thread that tells the store this controller lives and books running costs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

from costtune.store.owner import HEARTBEAT_SECONDS

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, store, owner: str, charges: Callable[[], dict[int, tuple[int, int]]],  # type: ignore[no-untyped-def]
                 interval: float = HEARTBEAT_SECONDS) -> None:
        self._store = store
        self._owner = owner
        self._charges = charges
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="costtune-heartbeat", daemon=True)

    def beat(self) -> None:
        self._store.heartbeat(self._owner, self._charges())

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.beat()
            except Exception:  # a missed beat must not kill the sweep
                log.warning("heartbeat failed; will retry", exc_info=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 5)
