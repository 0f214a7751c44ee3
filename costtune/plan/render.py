"""How ``costtune plan`` shows a plan: rich tables for a person, JSON for a script.

JSON money comes twice, as exact decimal text (``*_usd``) and integer micro-dollars (``*_micros``),
like the other commands' JSON.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from costtune.money import format_usd, format_usd_column, format_usd_exact, usd_places, usd_text
from costtune.plan.analytic import SweepPlan
from costtune.plan.forecast import Forecast
from costtune.reports.fmt import format_duration
from costtune.reports.table import Column, FittedTable
from costtune.richtext import styled
from costtune.samplers import describe_sampler
from costtune.schedulers import describe_scheduler
from costtune.words import plural


def _money(micros: int | None) -> str:
    return "-" if micros is None else format_usd(micros)


def _num(value: float | None, fmt: str = ".1f") -> str:
    return "-" if value is None else format(value, fmt)


def render(plan: SweepPlan, console: Console) -> None:
    """The whole plan: the analytic tables, the forecast (when there is one), then the notes."""
    render_plan(plan, console)
    if plan.forecast is not None:
        render_forecast(plan.forecast, console, from_zero=plan.resumes is not None)
    render_notes(plan, console)


def render_plan(plan: SweepPlan, console: Console) -> None:
    """The analytic part: brackets or rung ladder, money, start-up and minimum charges."""
    s = plan.schedule
    budget = " and ".join(x for x in (
        None if plan.budget_micros is None else format_usd(plan.budget_micros),
        None if plan.budget_trials is None else plural(plan.budget_trials, "trial")) if x) or "none"
    sampler = describe_sampler({**plan.sampler, "seed": "drawn at run time"} if plan.seed_at_run else plan.sampler,
                               plan.scheduler, plan.dimensions)  # bohb: its own model proposes
    console.print(styled((f"plan: {plan.name}", "bold"), f"  provider {plan.provider}, sampler {sampler}, scheduler "
                         f"{describe_scheduler(plan.scheduler)}, budget {budget}, {plural(plan.workers, 'worker')}; "
                         f"billing {plan.billing}"), highlight=False)
    if plan.resumes is not None:
        r = plan.resumes
        left_micros = r.left_micros(plan.budget_micros)
        left = "" if left_micros is None else f", {format_usd(left_micros)} left under its cap"
        queued = f", {r.unfinished} queued" if r.unfinished else ""
        console.print(f"resumes study {r.info.name!r} of {r.where} ({plural(r.finished, 'trial')} finished{queued}, "
                      f"{format_usd(r.spent_micros)} spent{left}): as `costtune run` would, with its stored sampler, "
                      "scheduler, rungs and cap; the plan below is the whole study's, spent money included, and "
                      "`this run` after it what the next `costtune run` adds",
                      highlight=False, soft_wrap=True)
    if plan.scheduler.get("chosen"):  # no min_usd/max_usd in the file: chosen at sweep start, kept on resume
        console.print(f"rungs chosen where the file gives none: {plan.scheduler['chosen']}", highlight=False,
                      soft_wrap=True)
    if s.brackets:
        places = usd_places(*(r for b in s.brackets for r in b.rungs_micros))  # every rung lines up
        console.print(FittedTable([
            Column("bracket", [str(b.index) for b in s.brackets], keep=0),
            Column("rungs ($)", [" ".join(format_usd(r, places) for r in b.rungs_micros) for b in s.brackets],
                   keep=1, justify="left", wrap=16),
            Column("trials reaching each rung", [" ".join(str(n) for n in b.trials_per_rung) for b in s.brackets],
                   keep=2, justify="left", wrap=12),
            Column("trials started", [str(b.trials_per_rung[0]) for b in s.brackets], keep=4),
            Column("planned", format_usd_column([b.cost_micros for b in s.brackets]), keep=3),
        ], title=f"{s.kind} brackets (eta {s.eta}, {plural(s.iterations, 'iteration')})"))
    elif s.ladder_micros:
        # to the micro-dollar, as stored: its first rung is min_usd, which a user may copy into the file
        console.print(f"rung ladder (eta {s.eta}): " + " -> ".join(format_usd_exact(r) for r in s.ladder_micros),
                      highlight=False)
    # without a cost of one trial (no workload model, no budget.trial_seconds) the figures are the caps: bounds
    unknown = s.trial_cost_micros is None and plan.total_micros is None and s.planned_micros is not None
    approx = "at least " if s.bounded else "at most " if unknown else "~" if s.trials_estimated else ""
    most = "at most " if s.bounded or unknown else ""  # a bound (budget.trial_seconds, the caps), not an expectation
    started = "-" if s.trials is None else f"{approx}{s.trials}"
    if s.trials is not None and s.trials_fewest is not None and s.trials_most is not None:
        started += f" ({s.trials_fewest} to {s.trials_most})"
    rows: list[tuple[str, str]] = [("trials started", started)]
    if plan.launch_rules is not None and plan.launch_rules.all_denied:  # the note after the tables says why
        rows.insert(0, ("spend policies' launch rules", "deny every placement: no trial starts"))
    if s.trial_cost_micros is not None:
        label = ("cost of one trial (bounded by budget.trial_seconds)" if s.bounded else
                 "cost of one trial (mean of the study's finished trials)" if s.cost_source == "measured" else
                 "expected cost of one trial")
        rows.append((label, most + format_usd(s.trial_cost_micros)))
    rungs = plan.total_micros is not None  # rungs count money after a trial's first report: start-up comes on top
    rows.append(("planned (rungs, after each trial's first report)" if rungs else "planned",
                 "-" if s.planned_micros is None else most + format_usd(s.planned_micros)))
    if plan.resumes is not None:
        rows.append(("already spent (the study so far)", format_usd(plan.resumes.spent_micros)))
        if plan.budget_micros is not None:
            rows.append(("left under the cap", _money(plan.resumes.left_micros(plan.budget_micros))))
    if s.expected_micros is not None and s.expected_micros != s.planned_micros:
        rows.append(("expected (trials ending below a rung)", format_usd(s.expected_micros)))
    if plan.launches is not None:
        rows.append(("launches (trials + relaunches after preemption)",
                     f"{'at least ' if s.bounded else 'at most ' if unknown else '~'}{plan.launches:.0f}"))
        rows.append(("start-up, all launches (billed, no training; on top of the rungs)" if rungs else
                     "of which start-up, all launches (billed, no training)", _money(plan.overhead_micros)))
    if plan.total_micros is not None:
        rows.append(("expected in all (rungs, start-up, preemption waste)", format_usd(plan.total_micros)))
    if plan.hours is not None:
        about = most or "~"
        rows.append(("time: instance-hours, billed (start-up included)", f"{about}{plan.hours.instance:.2f} h"))
        rows.append((f"time: wall clock at {plural(plan.workers, 'worker')}",
                     f"{about}{format_duration(plan.hours.wall * 3600)}"))
    c = plan.policy_cap
    if c is not None:  # a spend policy's hard cap stops `costtune run` whatever budget.usd says
        rows.append((f"policy {c.room.policy}: hard cap, left now ({c.room.window})",
                     f"{format_usd(c.room.left_micros)} of {format_usd(c.room.cap_micros)}"))
        if c.binds:
            rows.append((f"within policy {c.room.policy}: spend at most, trials",
                         f"{format_usd(c.spend_micros)}, " + ("-" if c.trials is None else f"~{c.trials}")))
    p = plan.preemption
    rows.append(("preemptions per instance-hour (spot)", f"{p.per_hour:g}"))
    if p.expected is not None:
        rows.append(("expected preemptions", f"{p.expected:.1f}"))
        rows.append(("expected preemption waste (work lost)", _money(p.waste_micros)))
        rows.append(("start-up paid again by relaunches", _money(p.restart_micros)))
    console.print(FittedTable([Column("what", [r[0] for r in rows], keep=0, justify="left", wrap=20),
                               Column("value", [r[1] for r in rows], keep=1)], title="money"))
    o = plan.overheads
    console.print(FittedTable([
        Column("instance", [x.instance_type or "-" for x in o], keep=0, justify="left"),
        Column("market", [x.market or "-" for x in o], keep=4, justify="left"),
        Column("$/hour", format_usd_column([x.rate_micros for x in o]), keep=3),
        Column("start-up", [format_duration(x.startup_seconds) for x in o], keep=5),
        Column("start-up $", format_usd_column([x.startup_micros for x in o]), keep=1),
        Column("minimum charge", [f"{m} ({format_duration(x.minimum_seconds)})" for m, x in
                                  zip(format_usd_column([x.minimum_micros for x in o]), o, strict=True)], keep=2),
    ], title="start-up and minimum charge per launch"))
    if plan.this_run is not None:
        render_this_run(plan, console)


def render_this_run(plan: SweepPlan, console: Console) -> None:
    """A resume: what the study already ran and spent, and what the next `costtune run` adds."""
    r, t = plan.resumes, plan.this_run
    assert r is not None and t is not None
    trials = "-" if t.trials is None else f"{'at least ' if t.bounded else '~'}{t.trials}"
    most = "at most " if t.bounded else "~"
    if t.trials is not None and t.fewest is not None and t.most is not None:
        trials += f" ({t.fewest} to {t.most})"
    rows = [("already run (the study so far)", f"{plural(r.finished, 'trial')} finished")]
    if r.unfinished:
        rows.append(("queued (this run runs them first)", plural(r.unfinished, "trial")))
    rows += [("already spent", format_usd(r.spent_micros)),
            ("left under the cap", _money(t.left_micros))]
    if t.trials_left is not None:
        rows.append(("trials left to run under budget.trials" + (", queued included" if r.unfinished else ""),
                     str(t.trials_left)))
    spend = "-" if t.micros is None else (most if t.bounded else "") + format_usd(t.micros)
    rows += [("this run adds: trials", trials), ("this run adds: spend (forecast)", spend)]
    if t.hours is not None:
        rows.append(("this run adds: instance-hours", f"{most}{t.hours.instance:.2f} h"))
        rows.append((f"this run adds: wall clock at {plural(plan.workers, 'worker')}",
                     f"{most}{format_duration(t.hours.wall * 3600)}"))
    console.print(FittedTable([Column("what", [x[0] for x in rows], keep=0, justify="left", wrap=20),
                               Column("value", [x[1] for x in rows], keep=1)], title="this run (resuming the study)"))


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


WHOLE = " of the whole study from zero"  # a resume's forecast: what its runs simulate


def render_forecast(f: Forecast, console: Console, *, from_zero: bool = False) -> None:
    """The Monte Carlo forecast: spend, best metric, trials and preemptions (median, p10, p90). ``from_zero``: a
    resumed study's, whose runs simulate it whole from its first trial (the title says so)."""
    if f.stand_in:
        console.print(f"forecast runs drew configurations at random in place of {f.stand_in} (see the note; "
                      "--exact-sampler runs it)", highlight=False)
    quantiles = (50, 10, 90)
    rows = [
        ("spend", format_usd_column([f.spend(q) for q in quantiles])),
        ("best metric", [_num(f.best(q), ".6g") for q in quantiles]),
        *((label, [f"{f.quantile(attr, q):g}" for q in quantiles])
          for label, attr in (("trials", "trials"), ("preemptions", "preemptions"))),
        ("preemption waste", format_usd_column([round(f.quantile("waste_micros", q)) for q in quantiles])),
        ("simulated time", [format_duration(f.quantile("sim_seconds", q)) for q in quantiles]),
    ]
    # the runs drew configurations at random: their range is random search's, which a model sampler's run may
    # leave (it picks other configurations, of other costs): the table's own header says so, not only a note
    heads = ("median", "p10", "p90") if not f.stand_in else ("median (random)", "p10 (random)", "p90 (random)")
    console.print(FittedTable([
        Column("", [r[0] for r in rows], keep=0, justify="left"),
        *(Column(name, [r[1][i] for r in rows], keep=1 + i) for i, name in enumerate(heads)),
    ], title=f"forecast: {len(f.runs)} simulated runs{WHOLE if from_zero else ''}{_settled(f)}{_stand_in(f)}"))
    cap = f.p_cap
    if cap is not None:
        console.print(f"P(reach cap) {cap:.2f}  (runs spending >= 99% of {format_usd(f.cap_micros or 0)})",
                      highlight=False)
    if f.settled:
        console.print(f"the figures stopped moving after {len(f.runs)} of at most {f.most} runs; --runs N makes "
                      "exactly N", highlight=False)
    elif f.moving:
        console.print(f"the figures were still moving after {len(f.runs)} runs: read them as rough; --runs N "
                      "makes more (at most 1,000)", highlight=False)


