"""``costtune plan``: what a sweep will cost, worked out before any money is spent.

The analytic half lives here: the scheduler's rungs and brackets in dollars, start-up and
minimum-charge overheads per instance choice, and the preemption waste the market's rate implies.
For a simulated sweep the simulator itself is the workload model, so step times come from calling
the workload on sampled configurations, and ``costtune.plan.forecast`` adds a Monte Carlo forecast
by running the sweep many times on in-memory stores. The user's store is at most read (start-up
measured on earlier attempts, see ``costtune.plan.startup``), never written.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from costtune.money import charge_micros, format_usd
from costtune.plan import iterations
from costtune.plan.curve import Observed, curve_counts, curve_model
from costtune.plan.fifo import partial_trials
from costtune.plan.forecast import Forecast, RunSample, forecast
from costtune.plan.overheads import Overhead, overheads_of
from costtune.plan.preemption import Preemption
from costtune.plan.rules import LaunchRules, no_launch
from costtune.plan.shapes import Shape, sample_shapes
from costtune.plan.startup import FirstReports, StartupEstimate, measured_warning
from costtune.plan.thisrun import Hours, ThisRun, at_least_recorded, close_call_note, hours_for, resume_run
from costtune.schedulers import rung_ladder, study_plan
from costtune.schedulers.hyperband import PLAN_KINDS
from costtune.spec import SweepSpec
from costtune.words import article, plural

if TYPE_CHECKING:
    from costtune.plan.policies import PolicyCap
    from costtune.plan.stored import StoredStudy


@dataclass(frozen=True)
class BracketRow:
    index: int
    rungs_micros: tuple[int, ...]
    trials_per_rung: tuple[int, ...]
    cost_micros: int


@dataclass(frozen=True)
class Schedule:
    """The scheduler's plan in dollars; ``trials``/``planned_micros`` None when unknowable."""

    kind: str
    eta: int | None = None
    ladder_micros: tuple[int, ...] = ()
    brackets: tuple[BracketRow, ...] = ()
    iterations: int | None = None
    trials: int | None = None
    trials_estimated: bool = False
    planned_micros: int | None = None  # the money the plan holds (rungs x trials), within budget.usd
    expected_micros: int | None = None  # what it will likely spend, runs ending early included
    trial_cost_micros: int | None = None  # expected cost of one trial (fifo: run to its end)
    trials_fewest: int | None = None  # the range of an estimate (curve stopping: none stopped .. most stopped)
    trials_most: int | None = None
    stop_model: str | None = None  # curve: "assumed" or "observed" (the study's finished trials)
    stop_share: float | None = None  # curve: the share of trials taken to be stopped early
    trial_cost_cheapest_micros: int | None = None  # curve: one trial's cost at the ends of the range
    trial_cost_dearest_micros: int | None = None
    # no workload model, budget.trial_seconds the only figure: one trial costs at most trial_cost_micros, so
    # ``trials`` is the fewest started and ``planned_micros`` the most spent (bounds, not expectations)
    bounded: bool = False
    cost_source: str | None = None  # fifo: "measured" when the trial cost is the stored study's finished trials'


