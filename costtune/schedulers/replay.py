"""Give a rung scheduler back what earlier runs decided, from the stored trials and reports.

Decisions are not stored; they follow from what each trial spent and reported. Both the sweep
controller (on resume) and in-process studies (when a process opens a study) rebuild their
``RungScheduler`` this way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from costtune.history import History
    from costtune.schedulers.rungs import RungScheduler

# trial number -> its reports as (trial spend then in micros, objective value or None), in order
RungReports = Mapping[int, Sequence[tuple[int, float | None]]]


def replay_rungs(rungs: RungScheduler, history: History, reports: RungReports, *, granule: int = 0,
                 judged_after: bool = False) -> None:
    """Record every rung each trial's spend reached (within ``granule`` micros) with its value there.

    The value at a level is the last one reported at a spend <= level (the controller judges at the
    deadline, on what was reported before it) or, with ``judged_after``, the first one reported at a
    spend >= level (an in-process trial is judged at the report that crossed the rung). A trial is
    counted as promoted at every level it reached but the last one of a finished trial and the top.
    """
    for trial in history.trials:
        ladder = rungs.ladder(trial.number)
        judged = [level for level in ladder if level <= trial.cost_micros + granule]
        mine = reports.get(trial.number, ())
        for level in judged:
            if judged_after:
                after = [v for c, v in mine if c >= level and v is not None]
                value = after[0] if after else None
            else:
                before = [v for c, v in mine if c <= level and v is not None]
                value = before[-1] if before else None
            promoted = level != ladder[-1] and (level != judged[-1] or not trial.state.finished)
            rungs.record(trial.number, level, value, promoted)