def _stand_in(f: Forecast) -> str:
    return (f" of random search standing in for {f.stand_in} (a {f.stand_in} run may fall outside p10-p90)"
            if f.stand_in else "")


def _settled(f: Forecast) -> str:
    return " (settled)" if f.settled else ""


def _resumes(plan: SweepPlan) -> dict[str, Any] | None:
    """The stored study the plan is a resume of (None for a new study): its trials and money so far."""
    r = plan.resumes
    if r is None:
        return None
    left = r.left_micros(plan.budget_micros)  # under the cap planned with (budget.usd_micros)
    return {"study": r.info.name, "store": r.where, "trials": r.trials, "trials_finished": r.finished,
            "trials_queued": r.unfinished,
            "stored_cap_usd": usd_text(r.info.budget_usd_micros), "stored_cap_micros": r.info.budget_usd_micros,
            "spent_usd": usd_text(r.spent_micros), "spent_micros": r.spent_micros, "remaining_usd": usd_text(left),
            "remaining_micros": left}


def _this_run(plan: SweepPlan) -> dict[str, Any] | None:
    """A resume: what the next `costtune run` adds (None for a new study, whose plan is all of it)."""
    t = plan.this_run
    if t is None:
        return None
    return {"trials": t.trials, "trials_fewest": t.fewest, "trials_most": t.most, "spend_usd": usd_text(t.micros),
            "spend_micros": t.micros, "left_usd": usd_text(t.left_micros), "left_micros": t.left_micros,
            "trials_left": t.trials_left, "bounded": t.bounded,
            "instance_hours": None if t.hours is None else t.hours.instance,
            "wall_hours": None if t.hours is None else t.hours.wall}