@dataclass
class SweepPlan:
    name: str
    provider: str
    scheduler: dict[str, Any]
    budget_micros: int | None
    budget_trials: int | None
    workers: int
    billing: str
    rate_source: str
    schedule: Schedule
    overheads: list[Overhead]
    launches: float | None
    overhead_micros: int | None
    preemption: Preemption
    forecast: Forecast | None = None
    notes: list[str] = field(default_factory=list)
    sampler: dict[str, Any] = field(default_factory=dict)  # the normalised sampler config the file gives
    # The study of the sweep's name the store already holds: the plan is then that study's resume.
    resumes: StoredStudy | None = None
    seed_at_run: bool = False  # the file gives no seed: `costtune run` draws one when it creates the study
    dimensions: int | None = None  # parameters searched (BOHB's model needs dimensions + 2 results by default)
    hours: Hours | None = None  # the whole plan's instance-hours and wall hours
    this_run: ThisRun | None = None  # a resume: what the next `costtune run` adds
    # rung schedulers (their rungs count money after a trial's first report): the rungs' money with the start-up
    # of every launch and the preemption waste, what a user pays in all; None for fifo and curve, whose
    # ``planned`` holds its start-up already
    total_micros: int | None = None
    startup: StartupEstimate | None = None  # per-launch start-up the overheads use, and where it comes from
    policy_cap: PolicyCap | None = None  # the tightest hard-capped spend policy over the sweep (plan.policies)
    cap_fit: int | None = None  # the cap note's "stops at the cap after about N trials" (``cap_note``)
    launch_rules: LaunchRules | None = None  # what spend policies' launch rules do to its placements (plan.rules)


def build_plan(spec: SweepSpec, *, runs: int = 0, jobs: int | None = None, exact_sampler: bool = False,
               measured: FirstReports | None = None, resumes: StoredStudy | None = None,
               on_run: Callable[[int, RunSample], None] | None = None, observed: Observed | None = None,
               startup: StartupEstimate | None = None, rules: LaunchRules | None = None) -> SweepPlan:
    """The whole plan; ``runs`` > 0 adds the Monte Carlo forecast (simulated sweeps only).

    ``measured``: earlier attempts of the sweep's study (``startup.read_first_reports``), for the
    first-rung warning. ``resumes``: the stored study ``spec`` resumes (``spec`` is then the sweep as
    resumed, ``costtune.runner.session.as_resumed``), whose spend the plan shows. ``jobs``/``exact_sampler``/
    ``on_run`` go to ``forecast.forecast``. ``observed``: the stored study's finished trials, for curve stopping
    (``costtune.plan.curve``). ``startup``: the per-launch start-up (``startup.startup_estimate``; default the
    simulation's, else none). ``rules``: the spend policies' launch rules (``costtune.plan.rules``): trials are
    priced where the run launches them; when every placement is denied, the plan is $0 and 0 trials.
    """
    res = spec.resources
    notes: list[str] = []
    moved = rules is not None and not rules.all_denied
    shapes = sample_shapes(spec, notes, rules.placed if moved and rules is not None else None)
    schedule = _schedule(spec, shapes, notes, observed, resumes)
    if startup is None:
        startup = StartupEstimate(res.simulation.startup_seconds, "simulation") if res.simulation else None
    overheads = overheads_of(res, 0.0 if startup is None else startup.seconds)
    if moved and rules is not None:  # the placements the run launches on
        overheads = [o for o in overheads if rules.launches_on(o.instance_type, o.market)] or overheads
    if resumes is None:  # a resume's added iterations are this run's (thisrun.rung_this_run)
        schedule = iterations.more_iterations(spec, schedule, shapes, overheads, notes)
    preemption, launches, overhead = iterations.launches(spec, schedule, shapes, overheads)
    # Rungs count money spent after a trial's first report (decisions.py), and before it an attempt may spend up
    # to its top rung's money; trials of an earlier run that spent that much without any report are warned about.
    if schedule.ladder_micros:
        seen = measured_warning(schedule.ladder_micros[-1], measured)
        if seen:
            notes.append(seen)
    plan = SweepPlan(
        name=spec.name, provider=res.provider, scheduler=dict(spec.scheduler), budget_micros=spec.budget.usd_micros,
        budget_trials=spec.budget.trials, workers=res.workers, billing=res.billing.note, rate_source=res.rate_source,
        schedule=schedule, overheads=overheads, launches=launches, overhead_micros=overhead, preemption=preemption,
        notes=notes, sampler=dict(spec.sampler), resumes=resumes, dimensions=len(spec.space.names), startup=startup,
    )
    if startup is not None and startup.describe():
        notes.append(startup.describe())
    rate = _hourly_rate(shapes, _full_costs(spec, shapes), overheads)
    if schedule.ladder_micros and overhead is not None:
        plan.total_micros = _rung_total(schedule, overhead, preemption)
    spend = schedule.planned_micros if schedule.expected_micros is None else schedule.expected_micros
    plan.hours = hours_for(spend if plan.total_micros is None else plan.total_micros, rate, res.workers,
                           schedule.trials)
    if resumes is not None:
        plan.this_run = resume_run(spec, schedule, resumes, rate, plan.total_micros, notes)
        if schedule.kind in PLAN_KINDS and plan.this_run.trials is not None and plan.this_run.micros is not None:
            schedule = iterations.whole_study(schedule, resumes, plan.this_run.trials)
            plan.total_micros = resumes.spent_micros + plan.this_run.micros  # what it spent and what this run adds
            if plan.this_run.close_call is not None:
                notes.append(close_call_note(schedule.kind, *plan.this_run.close_call))
        plan.schedule = at_least_recorded(schedule, resumes.trials, resumes.spent_micros, notes)
        if plan.total_micros is not None:
            plan.total_micros = max(plan.total_micros, resumes.spent_micros)
        # launches and their start-up follow the whole study's trials (never fewer launches than trials)
        s = plan.schedule
        plan.preemption, plan.launches, plan.overhead_micros = iterations.launches(spec, s, shapes, overheads)
        spent = s.planned_micros if s.expected_micros is None else s.expected_micros
        plan.hours = hours_for(spent if plan.total_micros is None else plan.total_micros, rate, res.workers,
                               s.trials)
    if plan.total_micros is not None and resumes is None:  # a resume's `this run` is fitted to the cap left
        cap_note(spec, plan)
    given = spec.raw.get("sampler")
    if resumes is None and "seed" in spec.sampler and not (isinstance(given, dict) and given.get("seed") is not None):
        # the seed parse_sweep drew for this plan is not the one a run will draw (and store with the study)
        plan.sampler["seed"] = None
        plan.seed_at_run = True
        notes.append("sampler.seed: the file gives none; `costtune run` draws one when it creates the study and "
                      "stores it (`costtune plan` shows it from then on)")
    plan.launch_rules = rules
    if rules is not None and rules.all_denied:  # nothing runs: what the plan said of the sweep's trials is moot
        plan.notes = [rules.note()]
        no_launch(plan)
        return plan
    if rules is not None:
        notes.insert(0, rules.note())
    if res.provider == "simulated" and runs > 0:
        plan.forecast = forecast(spec, runs, jobs=jobs, exact_sampler=exact_sampler, on_run=on_run,
                                 rules=() if rules is None else rules.bodies)
    elif res.provider != "simulated":
        notes.append(f"no spend forecast: {article(res.provider)} {res.provider} sweep needs a workload model (how "
                     "long its steps take) for a Monte Carlo; the figures above are the analytic plan")
    return plan


