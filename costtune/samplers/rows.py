"""Encoded rows of a study's trials, kept across suggestions so a long study is not re-encoded each time.

A suggestion at 10,000 trials used to encode every trial twice (once for the observations, once for
the no-repeat check): building the encoder memo's key alone cost tens of milliseconds. ``TrialRows``
remembers, per trial number, the ``params`` mapping a row was made from and the row. A trial whose
``params`` is the very object seen last time (the store hands finished trials back unchanged) costs a
dictionary look-up; any other is compared by value and re-encoded when it differs, so a cached row is
always the row ``Encoder.encode`` gives for the trial's current configuration: caching saves time and
never changes a proposal.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np

from costtune.history import FrozenTrial, History, Mode, TrialState
from costtune.samplers.encoding import Encoder

__all__ = ["TrialRows"]

_DONE = (TrialState.COMPLETE, TrialState.STOPPED)


def _round_key(row: np.ndarray) -> bytes:
    """What ``BayesSampler._pick`` compares rows by: rounded to 9 decimals, -0.0 folded into 0.0."""
    return (np.round(row, 9) + 0.0).tobytes()


class TrialRows:
    """Per trial number: (the ``params`` encoded, its row or None, the row's no-repeat key or None).

    ``encoder``: the space's encoder. Thread-safe: a lock guards the memo (suggestions may run in
    several threads of one controller).
    """

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self._memo: dict[int, tuple[dict[str, Any], np.ndarray | None, bytes | None]] = {}
        self._lock = threading.Lock()
        self.encoded = 0  # rows actually encoded (the rest were memo hits); what the tests count

    def _entry(self, t: FrozenTrial) -> tuple[dict[str, Any], np.ndarray | None, bytes | None]:
        hit = self._memo.get(t.number)
        if hit is not None and (hit[0] is t.params or hit[0] == t.params):
            return hit
        row = self.encoder.encode(t.params)
        entry = (t.params, row, None if row is None else _round_key(row))
        self._memo[t.number] = entry
        self.encoded += 1
        return entry

    def row(self, t: FrozenTrial) -> np.ndarray | None:
        """``encoder.encode(t.params)``, memoised by trial number."""
        with self._lock:
            return self._entry(t)[1]

    def rows(self, trials: Iterable[FrozenTrial]) -> list[np.ndarray | None]:
        with self._lock:
            return [self._entry(t)[1] for t in trials]

    def taken(self, trials: Iterable[FrozenTrial]) -> set[bytes]:
        """No-repeat keys of the configurations of ``trials`` that belong to the space."""
        with self._lock:
            keys = {self._entry(t)[2] for t in trials}
        keys.discard(None)
        return keys  # type: ignore[return-value]

    def observations(self, history: History) -> tuple[np.ndarray, np.ndarray]:
        """Finished trials as (rows (n, dim), values to minimise (n,)) in trial order, skipping NaN/inf
        values and configurations outside the space: what the objective's GP is fitted on."""
        sign = -1.0 if history.mode == Mode.MAX else 1.0
        trials = history.trials
        if any(a.number >= b.number for a, b in itertools.pairwise(trials)):
            trials = tuple(sorted(trials, key=lambda t: t.number))
        rows: list[np.ndarray] = []
        values: list[float] = []
        with self._lock:
            for t in trials:
                if t.state not in _DONE or t.value is None:
                    continue
                try:
                    v = float(t.value)
                except (TypeError, ValueError):
                    continue
                if not math.isfinite(v):
                    continue
                row = self._entry(t)[1]
                if row is not None:
                    rows.append(row)
                    values.append(sign * v)
        if not rows:
            return np.zeros((0, self.encoder.dim)), np.zeros(0)
        return np.array(rows), np.array(values)
