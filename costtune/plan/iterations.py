"""Launches and Hyperband iterations for ``costtune plan``.

``launches``: a plan's trials and preemption relaunches, and their start-up. ``more_iterations``: the iterations
``costtune run`` adds at a Hyperband (SH, BOHB) plan's end while what is left of the cap holds one, by the
controller's own rule (``schedulers.hyperband.holds_another_iteration``), so a new study's plan counts what a run
does. ``whole_study``: a resumed study's whole plan, the trials it holds and those the next run adds.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import numpy as np

from costtune.money import format_usd
from costtune.plan.preemption import Preemption, preemption_estimate
from costtune.plan.shapes import Shape
from costtune.plan.startup import startup_charge
from costtune.plan.thisrun import CLOSE, close_call_note
from costtune.schedulers.hyperband import PLAN_KINDS, holds_another_iteration
from costtune.spec import SweepSpec
from costtune.words import plural

if TYPE_CHECKING:
    from costtune.plan.analytic import Schedule
    from costtune.plan.overheads import Overhead
    from costtune.plan.stored import StoredStudy


def launches(spec: SweepSpec, schedule: Schedule, shapes: list[Shape],
              overheads: list[Overhead]) -> tuple[Preemption, float | None, int | None]:
    """The plan's preemptions, launches (trials and relaunches) and their start-up (micro-dollars)."""
    planned = schedule.planned_micros if schedule.expected_micros is None else schedule.expected_micros
    preemption = preemption_estimate(spec, planned, schedule.trials, shapes)
    if schedule.trials is None:
        return preemption, None, None
    launches = schedule.trials + (preemption.expected or 0.0)
    per_launch = (float(np.mean([startup_charge(s.startup_s, s.rate_micros) for s in shapes]))
                  if shapes else float(np.mean([o.startup_micros for o in overheads])))
    return preemption, launches, round(launches * per_launch)


def more_iterations(spec: SweepSpec, schedule: Schedule, shapes: list[Shape], overheads: list[Overhead],
                     notes: list[str]) -> Schedule:
    """A Hyperband (SH, BOHB) plan with the iterations `costtune run` adds at its end: another while what is left
    of the cap holds one, as planned or as one is expected to cost (start-up and preemption waste included),
    by the controller's own rule (``holds_another_iteration``); none past budget.trials."""
    cap, limit, n = spec.budget.usd_micros, spec.max_trials, schedule.iterations
    if schedule.kind not in PLAN_KINDS or cap is None or not n or schedule.trials is None \
            or schedule.planned_micros is None:
        return schedule
    preemption, _, overhead = launches(spec, schedule, shapes, overheads)
    rungs = schedule.planned_micros if schedule.expected_micros is None else schedule.expected_micros
    one = (rungs + (overhead or 0) + (preemption.waste_micros or 0)) / n  # one iteration, as it is expected to cost
    planned_one = schedule.planned_micros // n
    per_trials = schedule.trials // n
    more, close = n, None
    while (limit is None or limit > per_trials * more) and holds_another_iteration(
            round(cap - more * one), planned_one, round(one)):
        left = round(cap - more * one)
        close = (left, min(planned_one, round(one))) if left < CLOSE * min(planned_one, one) else None
        more += 1
    if close is not None:
        notes.append(close_call_note(schedule.kind, *close))
    if more == n:
        return schedule
    trials = per_trials * more if limit is None else min(limit, per_trials * more)
    scale = trials / schedule.trials
    notes.append(f"{schedule.kind}: an iteration is expected to cost about {format_usd(round(one))} with start-up; "
                 f"what is left of the cap after {plural(n, 'iteration')} holds another, which `costtune run` adds "
                 f"at the plan's end: {plural(more, 'iteration')}, {plural(trials, 'trial')}")
    return dataclasses.replace(
        schedule, iterations=more, trials=trials, planned_micros=round(schedule.planned_micros * scale),
        expected_micros=None if schedule.expected_micros is None else round(schedule.expected_micros * scale))


def whole_study(schedule: Schedule, resumes: StoredStudy, adds: int) -> Schedule:
    """A resumed Hyperband (SH, BOHB) study's whole plan: the trials it holds and the new ones the next run adds
    (``thisrun.rung_this_run``, iterations by the controller's rule), its iterations and rung money to match."""
    if not schedule.iterations or not schedule.trials or schedule.planned_micros is None:
        return schedule
    per_trials = max(1, schedule.trials // schedule.iterations)
    trials = resumes.trials + max(0, adds - resumes.unfinished)
    scale = trials / schedule.trials
    return dataclasses.replace(
        schedule, trials=trials, iterations=max(schedule.iterations, math.ceil(trials / per_trials)),
        planned_micros=round(schedule.planned_micros * scale),
        expected_micros=None if schedule.expected_micros is None else round(schedule.expected_micros * scale))
