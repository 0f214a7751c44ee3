"""The preemption waste a plan can expect: how often spot attempts are preempted and what that loses.

Part of ``costtune plan`` (``costtune.plan.analytic``): a simulated sweep's ``preemptions_per_hour`` over the
instance-hours the plan's money buys, each preemption losing the work since the attempt's last checkpoint
and paying its start-up again.
"""

from __future__ import annotations

from dataclasses import dataclass

from costtune.plan.shapes import Shape
from costtune.spec import SweepSpec
from costtune.words import plural


@dataclass(frozen=True)
class Preemption:
    per_hour: float
    instance_hours: float | None
    expected: float | None  # preemptions over the plan
    waste_micros: int | None  # work lost (billed since the last checkpointed step)
    restart_micros: int | None  # start-up paid again by the relaunches
    note: str = ""


def preemption_estimate(spec: SweepSpec, planned: float | None, trials: int | None,
                        shapes: list[Shape]) -> Preemption:
    """Preemptions a plan of ``planned`` micro-dollars over ``trials`` trials can expect, and what they cost.

    Averaged over the placements ``shapes``: instance-hours the money buys, times the simulation's
    ``preemptions_per_hour`` (spot only), each losing the work since its last checkpoint
    (``_lost_seconds``) and paying start-up again. Local and AWS plans model no rate (a note says so).
    """
    sim = spec.resources.simulation
    if sim is None and spec.resources.provider == "aws":
        return Preemption(0.0, None, None, None, None, "aws spot trials may be preempted; no rate is modelled")
    if sim is None:
        return Preemption(0.0, None, 0.0, 0, 0, "local trials are not preempted")
    if sim.preemption_trace is not None:
        return Preemption(0.0, None, None, None, None,
                          f"preemption_trace: {plural(len(sim.preemption_trace), 'moment')}, each preempting every "
                          "spot attempt running then; see the forecast")
    if planned is None or not shapes:
        return Preemption(sim.preemptions_per_hour, None, None, None, None, "planned money unknown")
    trials = trials or 1
    hours = per_dollar = waste = restart = 0.0
    for s in shapes:
        hours_i = planned / s.rate_micros  # instance-hours if the whole plan ran on this placement
        rate_i = sim.preemptions_per_hour if s.spot else 0.0
        lost_s = _lost_seconds(s, planned / trials / s.rate_micros * 3600, sim.checkpoint)
        hours += hours_i
        per_dollar += hours_i * rate_i
        waste += hours_i * rate_i * lost_s / 3600 * s.rate_micros
        restart += hours_i * rate_i * s.startup_s / 3600 * s.rate_micros
    n = len(shapes)
    note = "" if any(s.spot for s in shapes) else "on-demand instances are not preempted"
    return Preemption(sim.preemptions_per_hour, hours / n, per_dollar / n, round(waste / n), round(restart / n), note)


def _lost_seconds(shape: Shape, attempt_s: float, checkpoint: bool) -> float:
    """Expected seconds lost when a preemption lands uniformly in an attempt of ``attempt_s``.

    With checkpoints only the time since the last report is lost: over intervals of length L
    (start-up plus the first step, then each step) that is sum(L**2) / (2 * sum(L)).
    """
    total = squares = 0.0
    left = attempt_s
    first = True
    for seconds, count in shape.steps:
        runs = [(shape.startup_s + seconds, 1), (seconds, count - 1)] if first else [(seconds, count)]
        first = False
        for length, n in runs:
            if left <= 0 or n <= 0:
                continue
            whole = n if length <= 0 else min(n, int(left // length))
            total += whole * length
            squares += whole * length * length
            left -= whole * length
            if whole < n and left > 0:  # the attempt ends part-way through this interval
                total += left
                squares += left * left
                left = 0.0
        if left <= 0:
            break
    if total <= 0:
        return 0.0
    return squares / (2 * total) if checkpoint else total / 2
