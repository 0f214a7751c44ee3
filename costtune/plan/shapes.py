"""Sampled workload shapes of a simulated sweep: where a configuration runs and how long its steps take.

``costtune plan`` works out expected costs from these. A shape asks the workload for its first
``EXACT_STEPS`` steps one by one, later steps only every few steps (each answer standing for the
steps up to the next one asked), and stops at the money no trial can pass (the top rung, or
budget.usd): a 2,000-step workload costs about a hundred calls per shape, not 2,000.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from costtune.errors import SpecError
from costtune.runner.firststeps import step_seconds
from costtune.spec import SweepSpec
from costtune.spec.resources import CHEAPEST

SHAPE_SAMPLES = 48  # configurations drawn to learn a simulated workload's step times
EXACT_STEPS = 32  # a shape's first steps, each asked of the workload
SPARSE_STEPS = 96  # about how many more steps are asked, evenly spread over the rest


@dataclass(frozen=True)
class Shape:
    """One sampled configuration: where it runs and how long its start-up and steps take.

    ``steps`` is run-length coded in step order: (seconds of one step, how many steps in a row);
    ``rate_micros`` is micro-dollars per hour.
    """

    rate_micros: int
    spot: bool
    startup_s: float
    steps: tuple[tuple[float, int], ...]
    instance_type: str | None = None
    market: str = ""  # the market it runs on (cheapest-expected resolved to spot or on-demand)

    @property
    def steps_total_s(self) -> float:
        return sum(seconds * n for seconds, n in self.steps)

    @property
    def first_step_s(self) -> float:
        return self.steps[0][0] if self.steps else 0.0


Placed = Callable[[str | None, str], tuple[str | None, str] | None]


def sample_shapes(spec: SweepSpec, notes: list[str], placed: Placed | None = None) -> list[Shape]:
    """Sampled configurations of a simulated sweep, timed by calling its workload; [] when local.

    ``placed(instance type, market)``: where `costtune run` launches a trial asking for that placement, as the
    spend policies' launch rules amend it (``costtune.plan.rules``), or None when they deny it: a configuration
    is timed and priced where it launches, and one on a denied placement (the run fails it unlaunched, at no
    cost) is left out."""
    sim, res = spec.resources.simulation, spec.resources
    if sim is None:
        return []
    from costtune.providers.simulated import load_workload

    workload = load_workload(sim.workload)
    rng = np.random.default_rng(spec.sampler.get("seed", 0))
    ceiling = _ceiling_micros(spec)
    shapes = []
    denied = 0
    failures: list[Exception] = []
    for _ in range(SHAPE_SAMPLES):
        params = spec.space.sample(rng)
        itype, market = res.placement(params)
        if placed is not None and market != CHEAPEST:  # cheapest-expected: its market is resolved first, below
            where = placed(itype, market)
            if where is None:
                denied += 1
                continue
            itype, market = where
        # cheapest-expected: timed at the cheaper rate (the longer horizon), its market resolved below
        rate = min(res.rate_for(itype, "spot"), res.rate_for(itype, "on-demand")) if market == CHEAPEST else \
            res.rate_for(itype, market)
        # Past the money no trial can spend, step times change nothing the plan shows. Rungs count the money
        # after a trial's first report (its start-up and first step not included): their top rung is that far
        # past the first step; budget.usd counts from the launch, start-up included.
        rungs = _rung_ceiling(spec)
        horizon = math.inf if ceiling is None or rate <= 0 else ceiling / rate * 3600 - (
            0.0 if rungs else sim.startup_seconds)
        if spec.budget.trial_seconds is not None:
            horizon = min(horizon, spec.budget.trial_seconds)
        try:
            steps = _step_runs(lambda step, p=params, t=itype: step_seconds(workload, p, step, t),
                               sim.max_steps, horizon, past_first=rungs)
        except Exception as exc:  # the user's workload: its failure is a finding, not a crash of the plan
            failures.append(exc)
            continue
        shapes.append(Shape(rate, market == "spot", sim.startup_seconds, steps, itype, market))
    if failures and not shapes:  # every trial the run launches would fail: no figure of the plan means anything
        raise SpecError("resources.simulation.workload",
                        f"workload {sim.workload} failed on every one of the {len(failures)} sampled "
                        f"configurations, so every trial of `costtune run` would fail; the first error: "
                        f"{_error_text(failures[0])}")
    if failures:
        notes.append(f"workload {sim.workload} failed on {len(failures)} of the {len(failures) + len(shapes)} "
                     f"sampled configurations ({_error_text(failures[0])}): `costtune run` fails such trials; "
                     "the plan prices the others")
    if denied:
        notes.append(f"{denied} of the {SHAPE_SAMPLES} sampled configurations ask for a placement a spend policy "
                     "denies: `costtune run` fails such a trial without launching it (no cost; it counts in "
                     "budget.trials); the analytic plan leaves them out")
    return _placed(_resolved(spec, shapes, notes), placed, spec, notes)


def _error_text(exc: Exception) -> str:
    """A workload's error as the run's failed-trial lines show it: its type and message."""
    return f"{type(exc).__name__}: {exc}"


def _placed(shapes: list[Shape], placed: Placed | None, spec: SweepSpec, notes: list[str]) -> list[Shape]:
    """Shapes whose cheapest-expected market was resolved, where the launch rules place them (``placed``): the
    same instance type at the placed market's rate; one the rules move to another type or deny is left out."""
    if placed is None or spec.resources.market != CHEAPEST:
        return shapes
    out = []
    for s in shapes:
        where = placed(s.instance_type, s.market)
        if where is not None and where[0] == s.instance_type:
            out.append(Shape(spec.resources.rate_for(where[0], where[1]), where[1] == "spot", s.startup_s, s.steps,
                             where[0], where[1]))
    if len(out) < len(shapes):
        notes.append(f"{len(shapes) - len(out)} of the {len(shapes)} sampled configurations on market {CHEAPEST} "
                     "launch on another instance type or not at all under the spend policies' launch rules: the "
                     "analytic plan leaves them out")
    return out or shapes


