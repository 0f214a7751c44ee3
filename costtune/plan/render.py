"""How ``costtune plan`` shows a plan: rich tables for a person, JSON for a script.

JSON money comes twice, as exact decimal text (``*_usd``) and integer micro-dollars (``*_micros``),
like the other commands' JSON.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from costtune.money import format_usd, micros_to_usd
from costtune.plan.analytic import SweepPlan
from costtune.plan.forecast import Forecast
from costtune.richtext import styled
from costtune.words import plural


def _money(micros: int | None) -> str:
    return "-" if micros is None else format_usd(micros)


def _usd(micros: int | None) -> str | None:
    return None if micros is None else str(micros_to_usd(micros))


def _num(value: float | None, fmt: str = ".1f") -> str:
    return "-" if value is None else format(value, fmt)


def render(plan: SweepPlan, console: Console) -> None:
    """The whole plan: the analytic tables, the forecast (when there is one), then the notes."""
    render_plan(plan, console)
    if plan.forecast is not None:
        render_forecast(plan.forecast, console)
    render_notes(plan, console)


def render_plan(plan: SweepPlan, console: Console) -> None:
    """The analytic part: brackets or rung ladder, money, start-up and minimum charges."""
    s = plan.schedule
    budget = " and ".join(x for x in (
        None if plan.budget_micros is None else format_usd(plan.budget_micros),
        None if plan.budget_trials is None else plural(plan.budget_trials, "trial")) if x) or "none"
    console.print(styled((f"plan: {plan.name}", "bold"), f"  provider {plan.provider}, scheduler {s.kind}, budget "
                         f"{budget}, {plural(plan.workers, 'worker')}; billing {plan.billing}"), highlight=False)
    if s.brackets:
        table = Table(title=f"{s.kind} brackets (eta {s.eta}, {plural(s.iterations, 'iteration')})",
                      title_justify="left")
        for col in ("bracket", "rungs ($)", "trials reaching each rung", "trials started", "planned"):
            table.add_column(col, justify="right" if col != "rungs ($)" else "left")
        for b in s.brackets:
            table.add_row(str(b.index), " ".join(format_usd(r) for r in b.rungs_micros),
                          " ".join(str(n) for n in b.trials_per_rung), str(b.trials_per_rung[0]),
                          format_usd(b.cost_micros))
        console.print(table)
    elif s.ladder_micros:
        console.print(f"rung ladder (eta {s.eta}): " + " -> ".join(format_usd(r) for r in s.ladder_micros),
                      highlight=False)
    totals = Table(title="money", title_justify="left", show_header=False)
    totals.add_column("what")
    totals.add_column("value", justify="right")
    approx = "~" if s.trials_estimated else ""
    totals.add_row("trials started", "-" if s.trials is None else f"{approx}{s.trials}")
    if s.trial_cost_micros is not None:
        totals.add_row("expected cost of one trial", format_usd(s.trial_cost_micros))
    totals.add_row("planned", _money(s.planned_micros))
    if s.expected_micros is not None and s.expected_micros != s.planned_micros:
        totals.add_row("expected (trials ending below a rung)", format_usd(s.expected_micros))
    if plan.launches is not None:
        totals.add_row("launches (trials + relaunches after preemption)", f"~{plan.launches:.0f}")
        totals.add_row("of which start-up, all launches (billed, no training)", _money(plan.overhead_micros))
    p = plan.preemption
    totals.add_row("preemptions per instance-hour (spot)", f"{p.per_hour:g}")
    if p.expected is not None:
        totals.add_row("expected preemptions", f"{p.expected:.1f}")
        totals.add_row("expected preemption waste (work lost)", _money(p.waste_micros))
        totals.add_row("start-up paid again by relaunches", _money(p.restart_micros))
    console.print(totals)
    over = Table(title="start-up and minimum charge per launch", title_justify="left")
    for col in ("instance", "market", "$/hour", "start-up", "start-up $", "minimum charge"):
        over.add_column(col, justify="left" if col in ("instance", "market") else "right")
    for o in plan.overheads:
        over.add_row(o.instance_type or "-", o.market, format_usd(o.rate_micros), f"{o.startup_seconds:g} s",
                     format_usd(o.startup_micros), f"{format_usd(o.minimum_micros)} ({o.minimum_seconds} s)")
    console.print(over)


def render_notes(plan: SweepPlan, console: Console) -> None:
    notes = ([plan.preemption.note] if plan.preemption.note else []) + plan.notes
    if plan.forecast is not None and plan.forecast.stand_in:
        notes.append(stand_in_note(plan.forecast))
    for note in notes:
        console.print(styled((f"note: {note}", "dim")), highlight=False)


def stand_in_note(f: Forecast) -> str:
    return (f"the forecast's runs drew configurations at random in place of the sweep's {f.stand_in} sampler "
            "(fitting its model for every trial takes minutes a run): spend, trials and preemptions follow the "
            f"scheduler and the cap; the best metric is random search's, which {f.stand_in} usually beats; "
            f"--exact-sampler runs {f.stand_in} itself")


def render_forecast(f: Forecast, console: Console) -> None:
    """The Monte Carlo forecast: spend, best metric, trials and preemptions (median, p10, p90)."""
    if f.stand_in:
        console.print(f"forecast runs drew configurations at random in place of {f.stand_in} (see the note; "
                      "--exact-sampler runs it)", highlight=False)
    table = Table(title=f"forecast: {len(f.runs)} simulated runs", title_justify="left")
    for col in ("", "median", "p10", "p90"):
        table.add_column(col, justify="right" if col else "left")
    table.add_row("spend", format_usd(f.spend(50)), format_usd(f.spend(10)), format_usd(f.spend(90)))
    table.add_row("best metric", _num(f.best(50), ".6g"), _num(f.best(10), ".6g"), _num(f.best(90), ".6g"))
    for label, attr in (("trials", "trials"), ("preemptions", "preemptions")):
        table.add_row(label, *(f"{f.quantile(attr, q):g}" for q in (50, 10, 90)))
    table.add_row("preemption waste", *(format_usd(round(f.quantile("waste_micros", q))) for q in (50, 10, 90)))
    table.add_row("simulated hours", *(f"{f.quantile('sim_seconds', q) / 3600:.1f}" for q in (50, 10, 90)))
    console.print(table)
    cap = f.p_cap
    if cap is not None:
        console.print(f"P(reach cap) {cap:.2f}  (runs spending >= 99% of {format_usd(f.cap_micros or 0)})",
                      highlight=False)


def to_dict(plan: SweepPlan) -> dict[str, Any]:
    s, p, f = plan.schedule, plan.preemption, plan.forecast
    out: dict[str, Any] = {
        "name": plan.name, "provider": plan.provider, "scheduler": plan.scheduler,
        "budget": {"usd": _usd(plan.budget_micros), "usd_micros": plan.budget_micros, "trials": plan.budget_trials},
        "workers": plan.workers, "billing": plan.billing, "rate_source": plan.rate_source,
        "plan": {
            "kind": s.kind, "eta": s.eta, "ladder_usd": [_usd(r) for r in s.ladder_micros],
            "ladder_micros": list(s.ladder_micros), "iterations": s.iterations,
            "brackets": [{"index": b.index, "rungs_usd": [_usd(r) for r in b.rungs_micros],
                          "rungs_micros": list(b.rungs_micros), "trials_per_rung": list(b.trials_per_rung),
                          "trials": b.trials_per_rung[0], "cost_usd": _usd(b.cost_micros),
                          "cost_micros": b.cost_micros} for b in s.brackets],
            "trials": s.trials, "trials_estimated": s.trials_estimated,
            "planned_usd": _usd(s.planned_micros), "planned_micros": s.planned_micros,
            "expected_usd": _usd(s.expected_micros), "expected_micros": s.expected_micros,
            "trial_cost_usd": _usd(s.trial_cost_micros), "trial_cost_micros": s.trial_cost_micros,
        },
        "overheads": [{"instance_type": o.instance_type, "market": o.market, "usd_per_hour": _usd(o.rate_micros),
                       "startup_seconds": o.startup_seconds, "startup_usd": _usd(o.startup_micros),
                       "startup_micros": o.startup_micros, "minimum_seconds": o.minimum_seconds,
                       "minimum_usd": _usd(o.minimum_micros), "minimum_micros": o.minimum_micros}
                      for o in plan.overheads],
        "launches": plan.launches, "overhead_usd": _usd(plan.overhead_micros), "overhead_micros": plan.overhead_micros,
        "preemption": {"per_hour": p.per_hour, "instance_hours": p.instance_hours, "expected": p.expected,
                       "waste_usd": _usd(p.waste_micros), "waste_micros": p.waste_micros,
                       "restart_usd": _usd(p.restart_micros), "restart_micros": p.restart_micros, "note": p.note},
        "forecast": None,
        "notes": plan.notes + ([stand_in_note(f)] if f is not None and f.stand_in else []),
    }
    if f is not None:
        out["forecast"] = {
            "runs": len(f.runs), "sampler": f.sampler, "stands_in_for": f.stand_in,
            "spend_median_usd": _usd(f.spend(50)), "spend_p10_usd": _usd(f.spend(10)),
            "spend_p90_usd": _usd(f.spend(90)), "spend_median_micros": f.spend(50),
            "spend_p10_micros": f.spend(10), "spend_p90_micros": f.spend(90),
            "p_reach_cap": f.p_cap, "best_median": f.best(50), "best_p10": f.best(10), "best_p90": f.best(90),
            "preemptions_median": f.quantile("preemptions", 50),
            "waste_median_micros": round(f.quantile("waste_micros", 50)),
            "trials_median": f.quantile("trials", 50),
            "samples": [{"seed": r.seed, "spend_micros": r.spend_micros, "best_value": r.best_value,
                         "preemptions": r.preemptions, "waste_micros": r.waste_micros, "trials": r.trials,
                         "sim_seconds": r.sim_seconds} for r in f.runs],
        }
    return out
