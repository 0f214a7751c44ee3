"""Dollar rungs and asynchronous successive halving (ASHA).

A trial's resource is the money it has spent, in integer micro-dollars. It is judged each time its
spend reaches a rung: promoted (it runs on to the next rung) or stopped. Nobody waits for peers, so
a decision only looks at the values recorded at that rung so far. Everything here is pure logic:
the controller feeds results in and replays stored ones on resume.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass
from typing import Protocol

from costtune.history import Mode
from costtune.money import format_usd
from costtune.words import plural


def rung_ladder(min_micros: int, max_micros: int, eta: int) -> tuple[int, ...]:
    """All rung levels in micros, ascending: ``min * eta**k`` below max, then max itself (a level within
    1% below max is replaced by max, so a rounded min_usd never makes two rungs a few micros apart).

    Exact integer arithmetic, so a ladder never drifts by a rounding error from one run to the next.
    """
    if min_micros <= 0 or max_micros < min_micros:
        raise ValueError(f"need 0 < min_micros <= max_micros, got {min_micros} and {max_micros}")
    if isinstance(eta, bool) or not isinstance(eta, int) or eta < 2:
        raise ValueError(f"eta must be an integer >= 2, got {eta!r}")
    levels = [min_micros]
    while levels[-1] * eta < max_micros:
        levels.append(levels[-1] * eta)
    if len(levels) > 1 and max_micros - levels[-1] <= levels[-1] // 100:
        levels[-1] = max_micros  # within 1% of the top (a rounded min_usd): one rung, not two a hair apart
    elif levels[-1] != max_micros:
        levels.append(max_micros)
    return tuple(levels)


def usd_text(micros: int) -> str:
    """``$0.15``, ``$1``, ``$0.000043``: the amount by the one money rule (``costtune.money.format_usd``)."""
    return format_usd(micros)


@dataclass(frozen=True)
class RungDecision:
    promote: bool  # True: run on to next_rung_micros; False: stop now
    next_rung_micros: int | None  # the next level it is judged at when promoted; None when promote is False
    reason: str


class RungScheduler(Protocol):
    """What the controller asks a dollar-rung scheduler; see ``AshaScheduler`` and ``Hyperband``."""

    kind: str

    def max_trials(self) -> int | None:
        """How many trials the plan holds; None when only the budget ends the sweep (ASHA)."""
        ...

    def ladder(self, number: int) -> tuple[int, ...]:
        """Rung levels (micros, ascending) trial ``number`` is judged at; the last is where it ends."""
        ...

    def first_rung(self, number: int, spent_micros: int = 0) -> int | None:
        """The first level above ``spent_micros`` in the trial's ladder; None once past the top."""
        ...

    def judge(self, number: int, rung_micros: int, value: float | None) -> RungDecision:
        """Record the trial's value at a rung it reached and decide whether it runs on."""
        ...

    def record(self, number: int, rung_micros: int, value: float | None, promoted: bool) -> None:
        """Replay a stored result on resume, without deciding anything."""
        ...

    def results_at(self, rung_micros: int) -> dict[int, float]:
        """Trial number -> value recorded at that level, over every bracket (BOHB fits a model on it)."""
        ...

    def levels(self) -> tuple[int, ...]:
        """Every rung level in use, ascending."""
        ...


def usable(value: float | None) -> bool:
    """NaN cannot be ranked, so it counts as no result at all."""
    return value is not None and not math.isnan(value)


class Competition:
    """The values recorded at one rung, kept sorted so a rank is a bisect, not a sort.

    Keys are normalised so that lower is better (``-value`` in max mode). Re-recording a trial
    replaces its earlier entry, so a replay followed by a judge never counts a trial twice.
    """

    def __init__(self, mode: Mode) -> None:
        self._sign = -1.0 if mode == Mode.MAX else 1.0
        self._keys: list[float] = []
        self._by_trial: dict[int, float] = {}  # number -> key
        self.promoted: set[int] = set()
        # Trials that ended on their own below this rung: their final values, seen by BOHB's model
        # (``values``) but not ranked against (a partly trained trial loses to a finished one's final
        # value: measured, that made ASHA slower to a target, see README "Dollar rungs").
        self.finished: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, number: int, value: float) -> int:
        """Insert (or replace) a trial's value; return its rank, 1 = best, ties counted in its favour."""
        self.discard(number)
        key = self._sign * value
        self._by_trial[number] = key
        insort(self._keys, key)
        return bisect_left(self._keys, key) + 1

    def discard(self, number: int) -> None:
        self.promoted.discard(number)
        old = self._by_trial.pop(number, None)
        if old is not None:
            del self._keys[bisect_left(self._keys, old)]

    def values(self) -> dict[int, float]:
        """Trial number -> value at this rung: the ranked ones and the finished-below ones."""
        return {**self.finished, **{number: self._sign * key for number, key in self._by_trial.items()}}

    def record(self, number: int, value: float | None, promoted: bool) -> None:
        """Replay a stored result without a decision (a value that cannot be ranked is dropped)."""
        if not usable(value):
            self.discard(number)
            return
        assert value is not None
        self.add(number, value)
        if promoted:
            self.promoted.add(number)