def _hourly_rate(shapes: list[Shape], full: list[int], overheads: list[Overhead]) -> float:
    """Micro-dollars per instance-hour the plan's money buys: the rates weighted by what is spent at each (a
    cheap instance's trials last longer), else the placements' mean rate."""
    hours = sum(c / s.rate_micros for s, c in zip(shapes, full, strict=True) if s.rate_micros > 0)
    if shapes and hours > 0:
        return sum(full) / hours
    return float(np.mean([o.rate_micros for o in overheads]))


def _rung_total(schedule: Schedule, overhead: int, preemption: Preemption) -> int | None:
    """A rung plan's money in all (micro-dollars): its rungs' (as expected), the start-up of every launch, which
    the rungs do not count, and the preemption waste."""
    rungs = schedule.planned_micros if schedule.expected_micros is None else schedule.expected_micros
    if rungs is None:
        return None
    return rungs + overhead + (preemption.waste_micros or 0)


def cap_note(spec: SweepSpec, plan: SweepPlan) -> None:
    """A note when a Hyperband (SH, BOHB) plan's money in all leaves the cap little or no room: from the figures
    the table shows (``plan.schedule``, ``plan.overhead_micros``, ``plan.total_micros``), its added iterations
    included."""
    s, total, cap = plan.schedule, plan.total_micros, spec.budget.usd_micros
    rungs = s.planned_micros if s.expected_micros is None else s.expected_micros
    trials = s.trials
    if cap is None or total is None or rungs is None or not trials or total <= cap * 0.95 or s.kind not in PLAN_KINDS:
        return  # asha fits its trials with start-up
    fit = min(trials, math.floor(cap / (total / trials)))
    plan.cap_fit = fit if total > cap else None
    ends = (f"`costtune run` stops at the cap after about {fit} of the plan's {plural(trials, 'trial')}"
            if total > cap else "a run that costs a little more than expected stops at the cap before its last trials")
    plan.notes.append(
        f"budget.usd: the plan's rungs ({format_usd(rungs)}) with start-up ({format_usd(plan.overhead_micros or 0)}) "
        f"and preemption waste come to {format_usd(total)}, {'more than' if total > cap else 'within 5% of'} the "
        f"{format_usd(cap)} cap, which the rungs alone were fitted to: {ends} (a lower scheduler.max_usd or a higher "
        "budget.usd leaves room)")


