"""Time a plan takes, and what the next ``costtune run`` adds to a study that already exists.

A resumed study has spent money and run trials already; its plan (``analytic.build_plan``) is the whole
study's, as if from zero. ``this_run`` is what the next run is forecast to add within what is left: the
cap left (the stored cap, or the file's with ``--change-cap``, less what the study spent), the trials
left under ``budget.trials``, at the plan's expected cost of one trial. Hours are instance-hours (money
over the mean hourly rate: start-up and billing minimum included, as billed) and wall hours (those over
the workers running at once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Hours:
    """Instance-hours billed, and wall-clock hours with ``workers`` trials at once."""

    instance: float
    wall: float


@dataclass(frozen=True)
class ThisRun:
    """What the next ``costtune run`` adds to a resumed study: trials (central, fewest, most), money and hours."""

    trials: int | None
    fewest: int | None
    most: int | None
    micros: int | None  # forecast spend of this run (micro-dollars), within ``left_micros``
    left_micros: int | None  # the cap left (None: no cap)
    trials_left: int | None  # what budget.trials leaves (None: no limit)
    hours: Hours | None


def hours_for(micros: float | None, rate_micros: float, workers: int, trials: int | None) -> Hours | None:
    """Hours ``micros`` of spend buys at ``rate_micros`` per hour, over ``min(workers, trials)`` at once;
    None when the spend or the rate is unknown (or zero)."""
    if micros is None or rate_micros <= 0:
        return None
    instance = micros / rate_micros
    at_once = max(1, min(workers, trials if trials is not None else workers))
    return Hours(instance, instance / at_once)


def this_run(*, per_trial: float | None, cheapest: float | None, dearest: float | None, left_micros: int | None,
             trials_left: int | None, rate_micros: float, workers: int) -> ThisRun:
    """The next run's trials and spend: as many trials of ``per_trial`` micro-dollars as ``left_micros`` holds,
    at most ``trials_left``; ``cheapest``/``dearest`` (per-trial costs) give the most/fewest when the plan has
    a range. Unknown per-trial cost: the trials left, the money left."""
    def fill(cost: float | None) -> int | None:
        if left_micros is None or cost is None or cost <= 0:
            return trials_left
        n = math.floor(left_micros / cost)
        return n if trials_left is None else min(n, trials_left)

    trials = fill(per_trial)
    if per_trial is None or trials is None:
        micros = left_micros
    else:
        micros = round(trials * per_trial)
        micros = micros if left_micros is None else min(micros, left_micros)
    if trials == 0:
        micros = 0
    ranged = cheapest is not None and dearest is not None
    return ThisRun(trials=trials, fewest=fill(dearest) if ranged else None, most=fill(cheapest) if ranged else None,
                   micros=micros, left_micros=left_micros, trials_left=trials_left,
                   hours=hours_for(micros, rate_micros, workers, trials))