def _resolved(spec: SweepSpec, shapes: list[Shape], notes: list[str]) -> list[Shape]:
    """Shapes on ``market: cheapest-expected`` on the market the controller would choose for them
    (``costtune.plan.markets``), at that market's rate."""
    from costtune.plan.markets import resolve_market

    if not any(s.market == CHEAPEST for s in shapes):
        return shapes
    mean_hours = float(np.mean([s.startup_s + s.steps_total_s for s in shapes])) / 3600
    out = []
    for s in shapes:
        market = resolve_market(spec, s.instance_type, s.market, mean_hours) if s.market == CHEAPEST else s.market
        out.append(Shape(spec.resources.rate_for(s.instance_type, market), market == "spot", s.startup_s, s.steps,
                         s.instance_type, market))
    spot = sum(s.spot for s in out)
    notes.append(f"market {CHEAPEST}: spot for {spot} of the {len(out)} sampled configurations, on-demand for the "
                 "others, as the controller chooses at each launch (expected cost of the trial's work on each, "
                 f"{spec.resources.simulation.preemptions_per_hour if spec.resources.simulation else 0:g} "
                 "preemptions/h); `costtune trials STUDY N` shows each launch's choice")
    return out


def _rung_ceiling(spec: SweepSpec) -> bool:
    """Whether the most one trial can spend is a top rung (money after its first report)."""
    return "max_usd_micros" in spec.scheduler and spec.scheduler["type"] != "fifo"


def _ceiling_micros(spec: SweepSpec) -> int | None:
    """The most one trial can spend: the top rung for rung schedulers, else budget.usd (None: no bound)."""
    cfg = spec.scheduler
    if _rung_ceiling(spec):
        return int(cfg["max_usd_micros"])
    return spec.budget.usd_micros


def _step_runs(seconds_at: Callable[[int], float], max_steps: int, horizon_s: float,
               past_first: bool = False) -> tuple[tuple[float, int], ...]:
    """Step times as (seconds, count) runs, up to ``max_steps`` or just past ``horizon_s`` seconds (``past_first``:
    seconds after the first step, as rungs count); the first step always, even past the horizon (a cap below the
    start-up): what a trial needs to its first report counts it.

    The first ``EXACT_STEPS`` steps are asked one by one; later ones in strides of about
    (max_steps - EXACT_STEPS) / SPARSE_STEPS steps, each stride timed by its middle step.
    """
    runs: list[tuple[float, int]] = []
    step, total = 0, 0.0
    stride = max(1, (max_steps - EXACT_STEPS) // SPARSE_STEPS)
    while step < max_steps and (not runs or total <= horizon_s + (runs[0][0] if past_first else 0.0)):
        n = 1 if step < EXACT_STEPS else min(stride, max_steps - step)
        last = runs[-1][0] if runs else 0.0
        if n > 1 and last > 0 and math.isfinite(horizon_s):  # no further than it takes to pass the horizon
            reach = horizon_s + (runs[0][0] if past_first else 0.0)
            n = max(1, min(n, math.ceil((reach - total) / last) + 1))
        seconds = seconds_at(step + n // 2)
        if runs and runs[-1][0] == seconds:
            runs[-1] = (seconds, runs[-1][1] + n)
        else:
            runs.append((seconds, n))
        step += n
        total += seconds * n
    return tuple(runs)