def _schedule(spec: SweepSpec, shapes: list[Shape], notes: list[str], observed: Observed | None = None,
              resumes: StoredStudy | None = None) -> Schedule:
    cfg, budget, limit = spec.scheduler, spec.budget.usd_micros, spec.max_trials
    kind = cfg["type"]
    full = _full_costs(spec, shapes)
    if kind in PLAN_KINDS:
        hb = study_plan(kind, cfg["min_usd_micros"], cfg["max_usd_micros"], cfg["eta"], budget,
                        cfg.get("plan_usd_micros"))
        trials, planned = hb.total_trials, hb.total_cost_micros
        expected = None
        if full:  # trials that finish their steps below a rung spend less than the plan holds
            # rungs count money after the first report: a trial's steps past its first, by each rung; its first
            # step (before that report) is paid by every trial started, its start-up is the launches' overhead
            after, first = _after_first_report(shapes, full)
            expected = hb.iterations * sum(
                n * _step_up(level, below, after)
                for b in hb.brackets for n, level, below in zip(b.trials_per_rung, b.rungs, (0, *b.rungs[:-1]),
                                                                 strict=True)) + trials * first
        if limit is not None and limit < trials:
            notes.append(f"budget.trials (or the sampler) stops the sweep after {limit} of the plan's {trials} "
                         "trials; planned money scaled to match")
            planned = planned * limit // trials
            expected = None if expected is None else expected * limit / trials
            trials = limit
        rows = tuple(BracketRow(b.index, b.rungs, b.trials_per_rung, b.cost_micros) for b in hb.brackets)
        ladder = rung_ladder(cfg["min_usd_micros"], cfg["max_usd_micros"], cfg["eta"])
        return Schedule(kind=kind, eta=hb.eta, ladder_micros=ladder, brackets=rows, iterations=hb.iterations,
                        trials=trials, planned_micros=planned,
                        expected_micros=None if expected is None else round(expected))
    if kind == "asha":
        eta = cfg["eta"]
        ladder = rung_ladder(cfg["min_usd_micros"], cfg["max_usd_micros"], eta)
        least = _mean_minimum(spec, shapes)
        # In the long run a share eta**-i of the trials reaches rung i and pays for the step up to it,
        # unless its run ends (all its steps done) below that rung.
        per_trial = sum(_step_up(max(level, least) if i == 0 else level, below, full) / eta**i
                        for i, (level, below) in enumerate(zip(ladder, (0, *ladder[:-1]), strict=True)))
        # rungs count money after the first report: each trial's start-up comes on top, so trials fit the cap with it
        startup = float(np.mean([charge_micros(round(s.startup_s * 1000), s.rate_micros) for s in shapes])) \
            if shapes else 0.0
        trials, _ = _fill(budget, limit, per_trial + startup)
        planned = None if trials is None else round(trials * per_trial)
        notes.append("asha: trials started is an estimate (a share 1/eta of the trials promoted at each rung"
                     + (", runs ending when their workload's steps are done)" if full else ")"))
        return Schedule(kind=kind, eta=eta, ladder_micros=ladder, trials=trials, trials_estimated=True,
                        planned_micros=planned, expected_micros=planned, trial_cost_micros=round(per_trial))
    if kind == "curve":
        curved = _curve_schedule(spec, shapes, full, observed, notes)
        if curved is not None:
            return curved
    if not full:
        return _unmodelled(spec, kind, resumes, notes)
    cost = round(float(np.mean(full)))
    trials, planned = _fill(budget, limit, cost)
    trials, planned = partial_trials(spec, shapes, cost, trials, planned, notes)
    return Schedule(kind=kind, trials=trials, trials_estimated=True, planned_micros=planned, expected_micros=planned,
                    trial_cost_micros=cost)


