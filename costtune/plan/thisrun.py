"""Time a plan takes, and what the next ``costtune run`` adds to a study that already exists.

A resumed study has spent money and run trials already; its plan (``analytic.build_plan``) is the whole
study's, as if from zero. ``this_run`` is what the next run is forecast to add within what is left: the
cap left (the stored cap, or the file's with ``--change-cap``, less what the study spent), the trials
left under ``budget.trials``, at the plan's expected cost of one trial. A Hyperband (SH, BOHB) plan adds what
``costtune run`` would: its unfinished trials, the plan's trials not yet started, then iterations by the
controller's rule (``schedulers.hyperband.holds_another_iteration``). Hours are instance-hours (money
over the mean hourly rate: start-up and billing minimum included, as billed) and wall hours (those over
the workers running at once).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from costtune.money import format_usd
from costtune.schedulers import make_rung_scheduler
from costtune.schedulers.hyperband import PLAN_KINDS, Hyperband, holds_another_iteration
from costtune.words import plural

if TYPE_CHECKING:
    from costtune.plan.analytic import Schedule
    from costtune.plan.stored import StoredStudy
    from costtune.spec import SweepSpec


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
    trials_left: int | None  # what budget.trials leaves to run, the queued trials included (None: no limit)
    hours: Hours | None
    bounded: bool = False  # per-trial cost an upper bound (budget.trial_seconds): trials at least, money at most
    # a Hyperband iteration added with what is left of the cap within CLOSE of its expected cost: a run whose
    # iterations cost a little more stops one iteration sooner (left, one iteration's expected cost; micros)
    close_call: tuple[int, int] | None = None


CLOSE = 1.25  # an added iteration whose cap left is below this many times its expected cost is a close call


def hours_for(micros: float | None, rate_micros: float, workers: int, trials: int | None) -> Hours | None:
    """Hours ``micros`` of spend buys at ``rate_micros`` per hour, over ``min(workers, trials)`` at once;
    None when the spend or the rate is unknown (or zero)."""
    if micros is None or rate_micros <= 0:
        return None
    instance = micros / rate_micros
    at_once = max(1, min(workers, trials if trials is not None else workers))
    return Hours(instance, instance / at_once)


def this_run(*, per_trial: float | None, cheapest: float | None, dearest: float | None, left_micros: int | None,
             trials_left: int | None, rate_micros: float, workers: int, bounded: bool = False) -> ThisRun:
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
    if bounded and per_trial is not None:  # trials are the fewest; the money the most it may spend
        most = [m for m in (left_micros, None if trials_left is None else round(trials_left * per_trial))
                if m is not None]
        micros = min(most) if most else None
    if trials == 0 and not bounded:
        micros = 0
    ranged = cheapest is not None and dearest is not None
    return ThisRun(trials=trials, fewest=fill(dearest) if ranged else None, most=fill(cheapest) if ranged else None,
                   micros=micros, left_micros=left_micros, trials_left=trials_left,
                   hours=hours_for(micros, rate_micros, workers, trials), bounded=bounded)


def resume_run(spec: SweepSpec, schedule: Schedule, resumes: StoredStudy, rate: float,
               total: int | None, notes: list[str] | None = None) -> ThisRun:
    """What the next run adds to the resumed study (micro-dollars; ``rate`` per instance-hour): trials of the plan's
    expected cost within the cap left; for a Hyperband (SH, BOHB) plan, the trials its plan still holds and the
    iterations `costtune run` would add. ``total``: a rung plan's money in all, start-up included. An ASHA study's
    trials cost what its finished ones did (start-up included), once it has some, as a fifo or curve resume's do;
    ``notes`` says so."""
    spend = schedule.planned_micros if schedule.expected_micros is None else schedule.expected_micros
    per_trial: float | None = schedule.trial_cost_micros
    if schedule.trials and (total is not None or (per_trial is None and spend is not None)):
        per_trial = (spend if total is None else total) / schedule.trials  # rungs: start-up on top of them
    measured = [c for c in resumes.finished_costs.values() if c > 0]
    if schedule.kind == "asha" and measured:
        modelled, per_trial = per_trial, sum(measured) / len(measured)
        if notes is not None:
            was = "" if modelled is None else f"; the plan from zero models {format_usd(round(modelled))}"
            notes.append(f"asha: this run's trials at the study's measured cost of a trial, "
                         f"{format_usd(round(per_trial))} (the mean of its {plural(len(measured), 'finished trial')}, "
                         f"start-up included){was}")
    limit, left = spec.max_trials, resumes.left_micros(spec.budget.usd_micros)
    if schedule.kind in PLAN_KINDS and per_trial is not None:
        rungs = make_rung_scheduler(spec.scheduler, mode=str(spec.mode), budget_micros=spec.budget.usd_micros)
        assert isinstance(rungs, Hyperband)
        return rung_this_run(rungs, held=resumes.trials, unfinished=resumes.unfinished,
                             finished_costs=resumes.finished_costs, per_trial=per_trial, left_micros=left,
                             max_trials=limit, rate_micros=rate, workers=spec.resources.workers)
    return this_run(per_trial=per_trial, cheapest=schedule.trial_cost_cheapest_micros,
                    dearest=schedule.trial_cost_dearest_micros, left_micros=left,
                    trials_left=None if limit is None else max(0, limit - resumes.finished), rate_micros=rate,
                    workers=spec.resources.workers, bounded=schedule.bounded)


def rung_this_run(rungs: Hyperband, *, held: int, unfinished: int, finished_costs: dict[int, int],
                  per_trial: float, left_micros: int | None, max_trials: int | None, rate_micros: float,
                  workers: int) -> ThisRun:
    """The next run of a study under a Hyperband (SH, BOHB) plan ``rungs`` (as ``costtune run`` builds it): its
    ``unfinished`` trials, the plan's trials past the ``held`` ones, then, while the cap left holds one by
    ``holds_another_iteration`` (the controller's rule), more iterations; each trial at ``per_trial``
    micro-dollars (start-up included), as many as ``left_micros`` holds, none past ``max_trials``.
    ``finished_costs``: trial number -> what it was charged, for the last iteration's real cost."""
    rungs.cover(held)
    trials_left = None if max_trials is None else max(0, max_trials - held)  # new trials budget.trials allows
    new = 0  # trials this run creates (the unfinished ones are held already)

    def fund(n: int) -> int:
        """How many of ``n`` more new trials budget.trials and the money left allow."""
        if trials_left is not None:
            n = min(n, trials_left - new)
        if left_micros is not None and per_trial > 0:
            n = min(n, math.floor(left_micros / per_trial) - unfinished - new)
        return max(0, n)

    close: tuple[int, int] | None = None
    runs_unfinished = unfinished if left_micros is None or per_trial <= 0 else min(
        unfinished, math.floor(left_micros / per_trial))
    new = fund((rungs.max_trials() or held) - held)
    while max_trials is None or max_trials > (rungs.max_trials() or 0):
        left = None if left_micros is None else round(left_micros - (unfinished + new) * per_trial)
        last = sum(finished_costs.get(n, round(per_trial)) for n in rungs.last_iteration())
        if not holds_another_iteration(left, rungs.iteration_cost(), last):
            break
        if left is not None and left < CLOSE * min(rungs.iteration_cost(), last):
            close = (left, min(rungs.iteration_cost(), last))
        before = rungs.max_trials() or 0
        rungs.add_iteration()
        more = fund((rungs.max_trials() or 0) - before)
        if more == 0:
            break  # the controller plans no further iteration after one that launched nothing
        new += more
    adds = runs_unfinished + new
    micros = round(adds * per_trial)
    micros = micros if left_micros is None else min(micros, left_micros)
    return ThisRun(trials=adds, fewest=None, most=None, micros=micros, left_micros=left_micros,
                   trials_left=None if trials_left is None else trials_left + unfinished,
                   hours=hours_for(micros, rate_micros, workers, adds), close_call=close)


def close_call_note(kind: str, left: int, one: int) -> str:
    """The note on an iteration added with little room: what was left of the cap and what one is expected to cost."""
    return (f"{kind}: the last iteration counted is added with {format_usd(left)} left of the cap for one expected "
            f"to cost {format_usd(one)}: iterations that cost a little more than expected leave too little, and "
            "`costtune run` then stops one iteration sooner (the forecast's range shows both)")


def at_least_recorded(schedule: Schedule, trials: int, spent_micros: int, notes: list[str]) -> Schedule:
    """The whole study's figures never below what it already holds: at least ``trials`` trials started (the
    range's ends too) and ``spent_micros`` planned and expected; a note says when the plan from zero was less.

    A rung plan's money counts only what trials spend after their first report (start-up is shown apart), so it
    is not comparable with the study's spend and is left as planned; its trial counts are still clamped."""
    def at_least(value: int | None, floor: int) -> int | None:
        return None if value is None else max(value, floor)

    rungs_only = schedule.kind in (*PLAN_KINDS, "asha")
    money_floor = 0 if rungs_only else spent_micros
    clamped = dataclasses.replace(
        schedule, trials=at_least(schedule.trials, trials), trials_fewest=at_least(schedule.trials_fewest, trials),
        trials_most=at_least(schedule.trials_most, trials),
        planned_micros=at_least(schedule.planned_micros, money_floor),
        expected_micros=at_least(schedule.expected_micros, money_floor))
    if clamped == schedule:
        return schedule
    # each quantity on its own: only the ones the plan from zero falls short in are named
    lows = [v for v in (schedule.trials, schedule.trials_fewest) if v is not None and v < trials]
    parts = [f"{plural(min(lows), 'trial')} started, fewer than the {plural(trials, 'trial')} it holds"] if lows else []
    money = [v for v in (schedule.planned_micros, schedule.expected_micros) if v is not None and v < money_floor]
    if money:
        parts.append(f"{format_usd(min(money))}, less than the {format_usd(spent_micros)} it spent")
    if parts:
        notes.append(f"the whole study's plan from zero ({'; '.join(parts)}): shown as at least what the study "
                     "holds")
    return clamped
