"""Read-only views of trials that samplers, schedulers and reports consume.

They are plain frozen dataclasses, detached from the store, so a sampler can never write
through them and a test can build one by hand.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

_COST_MICROS = operator.attrgetter("cost_micros")


class TrialState(StrEnum):
    QUEUED = "queued"  # enqueued (manual) or re-queued after an interruption; not running
    RUNNING = "running"
    COMPLETE = "complete"  # ran to its end
    STOPPED = "stopped"  # ended early by a scheduler or the budget; its last values stand
    FAILED = "failed"  # crashed, timed out, or reported nothing usable

    @property
    def finished(self) -> bool:
        return self in (TrialState.COMPLETE, TrialState.STOPPED, TrialState.FAILED)


class Mode(StrEnum):
    MIN = "min"
    MAX = "max"


@dataclass(frozen=True)
class FrozenTrial:
    number: int
    state: TrialState
    params: dict[str, Any]
    value: float | None = None  # objective metric, last reported value
    metrics: dict[str, float] = field(default_factory=dict)  # last value of every metric
    cost_micros: int = 0  # money charged so far, integer micro-dollars
    last_step: int | None = None
    grid_index: int | None = None
    source: str = "sampler"  # sampler | manual
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    output_dir: str | None = None
    error: str | None = None
    warnings: tuple[str, ...] = ()  # the first messages about its output the controller ignored or dropped
    warning_count: int = 0  # all of them, kept or not
    # rung verdicts as the scheduler made them: (rung level in micro-dollars, value judged, promoted)
    verdicts: tuple[tuple[int, float | None, bool], ...] = ()
    # why each verdict went as it did, as the controller said it: (rung level in micro-dollars, reason); a
    # level without one (a verdict stored by an older costtune) is not listed
    verdict_reasons: tuple[tuple[int, str], ...] = ()

    @property
    def cost_usd(self) -> float:
        """For display only; the books keep integer micro-dollars."""
        return self.cost_micros / 1_000_000


@dataclass(frozen=True)
class Outcomes:
    """How a study's trials ended, in the words every summary uses (the run's end, `costtune studies`,
    the report): a trial counts as a result only when it ended with an objective value (complete, or
    stopped after reporting one: what the leaderboard ranks). A trial that failed, or was stopped before it
    reported the objective, is not "finished" in a user's sense and is counted as such, never as a result."""

    results: int = 0  # complete or stopped, with an objective value
    failed: int = 0  # failed (crashed, timed out, reported nothing usable, refused launch), value or not
    no_result: int = 0  # stopped (or ended) without an objective value
    unfinished: int = 0  # queued or running

    @classmethod
    def of(cls, trials: Iterable[FrozenTrial]) -> Outcomes:
        results = failed = no_result = unfinished = 0
        for t in trials:
            if not t.state.finished:
                unfinished += 1
            elif t.state == TrialState.FAILED:
                failed += 1
            elif t.value is None:
                no_result += 1
            else:
                results += 1
        return cls(results, failed, no_result, unfinished)

    @property
    def total(self) -> int:
        return self.results + self.failed + self.no_result + self.unfinished

    def words(self) -> str:
        """``5 with a result, 1 failed, 1 stopped without a result, 2 unfinished`` (zero counts other than
        the results are left out)."""
        parts = [f"{self.results} with a result"]
        parts += [f"{self.failed} failed"] if self.failed else []
        parts += [f"{self.no_result} stopped without a result"] if self.no_result else []
        parts += [f"{self.unfinished} unfinished"] if self.unfinished else []
        return ", ".join(parts)


@dataclass(frozen=True)
class History:
    """Every trial of a study, plus what the objective is, as of one moment."""

    metric: str
    mode: Mode
    trials: tuple[FrozenTrial, ...] = ()
    budget_micros: int | None = None  # the study's dollar cap, when it has one (cost-aware samplers cool on it)

    @property
    def spent_micros(self) -> int:
        return sum(map(_COST_MICROS, self.trials))  # at C speed: samplers ask on every suggestion

    def completed(self) -> list[FrozenTrial]:
        """Finished trials with an objective value (complete or stopped)."""
        return [
            t
            for t in self.trials
            if t.state in (TrialState.COMPLETE, TrialState.STOPPED) and t.value is not None
        ]

    def running(self) -> list[FrozenTrial]:
        return [t for t in self.trials if t.state == TrialState.RUNNING]

    def best(self) -> FrozenTrial | None:
        done = self.completed()
        if not done:
            return None
        pick = min if self.mode == Mode.MIN else max
        return pick(done, key=lambda t: t.value)  # type: ignore[arg-type, return-value]

    def used_grid_indices(self) -> set[int]:
        return {t.grid_index for t in self.trials if t.grid_index is not None}
