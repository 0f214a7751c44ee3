"""``costtune plan``: what a sweep will cost, before any money is spent.

analytic.py works out rungs, brackets, overheads and preemption waste; forecast.py runs the sweep
on the simulator many times (Monte Carlo); render.py shows the plan as tables or JSON.
"""

from costtune.plan.analytic import SweepPlan, build_plan

__all__ = ["SweepPlan", "build_plan"]