def _unmodelled(spec: SweepSpec, kind: str, resumes: StoredStudy | None, notes: list[str]) -> Schedule:
    """A fifo (or unmodelled curve) plan without a workload model: the stored study's finished trials give the
    cost of one trial when there are any; else budget.trial_seconds bounds it (the trials a cap starts are then
    at least, the money at most, a figure); else it is unknown."""
    budget, limit = spec.budget.usd_micros, spec.max_trials
    costs = [] if resumes is None else [c for c in resumes.finished_costs.values() if c > 0]
    if costs:
        cost = round(sum(costs) / len(costs))
        trials, planned = _fill(budget, limit, cost)
        notes.append(f"{kind}: the cost of one trial, {format_usd(cost)}, is the mean of this study's "
                     f"{plural(len(costs), 'finished trial')}")
        return Schedule(kind=kind, trials=trials, trials_estimated=True, planned_micros=planned,
                        expected_micros=planned, trial_cost_micros=cost, cost_source="measured")
    bound = _time_limited_cost(spec)
    if bound is None:
        notes.append(f"{kind}: the cost of one trial is unknown without a workload model; set budget.trial_seconds "
                     "to bound it")
        return Schedule(kind=kind, trials=limit, planned_micros=budget)
    fewest, _ = _fill(budget, limit, bound)
    most = [m for m in (budget, None if limit is None else limit * bound) if m is not None]
    notes.append(f"{kind}: without a workload model the cost of one trial is unknown; budget.trial_seconds "
                 f"({spec.budget.trial_seconds:g} s) bounds it at {format_usd(bound)}, so the trials started are at "
                 "least, and the money at most, the figures shown (a trial that ends sooner leaves room for more); "
                 "once the study has finished trials, `costtune plan` uses their cost")
    return Schedule(kind=kind, trials=fewest, planned_micros=min(most) if most else None, trial_cost_micros=bound,
                    bounded=True)


