"""Encoded rows of a study's trials, kept across suggestions so a long study is not re-encoded each time.

A suggestion at 10,000 trials used to encode every trial twice (once for the observations, once for
the no-repeat check): building the encoder memo's key alone cost tens of milliseconds. ``TrialRows``
remembers, per trial number, the ``params`` mapping a row was made from and the row. A trial whose
``params`` is the very object seen last time (the store hands finished trials back unchanged) costs a
dictionary look-up; any other is compared by value and re-encoded when it differs, so a cached row is
always the row ``Encoder.encode`` gives for the trial's current configuration: caching saves time and
never changes a proposal.

Beyond single rows, the observations (finished trials' rows and values) and the no-repeat keys are
kept for the longest leading run of trials that are the very objects of the previous call: only the
trials after it (new ones, and any whose state or value changed, which the store hands back as new
objects) are looked at again, so the Python work per suggestion follows what changed, not the
history's length.
"""

from __future__ import annotations

import math
import operator
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from costtune.history import FrozenTrial, History, Mode, TrialState
from costtune.samplers.encoding import Encoder

__all__ = ["TrialRows", "in_order", "row_key", "shared_prefix"]

_DONE = (TrialState.COMPLETE, TrialState.STOPPED)
_NUMBER = operator.attrgetter("number")


def row_key(row: np.ndarray) -> bytes:
    """What ``BayesSampler._pick`` compares rows by: rounded to 9 decimals, -0.0 folded into 0.0."""
    return (np.round(row, 9) + 0.0).tobytes()


def shared_prefix(old: Sequence[Any], new: Sequence[Any]) -> int:
    """How many leading items of ``new`` are the very objects (``is``) at the same places in ``old``."""
    n = min(len(old), len(new))
    same = list(map(operator.is_, old[:n], new[:n]))  # at C speed: no Python loop over the history
    try:
        return same.index(False)
    except ValueError:
        return n


def in_order(trials: tuple[FrozenTrial, ...]) -> tuple[FrozenTrial, ...]:
    """``trials`` by trial number (stable), without sorting when they already are (the store's order)."""
    numbers = list(map(_NUMBER, trials))
    if numbers != sorted(numbers):  # C-speed checks: called on the whole history, 3 times a suggestion
        return tuple(sorted(trials, key=_NUMBER))
    return trials


@dataclass
class _Observed:
    trials: tuple[FrozenTrial, ...]
    ends: np.ndarray  # ends[i]: observation rows contributed by trials[:i] (len(trials) + 1,)
    x: np.ndarray
    y: np.ndarray
    sign: float


class TrialRows:
    """Per trial number: (the ``params`` encoded, its row or None, the row's no-repeat key or None).

    ``encoder``: the space's encoder. Thread-safe: a lock guards the memo (suggestions may run in
    several threads of one controller).
    """

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self._memo: dict[int, tuple[dict[str, Any], np.ndarray | None, bytes | None]] = {}
        self._lock = threading.Lock()
        # other modules' caches over the same trials (``cost_rows``), guarded by ``lock``
        self.derived: dict[str, Any] = {}
        self._observed: _Observed | None = None
        self._taken: tuple[tuple[FrozenTrial, ...], list[bytes | None], Counter[bytes]] | None = None
        self.encoded = 0  # rows actually encoded (the rest were memo hits); what the tests count
        self.examined = 0  # trials looked at one by one by observations() and taken(); likewise

    @property
    def lock(self) -> threading.Lock:
        return self._lock

    def _entry(self, t: FrozenTrial) -> tuple[dict[str, Any], np.ndarray | None, bytes | None]:
        hit = self._memo.get(t.number)
        if hit is not None and (hit[0] is t.params or hit[0] == t.params):
            return hit
        row = self.encoder.encode(t.params)
        entry = (t.params, row, None if row is None else row_key(row))
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

    def taken(self, trials: tuple[FrozenTrial, ...]) -> frozenset[bytes]:
        """No-repeat keys of the configurations of ``trials`` that belong to the space."""
        with self._lock:
            prev = self._taken
            k = 0 if prev is None else shared_prefix(prev[0], trials)
            keys: list[bytes | None] = [] if prev is None else prev[1][:k]
            counts: Counter[bytes] = Counter() if prev is None else prev[2]
            for key in [] if prev is None else prev[1][k:]:  # trials no longer as they were
                if key is not None:
                    counts[key] -= 1
                    if counts[key] <= 0:
                        del counts[key]
            fresh = [self._entry(t)[2] for t in trials[k:]]
            self.examined += len(fresh)
            counts.update(key for key in fresh if key is not None)
            keys.extend(fresh)
            self._taken = (trials, keys, counts)
            return frozenset(counts)

    def observations(self, history: History) -> tuple[np.ndarray, np.ndarray]:
        """Finished trials as (rows (n, dim), values to minimise (n,)) in trial order, skipping NaN/inf
        values and configurations outside the space: what the objective's GP is fitted on."""
        sign = -1.0 if history.mode == Mode.MAX else 1.0
        trials = in_order(history.trials)
        with self._lock:
            prev = self._observed
            k = 0 if prev is None or prev.sign != sign else shared_prefix(prev.trials, trials)
            base = 0 if prev is None or k == 0 else int(prev.ends[k])
            rows: list[np.ndarray] = []
            values: list[float] = []
            ends = [base]
            for t in trials[k:]:
                self.examined += 1
                ends.append(base + len(rows))
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
                    ends[-1] += 1
            dim = self.encoder.dim
            x = np.array(rows).reshape(len(rows), dim)
            y = np.array(values, dtype=float)
            if prev is not None and base:
                x = np.concatenate([prev.x[:base], x])
                y = np.concatenate([prev.y[:base], y])
            head = prev.ends[:k] if prev is not None else np.zeros(0, dtype=int)
            self._observed = _Observed(trials, np.concatenate([head, np.array(ends, dtype=int)]), x, y, sign)
            x.setflags(write=False)
            y.setflags(write=False)
            return x, y
