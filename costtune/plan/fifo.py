"""Fifo trials a cap starts but cannot finish, for ``costtune plan``.

``costtune run`` starts a trial while the cap left funds its start-up and first report
(``costtune.runner.claims``); the budget then stops it before its end. ``workers`` trials start at once,
each with a share of a binding cap. The analytic plan counts those trials as partial ones.
"""

from __future__ import annotations

import numpy as np

from costtune.money import format_usd
from costtune.plan.shapes import Shape
from costtune.runner.firststeps import first_report_ms
from costtune.spec import SweepSpec
from costtune.words import plural


def partial_trials(spec: SweepSpec, shapes: list[Shape], cost: int, trials: int | None, planned: int | None,
                   notes: list[str]) -> tuple[int | None, int | None]:
    """Fifo trials started with the ones the cap cannot finish: a trial starts while the cap left funds its
    start-up and first report (``runner.claims``), and is then stopped by the budget; ``workers`` trials start at
    once, sharing the cap. Returns (trials, planned micro-dollars), with a note when no trial may finish."""
    cap, limit, workers = spec.budget.usd_micros, spec.max_trials, spec.resources.workers
    if cap is None or trials is None or cost <= 0:
        return trials, planned
    reach = mean_reach(spec, shapes)
    least = min(_reaches(spec, shapes), default=0)  # a searched placement the cap cannot carry moves to one it can
    if least > 0 and cap < least:
        searched = " on the cheapest searched placement" if len({(s.instance_type, s.spot) for s in shapes}) > 1 else ""
        notes.append(f"budget.usd: the {format_usd(cap)} cap cannot carry a trial to its first report (~"
                     f"{format_usd(least)} for start-up and first step{searched}): `costtune run` starts no trial")
        return 0, 0
    if reach <= 0 or reach >= cost:
        return trials, planned
    started = trials + (1 if cap - trials * cost >= least else 0)  # the last one, cut short by the cap
    wave = min(workers, cap // reach)  # the first trials start together, each with a share of the cap
    started = max(started, wave)
    started = started if limit is None else min(started, limit)
    if started <= trials:
        return trials, planned
    if cost > cap:
        notes.append(f"budget.usd: the {format_usd(cap)} cap cannot finish one trial (expected cost "
                     f"{format_usd(cost)}): a trial started is stopped by the budget before its end, counted as a "
                     "partial trial" + (f"; with {plural(workers, 'worker')} the cap is split between the "
                                         f"{plural(wave, 'trial')} started at once" if wave > 1 else ""))
    elif wave > 1 and cap / wave < cost:
        notes.append(f"budget.usd: with {plural(workers, 'worker')} the {format_usd(cap)} cap is split between the "
                     f"{plural(wave, 'trial')} started at once (about {format_usd(cap // wave)} each, a trial is "
                     f"expected to cost {format_usd(cost)}): no trial may finish; "
                     f"{'both' if wave == 2 else 'all'} are stopped by the budget")
    return started, cap


def mean_reach(spec: SweepSpec, shapes: list[Shape]) -> int:
    """Mean charge (micro-dollars) for a trial to reach its first report: start-up and first step (start-up
    alone for a shape without steps), billed."""
    costs = _reaches(spec, shapes)
    return round(float(np.mean(costs))) if costs else 0


def _reaches(spec: SweepSpec, shapes: list[Shape]) -> list[int]:
    """Each shape's billed charge to its first report (micro-dollars)."""
    rule = spec.resources.billing
    return [rule.charge(first_report_ms(s.startup_s, s.first_step_s), s.rate_micros) for s in shapes]
