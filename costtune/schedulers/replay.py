"""Give a rung scheduler back what earlier runs decided, from the stored verdicts.

Each rung verdict is stored with its trial when it is made (level, value judged, promoted), and a
replay records exactly those. Only a trial without stored verdicts (judged by an older costtune)
has them re-derived from what it spent and reported. Both the sweep controller (on resume) and
in-process studies (when a process opens a study) rebuild their ``RungScheduler`` this way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from costtune.history import TrialState
from costtune.schedulers.rungs import enter_finished

if TYPE_CHECKING:
    from costtune.history import History
    from costtune.schedulers.rungs import RungScheduler

# trial number -> its reports as (trial spend then in micros, objective value or None), in order
RungReports = Mapping[int, Sequence[tuple[int, float | None]]]


def replay_rungs(rungs: RungScheduler, history: History, reports: RungReports, *, granule: int = 0,
                 judged_after: bool = False) -> None:
    """Record each trial's stored verdicts, and for a trial that completed on its own below a rung, its
    final value at every level it did not reach (``rungs.enter_finished``, as the run did).

    Only in a study without any stored verdict (judged by an older costtune) are the levels each
    trial's spend reached (within ``granule`` micros) re-derived from its reports: the value at a level
    is the last one reported at a spend <= level (the controller judges at the deadline, on what was
    reported before it) or, with ``judged_after``, the first one reported at a spend >= level (an
    in-process trial is judged at the report that crossed the rung). A trial is counted as promoted at
    every level it reached but the last one of a finished trial and the top.
    """
    legacy = not any(trial.verdicts for trial in history.trials)
    for trial in history.trials:
        ladder = rungs.ladder(trial.number)
        if not ladder:
            continue
        verdicts = list(trial.verdicts)
        if not verdicts and legacy:
            verdicts = _derived(ladder, trial.number, trial.cost_micros, trial.state.finished, reports,
                                granule, judged_after)
        for level, value, promoted in verdicts:  # stored when made: the replay never re-judges them
            rungs.record(trial.number, level, value, promoted)
        if trial.state == TrialState.COMPLETE and (not verdicts or verdicts[-1][2]):
            above = [level for level in ladder if not verdicts or level > verdicts[-1][0]]
            if above:
                enter_finished(rungs, trial.number, above[0], trial.value)


def _derived(ladder: tuple[int, ...], number: int, cost_micros: int, finished: bool, reports: RungReports,
             granule: int, judged_after: bool) -> list[tuple[int, float | None, bool]]:
    judged = [level for level in ladder if level <= cost_micros + granule]
    mine = reports.get(number, ())
    out: list[tuple[int, float | None, bool]] = []
    for level in judged:
        if judged_after:
            after = [v for c, v in mine if c >= level and v is not None]
            value = after[0] if after else None
        else:
            before = [v for c, v in mine if c <= level and v is not None]
            value = before[-1] if before else None
        promoted = level != ladder[-1] and (level != judged[-1] or not finished)
        out.append((level, value, promoted))
    return out