def to_dict(plan: SweepPlan) -> dict[str, Any]:
    s, p, f = plan.schedule, plan.preemption, plan.forecast
    out: dict[str, Any] = {
        "name": plan.name, "provider": plan.provider,
        "sampler": {k: v for k, v in plan.sampler.items() if k != "configs"},
        "scheduler": plan.scheduler,
        "budget": {"usd": usd_text(plan.budget_micros), "usd_micros": plan.budget_micros, "trials": plan.budget_trials},
        "workers": plan.workers, "billing": plan.billing, "rate_source": plan.rate_source,
        "plan": {
            "kind": s.kind, "eta": s.eta, "ladder_usd": [usd_text(r) for r in s.ladder_micros],
            "ladder_micros": list(s.ladder_micros), "iterations": s.iterations,
            "brackets": [{"index": b.index, "rungs_usd": [usd_text(r) for r in b.rungs_micros],
                          "rungs_micros": list(b.rungs_micros), "trials_per_rung": list(b.trials_per_rung),
                          "trials": b.trials_per_rung[0], "cost_usd": usd_text(b.cost_micros),
                          "cost_micros": b.cost_micros} for b in s.brackets],
            "trials": s.trials, "trials_estimated": s.trials_estimated,
            # budget.trial_seconds bounds a trial's cost: trials is the fewest started, planned the most spent
            "bounded": s.bounded, "trial_cost_source": s.cost_source,
            "trials_fewest": s.trials_fewest, "trials_most": s.trials_most,
            "stop_model": s.stop_model, "stop_share": s.stop_share,
            "planned_usd": usd_text(s.planned_micros), "planned_micros": s.planned_micros,
            "expected_usd": usd_text(s.expected_micros), "expected_micros": s.expected_micros,
            "trial_cost_usd": usd_text(s.trial_cost_micros), "trial_cost_micros": s.trial_cost_micros,
            # rung schedulers: rungs, start-up and preemption waste (their planned/expected leave start-up out)
            "total_usd": usd_text(plan.total_micros), "total_micros": plan.total_micros,
            "instance_hours": None if plan.hours is None else plan.hours.instance,
            "wall_hours": None if plan.hours is None else plan.hours.wall,
        },
        "overheads": [{"instance_type": o.instance_type, "market": o.market, "usd_per_hour": usd_text(o.rate_micros),
                       "startup_seconds": o.startup_seconds, "startup_usd": usd_text(o.startup_micros),
                       "startup_micros": o.startup_micros, "minimum_seconds": o.minimum_seconds,
                       "minimum_usd": usd_text(o.minimum_micros), "minimum_micros": o.minimum_micros}
                      for o in plan.overheads],
        "launches": plan.launches, "overhead_usd": usd_text(plan.overhead_micros),
        "overhead_micros": plan.overhead_micros,
        "preemption": {"per_hour": p.per_hour, "instance_hours": p.instance_hours, "expected": p.expected,
                       "waste_usd": usd_text(p.waste_micros), "waste_micros": p.waste_micros,
                       "restart_usd": usd_text(p.restart_micros), "restart_micros": p.restart_micros, "note": p.note},
        "forecast": None,
        "policy_cap": None if plan.policy_cap is None else {
            "policy": plan.policy_cap.room.policy, "window": plan.policy_cap.room.window,
            "cap_usd": usd_text(plan.policy_cap.room.cap_micros), "cap_micros": plan.policy_cap.room.cap_micros,
            "left_usd": usd_text(plan.policy_cap.room.left_micros), "left_micros": plan.policy_cap.room.left_micros,
            "binds": plan.policy_cap.binds, "spend_usd": usd_text(plan.policy_cap.spend_micros),
            "spend_micros": plan.policy_cap.spend_micros, "trials": plan.policy_cap.trials},
        # what spend policies' launch rules do to the sweep's placements (None: nothing); all_denied: no trial starts
        "launch_rules": None if plan.launch_rules is None else plan.launch_rules.to_dict(),
        "resumes": _resumes(plan),
        "this_run": _this_run(plan),
        "startup": None if plan.startup is None else {"seconds": plan.startup.seconds, "source": plan.startup.source,
                                                       "attempts": plan.startup.attempts},
        "notes": plan.notes + ([stand_in_note(f)] if f is not None and f.stand_in else []),
    }
    if f is not None:
        out["forecast"] = {
            "runs": len(f.runs), "settled": f.settled, "still_moving": f.moving, "max_runs": f.most or len(f.runs),
            "sampler": f.sampler, "stands_in_for": f.stand_in,
            # the quantiles are the stand-in's (random search's): a run of the sweep's own sampler may fall outside
            "range_of": "random" if f.stand_in else f.sampler,
            "spend_median_usd": usd_text(f.spend(50)), "spend_p10_usd": usd_text(f.spend(10)),
            "spend_p90_usd": usd_text(f.spend(90)), "spend_median_micros": f.spend(50),
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