def _curve_schedule(spec: SweepSpec, shapes: list[Shape], full: list[int], observed: Observed | None,
                    notes: list[str]) -> Schedule | None:
    """Curve stopping's trials as a central estimate and a range (``costtune.plan.curve``); None when nothing
    models it (no workload model, no finished trials): the fifo figure stands, with a note."""
    model = curve_model(spec, shapes, full, observed)
    if model is None:
        notes.append("curve: stopping is not modelled without a workload model or finished trials of this study; "
                     "trials started are counted as if every trial ran to its end (the fewest)")
        return None
    budget, limit, workers = spec.budget.usd_micros, spec.max_trials, spec.resources.workers
    trials, fewest, most = curve_counts(model, budget, limit, workers)
    if trials is None:
        return None
    planned = round(model.central * max(0, trials - workers) + model.first_full_micros * min(trials, workers))
    planned = planned if budget is None else min(budget, planned)
    notes.append(model.describe())
    if spec.sampler.get("type") == "bayes" and model.source == "assumed":
        notes.append("curve: the counts are for configurations drawn at random; a bayes sampler picks the ones it "
                     "expects to do best (cost-aware: per dollar), which may cost more or less than a random draw: "
                     "on the bundled benchmark workloads its sweeps started 0.2x to 1.3x the trials random ones did. "
                     "Once the study has finished trials, `costtune plan` counts from them")
    return Schedule(kind="curve", trials=trials, trials_estimated=True, planned_micros=planned,
                    expected_micros=planned, trial_cost_micros=round(model.central), trials_fewest=fewest,
                    trials_most=most, stop_model=model.source, stop_share=model.share,
                    trial_cost_cheapest_micros=round(model.cheapest), trial_cost_dearest_micros=round(model.dearest))


def _after_first_report(shapes: list[Shape], full: list[int]) -> tuple[list[int], float]:
    """Each shape's money after its first report (what rungs count), and the mean charge of a first step (paid
    before that report, past the start-up): rungs that compared the whole run's cost counted start-up twice."""
    # unpadded by the billing minimum, as the launches' start-up is: a run is billed its minimum once, in ``full``
    up = [charge_micros(round(s.startup_s * 1000), s.rate_micros) for s in shapes]
    reach = [charge_micros(round((s.startup_s + (s.steps[0][0] if s.steps else 0.0)) * 1000), s.rate_micros)
             for s in shapes]
    after = [max(0, c - r) for c, r in zip(full, reach, strict=True)]
    first = float(np.mean([max(0, r - u) for r, u in zip(reach, up, strict=True)])) if shapes else 0.0
    return after, first


def _step_up(level: float, below: float, full: list[int]) -> float:
    """Mean money a trial pays going from ``below`` to ``level``, stopping at its run's full cost."""
    if not full:
        return level - below
    return float(np.mean([max(0.0, min(level, c) - min(below, c)) for c in full]))


def _fill(budget: int | None, limit: int | None, per_trial: float) -> tuple[int | None, int | None]:
    """How many trials of ``per_trial`` the budget covers (capped by ``limit``), and what they cost."""
    if per_trial <= 0:
        return limit, None if limit is None else 0
    counts = [n for n in (limit, None if budget is None else math.floor(budget / per_trial)) if n is not None]
    if not counts:
        return None, None
    trials = min(counts)
    planned = round(trials * per_trial)
    return trials, planned if budget is None else min(budget, planned)


def _mean_minimum(spec: SweepSpec, shapes: list[Shape]) -> float:
    rule = spec.resources.billing
    rates = [s.rate_micros for s in shapes] or list(spec.resources.rates.values()) or [
        spec.resources.usd_per_hour_micros]
    return float(np.mean([rule.charge(1, r) for r in rates]))


def _full_costs(spec: SweepSpec, shapes: list[Shape]) -> list[int]:
    """What each sampled configuration costs run to its last step (or its time limit); [] when unknown."""
    rule, limit = spec.resources.billing, spec.budget.trial_seconds
    costs = []
    for s in shapes:
        seconds = s.startup_s + s.steps_total_s
        seconds = min(seconds, limit) if limit is not None else seconds
        costs.append(rule.charge(round(seconds * 1000), s.rate_micros))
    return costs


def _time_limited_cost(spec: SweepSpec) -> int | None:
    """Without a workload model, budget.trial_seconds bounds what one trial costs."""
    limit, rate = spec.budget.trial_seconds, spec.resources.usd_per_hour_micros
    return None if limit is None or not rate else spec.resources.billing.charge(round(limit * 1000), rate)