def enter_finished(rungs: RungScheduler, number: int, from_micros: int, value: float | None) -> list[int]:
    """A trial that ended on its own below a rung: its final value (the best it will ever have) is
    recorded at every level of its ladder from ``from_micros`` up, where ``results_at`` shows it, so
    BOHB's model fits on it; it is not ranked against (``Competition.finished``). A scheduler without
    ``note_finished`` records it as a stopped result. Returns the levels it entered (none for a value
    that cannot be ranked). The controller, in-process studies and the replay all call this."""
    if not usable(value):
        return []
    assert value is not None
    levels = [level for level in rungs.ladder(number) if level >= from_micros]
    note = getattr(rungs, "note_finished", None)
    for level in levels:
        if note is not None:
            note(number, level, value)
        else:
            rungs.record(number, level, value, False)
    return levels


def mode_of(mode: str | Mode) -> Mode:
    if mode not in (Mode.MIN, Mode.MAX):
        raise ValueError(f"mode must be min or max, got {mode!r}")
    return Mode(mode)


def position(ladder: tuple[int, ...], rung_micros: int) -> int:
    """Index of a rung in a trial's ladder; a level outside it is the caller's bug, not a user's."""
    i = bisect_left(ladder, rung_micros)
    if i == len(ladder) or ladder[i] != rung_micros:
        raise ValueError(f"{rung_micros} micros is not a rung of this trial's ladder {ladder}")
    return i


def first_above(ladder: tuple[int, ...], spent_micros: int) -> int | None:
    i = bisect_right(ladder, spent_micros)
    return ladder[i] if i < len(ladder) else None


class AshaScheduler:
    """Asynchronous successive halving: one competition per rung level, for every trial.

    A trial is promoted when its value ranks within the top ``max(1, n // eta)`` of the ``n`` values
    recorded at that rung so far (its own included), so the first trial at a rung always runs on and
    the promoted share tends to ``1/eta``. There is no plan: the budget ends the sweep.
    """

    kind = "asha"

    def __init__(self, ladder: tuple[int, ...], eta: int, *, mode: str | Mode) -> None:
        if len(ladder) < 1 or list(ladder) != sorted(set(ladder)):
            raise ValueError(f"a ladder is a non-empty ascending tuple of distinct levels, got {ladder}")
        self.eta = eta
        self.mode = mode_of(mode)
        self._ladder = tuple(ladder)
        self._rungs = {level: Competition(self.mode) for level in self._ladder}

    def max_trials(self) -> int | None:
        return None

    def ladder(self, number: int) -> tuple[int, ...]:
        return self._ladder if number >= 0 else ()

    def first_rung(self, number: int, spent_micros: int = 0) -> int | None:
        return first_above(self.ladder(number), spent_micros)

    def levels(self) -> tuple[int, ...]:
        return self._ladder

    def results_at(self, rung_micros: int) -> dict[int, float]:
        rung = self._rungs.get(rung_micros)
        return rung.values() if rung is not None else {}

    def record(self, number: int, rung_micros: int, value: float | None, promoted: bool) -> None:
        position(self.ladder(number), rung_micros)
        self._rungs[rung_micros].record(number, value, promoted)

    def note_finished(self, number: int, rung_micros: int, value: float) -> None:
        """A trial that ended on its own below this rung: its final value, for ``results_at`` only."""
        position(self.ladder(number), rung_micros)
        self._rungs[rung_micros].finished[number] = value

    def judge(self, number: int, rung_micros: int, value: float | None) -> RungDecision:
        ladder = self.ladder(number)
        i = position(ladder, rung_micros)
        rung = self._rungs[rung_micros]
        if not usable(value):
            rung.discard(number)
            return RungDecision(False, None, f"no result by the {usd_text(rung_micros)} rung")
        assert value is not None
        rank = rung.add(number, value)
        if i == len(ladder) - 1:
            return RungDecision(False, None, f"ran to max_usd ({usd_text(rung_micros)})")  # complete, not stopped
        return ranked(rung, number, rank, self.eta, rung_micros, ladder[i + 1], "")


def ranked(rung: Competition, number: int, rank: int, eta: int, rung_micros: int, next_micros: int,
           where: str, quota: int | None = None) -> RungDecision:
    """The shared rule: top ``max(1, n // eta)`` runs on, unless the promotion quota is used up."""
    n = len(rung)
    top = max(1, n // eta)
    at = f"{where}at {usd_text(rung_micros)} rung (rank {rank} of {n})"
    if rank > top:
        return RungDecision(False, None, f"below the top 1/{eta} {at}")
    if quota is not None and len(rung.promoted) >= quota:
        return RungDecision(False, None, f"top 1/{eta} {at}, but the quota of {plural(quota, 'promotion')} is used up")
    rung.promoted.add(number)
    return RungDecision(True, next_micros, f"top 1/{eta} {at}")
