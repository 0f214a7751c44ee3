"""Read-only views of trials that samplers, schedulers and reports consume.

They are plain frozen dataclasses, detached from the store, so a sampler can never write
through them and a test can build one by hand.
"""

from __future__ import annotations

import operator
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
