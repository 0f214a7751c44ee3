"""What a simulated attempt spends before its first report, known before any is measured.

``costtune plan`` and ``costtune run`` count it the same way: the simulation's ``startup_seconds``
plus the workload's time for the attempt's first step, for its own configuration and instance type.
Kept in the runner (the plan imports it) so that starting a controller never loads the planner.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from costtune.spec import SweepSpec

__all__ = ["FirstSteps", "first_report_ms", "first_steps", "step_seconds"]


def step_seconds(workload: Callable[[dict, int, str], object], params: dict, step: int,
                 instance_type: str | None) -> float:
    """Seconds the simulated ``workload`` takes for ``step`` of the configuration ``params`` on ``instance_type``
    (what it returns second). Raises what the user's workload raises."""
    return float(workload(params, step, instance_type or "")[1])  # type: ignore[index]


def first_report_ms(startup_s: float, first_step_s: float) -> int:
    """Billable milliseconds from an attempt's launch to its first report: its start-up and its first step. One
    figure for ``costtune plan`` (``plan.fifo``: what a trial needs to report at all) and ``costtune run``
    (``runner.claims``: what a launch must carry it to, before a first report is measured)."""
    return round((startup_s + first_step_s) * 1000)


class FirstSteps:
    """Seconds to the first report of a simulated sweep's attempts, known before any is measured as ``costtune
    plan`` knows it: the simulation's ``startup_seconds`` and the workload's time for the attempt's first step,
    for the attempt's own configuration and instance type (``step_seconds``, as the plan's shapes are timed)."""

    def __init__(self, spec: SweepSpec) -> None:
        from costtune.providers.simulated import load_workload

        sim = spec.resources.simulation
        if sim is None:
            raise ValueError("FirstSteps: the sweep is not simulated (use first_steps, which returns None)")
        self.startup_s = sim.startup_seconds
        self._workload = load_workload(sim.workload)

    def first_report_ms(self, params: dict | None, instance_type: str | None, step: int = 0) -> int:
        """Billable ms from launch to the first report of an attempt of ``params`` on ``instance_type`` starting
        at ``step`` (a relaunch from a checkpoint starts past 0); start-up alone when ``params`` is None or the
        workload fails on them (the attempt itself then fails, and says why)."""
        first = 0.0
        if params is not None:
            try:
                first = step_seconds(self._workload, params, step, instance_type)
            except Exception:  # the user's workload: its failure is the attempt's to report, not the estimate's
                first = 0.0
            if not math.isfinite(first) or first < 0:
                first = 0.0
        return first_report_ms(self.startup_s, first)


def first_steps(spec: SweepSpec) -> FirstSteps | None:
    """The sweep's ``FirstSteps``, or None when it is not simulated (nothing knows its step times before a run)."""
    return FirstSteps(spec) if spec.resources.simulation is not None else None
