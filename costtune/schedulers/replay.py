"""Give a rung scheduler back what earlier runs decided, from the stored verdicts.

Each rung verdict is stored with its trial when it is made (level, value judged, promoted), and a
replay records exactly those. Only a trial without stored verdicts (judged by an older costtune)
has them re-derived from what it spent and reported. Both the sweep controller (on resume) and
in-process studies (when a process opens a study) rebuild their ``RungScheduler`` this way.
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
    """Record each trial's stored verdicts; for a trial without any, every rung its spend reached (within
    ``granule`` micros) with its value there.

    The value at a level is the last one reported at a spend <= level (the controller judges at the
    deadline, on what was reported before it) or, with ``judged_after``, the first one reported at a
    spend >= level (an in-process trial is judged at the report that crossed the rung). A trial is
    counted as promoted at every level it reached but the last one of a finished trial and the top.
    """
    for trial in history.trials:
        if trial.verdicts:  # stored when made: the replay never re-judges them
            for level, value, promoted in trial.verdicts:
                rungs.record(trial.number, level, value, promoted)
            continue
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
