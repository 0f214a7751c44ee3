"""The money commands: `costtune plan` (what a sweep will cost) and `costtune spend` (the ledger's books)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from costtune.cli.common import count, db_option, err_console, handled, open_store, out_console
from costtune.errors import InputError, SpecError, shown
from costtune.limits import MAX_FORECAST_RUNS, MAX_JOBS
from costtune.store.owner import describe_owner
from costtune.words import natural_key, plural


@click.command()
@db_option
@click.option("--by", "by", default=None, metavar="KEY",
              help="Group what attempts were billed by team, project (or any sweep tag), study, instance, market, "
                   "cloud or day, instead of listing ledger scopes.")
@click.option("--window", "window", type=click.Choice(["total", "day", "week", "month"]), default="total",
              show_default=True, help="With --by: only attempts started in the current day, week or month.")
@click.option("--timezone", "timezone", default="UTC", show_default=True, metavar="IANA",
              help="With --by: the time zone of --window and of --by day.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@handled
def spend(db: str | None, by: str | None, window: str, timezone: str, fmt: str) -> None:
    """Spend by ledger scope: cap, spent, held by running trials, and what is left (spend-policy windows
    included; `costtune policy status` adds their forecasts). With --by: billed spend grouped."""
    from costtune.money import format_left_column, format_usd_column
    from costtune.reports.table import Column, FittedTable

    if by is not None:
        return _spend_by(db, by, window, timezone, fmt)
    if window != "total" or timezone != "UTC":
        raise InputError("--window/--timezone: only with --by (the ledger's scopes already carry their windows)")
    store = open_store(db)
    names = {f"study:{info.id}": f"study {info.name}" for info in store.list_studies()}
    in_force = {p.name: p for p in store.policies()}
    caps: dict[str, int | None] = {}
    for scope in store.balances():  # a policy window: policy:NAME:PERIOD:START
        parts = scope.split(":")
        if parts[0] == "policy" and len(parts) >= 3:
            names[scope] = f"policy {parts[1]} {' '.join(parts[2:])}"
            if parts[1] in in_force:  # the cap in force (as `policy status`), not the one of its last launch
                caps[scope] = in_force[parts[1]].cap_micros
    rows = []
    gone = store.gone_holds()  # held for attempts whose controller died: not live, settled by the next run
    for scope, (cap, spent, reserved) in store.balances().items():
        cap = caps.get(scope, cap)
        dead = gone.get(scope)
        rows.append({"scope": scope, "name": names.get(scope, scope), "cap_micros": cap, "spent_micros": spent,
                     "reserved_micros": reserved, "left_micros": None if cap is None else cap - spent - reserved,
                     "held_controller_gone_micros": min(reserved, dead.held_micros) if dead else 0,
                     # what those attempts were charged so far: trial costs (`costtune studies`/`trials`) count it,
                     # spent does only once the next run settles them
                     "controller_gone_cost_micros": dead.cost_micros if dead else 0,
                     "controllers_gone": [describe_owner(o) for o in dead.owners] if dead else []})
    rows.sort(key=lambda r: natural_key(r["scope"]))  # study:2 before study:10
    if _emitted(rows, fmt):
        return
    keys = ("cap_micros", "spent_micros", "reserved_micros", "left_micros")
    # one number of decimals per column; an overdrawn scope's left shows "$0 (over by ...)", as policy status does
    money = [(format_left_column if k == "left_micros" else format_usd_column)([r[k] for r in rows]) for k in keys]
    out_console.print(FittedTable([
        Column("scope", [r["name"] for r in rows], keep=0, justify="left", wrap=16),
        # on a narrow console what is left goes last: it is what the table is for (then spent, cap, held)
        *(Column(head, column, keep=keep) for head, column, keep in zip(("cap", "spent", "held", "left"), money,
                                                                         (3, 2, 4, 1), strict=True)),
    ], title=f"spend by scope in {store.display_url}"))
    for r in rows:
        if r["held_controller_gone_micros"]:
            out_console.print(_gone_note(r), highlight=False, soft_wrap=True)


def _gone_note(row: dict[str, Any]) -> str:
    """Why a scope holds money no live trial uses, and why its spent is below the trials' cost."""
    from costtune.money import format_usd

    who = f" ({', '.join(row['controllers_gone'])})" if row["controllers_gone"] else ""
    cost = row["controller_gone_cost_micros"]
    charged = (f"; its attempts were charged {format_usd(cost)} so far (in the trials' cost that `costtune studies` "
               "and `costtune trials` show), not yet in spent" if cost else "")
    settles = (f"the next `costtune run` of {row['name']} settles it" if row["scope"].startswith("study:")
               else "the next run of its study settles it")
    return (f"{row['name']}: {format_usd(row['held_controller_gone_micros'])} held by a controller that is no longer "
            f"running{who}{charged}; {settles}")


def _emitted(rows: list[dict[str, Any]], fmt: str) -> bool:
    """Print ``rows`` as JSON or CSV when ``fmt`` asks for one (True), else leave them to a table (False)."""
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return True
    if fmt == "csv":
        _csv(rows)
        return True
    return False


def _csv(rows: list[dict[str, Any]]) -> None:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["scope"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    click.echo(buffer.getvalue(), nl=False)


def _spend_by(db: str | None, by: str, window: str, timezone: str, fmt: str) -> None:
    from datetime import UTC, datetime

    from costtune.money import format_usd_column
    from costtune.policies.parse import TAG_RULE
    from costtune.policies.spend import BY, spend_groups, sweep_tags, window_start
    from costtune.reports.table import Column, FittedTable
    from costtune.zones import iana_zone

    if by not in BY and not TAG_RULE.fullmatch(by):
        raise InputError(f"--by: must be one of {', '.join(BY)} or a sweep tag name, got {shown(by)}")
    timezone = iana_zone(timezone, "--timezone")
    store = open_store(db)
    if by not in BY:
        known = sweep_tags(store)
        if by not in known:
            carried = ", ".join(sorted(known)) or "none"
            raise InputError(f"--by: no sweep carries the tag {by!r} (tags the sweeps carry: {carried}; or one of "
                             f"{', '.join(BY)})")
    since = window_start(window, datetime.now(UTC), timezone)
    rows = spend_groups(store, by, since, timezone)
    if _emitted(rows, fmt):
        return
    title = f"spend by {by}" + ("" if since is None else f" since {since.isoformat()}") + f" in {store.display_url}"
    out_console.print(FittedTable([
        Column(by, [str(r[by]) for r in rows], keep=0, justify="left", wrap=16),
        Column("spent", format_usd_column([r["spent_micros"] for r in rows]), keep=1),
        Column("attempts", [str(r["attempts"]) for r in rows], keep=2),
        Column("running", [str(r["running"]) for r in rows], keep=3),
    ], title=title, always=1))


_LARGE_RUN_TRIALS = 20_000  # a forecast run of this many trials takes minutes: say so before it starts


@click.command()
@click.argument("sweep_file", type=click.Path(dir_okay=False))
@click.option("--runs", type=count(0, MAX_FORECAST_RUNS), default=None, metavar="N",
              help="Simulated runs behind the spend forecast (simulated sweeps only); 0: the plan alone "
                   "[default: 8 to 20, until the forecast's figures stop moving].")
@click.option("--no-forecast", is_flag=True, help="The plan alone, at once (same as --runs 0).")
@click.option("--jobs", type=count(1, MAX_JOBS), default=None, metavar="N",
              help="Worker processes for the forecast's runs [default: one per CPU core].")
@click.option("--exact-sampler", is_flag=True,
              help="Forecast runs use the sweep's own bayes sampler (a model fit per trial: slow) instead of "
                   "drawing configurations at random.")
@click.option("--db", "db", envvar="COSTTUNE_DB", metavar="URL",
              help="Store to read earlier attempts of this sweep from, read-only, for the start-up warning "
                   "(env COSTTUNE_DB; default the usual store; skipped when it does not exist).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="Output format.")
@click.option("--quiet", is_flag=True, help="No progress bar while the simulated runs go.")
@click.option("--change-cap", is_flag=True,
              help="For a study the store already holds: plan with the file's budget.usd as its cap, as "
                   "`costtune run --change-cap` would run it (default: the study's stored cap).")
@handled
def plan(sweep_file: str, runs: int | None, no_forecast: bool, jobs: int | None, exact_sampler: bool, db: str | None,
         fmt: str, quiet: bool, change_cap: bool) -> None:
    """What SWEEP_FILE will cost, before any money is spent.

    Rungs and brackets in dollars, start-up and minimum-charge overheads, expected preemption
    waste (printed at once) and, for a simulated sweep, a spend forecast from --runs runs of it on
    the simulator, in --jobs parallel processes on in-memory stores. When the store (--db) already
    holds a study of the sweep's name, the plan is what `costtune run` would do resuming it: its
    stored sampler, scheduler, rungs and cap, and what it already spent. Nothing is written to any
    store: --db is only read.
    """
    if runs is not None and runs < 0:
        raise SpecError("--runs", "must be an integer >= 0", runs)
    if jobs is not None and jobs < 1:
        raise SpecError("--jobs", "must be an integer >= 1", jobs)
    try:
        _plan(sweep_file, runs=0 if no_forecast else runs, jobs=jobs, exact_sampler=exact_sampler, db=db, fmt=fmt,
              quiet=quiet, change_cap=change_cap)
    except KeyboardInterrupt:
        err_console.print("interrupted: plan spends nothing and keeps nothing", highlight=False)
        sys.exit(130)


def _plan(sweep_file: str, *, runs: int | None, jobs: int | None, exact_sampler: bool, db: str | None, fmt: str,
          quiet: bool, change_cap: bool = False) -> None:
    from costtune.plan.agree import forecast_disagreements
    from costtune.plan.analytic import build_plan
    from costtune.plan.policies import cap_by_policy, policy_note, policy_room
    from costtune.plan.render import render_forecast, render_notes, render_plan, to_dict
    from costtune.plan.rules import launch_rules
    from costtune.plan.startup import read_first_reports, startup_estimate
    from costtune.plan.stored import read_observed, read_stored_study
    from costtune.richtext import styled
    from costtune.runner.session import parse_resuming
    from costtune.schedulers.defaults import rung_below_minimum
    from costtune.spec import load_sweep
    from costtune.spec.sweep import load_warnings
    from costtune.store import resolve_db_url
    from costtune.yamlfile import read_yaml_file

    url = resolve_db_url(db)

    def find(name: str) -> Any:
        found = read_stored_study(url, name)
        return None if found is None else found.info

    spec, kept = parse_resuming(read_yaml_file(sweep_file, what="sweep file"), find)
    if spec.resources.provider == "aws":
        from costtune.runner.remote import check_public_url

        check_public_url(spec)  # what `costtune run` would refuse before anything, offline
    simulated = spec.resources.provider == "simulated"
    stored = read_stored_study(url, spec.name)
    notes: list[str] = [] if kept is None else [kept]
    if stored is not None:
        cap = spec.budget.usd_micros
        if change_cap and cap is not None and cap < stored.spent_micros:  # what `costtune run --change-cap` refuses
            from costtune.store.caps import cap_below_committed

            raise cap_below_committed("budget.usd", cap, stored.info.name, stored.spent_micros)
        try:
            spec, drift = _as_resumed(stored, spec, change_cap=change_cap)
            notes.extend(drift)
        except (InputError, SpecError) as exc:  # what `costtune run` refuses: the file is planned as it stands
            if kept is not None:  # it has no rungs of its own to plan a new study with
                raise
            notes = [f"`costtune run` would not resume study {spec.name!r} of {stored.where} with this file ({exc}); "
                     "the plan is the file's own, as for a new study"]
            spec, stored = load_sweep(sweep_file), None  # as read: the resume rules may have changed it
    for line in load_warnings(spec):  # on stderr, as `costtune run` warns; --format json keeps stdout to the plan
        err_console.print(styled((f"warning: {line}", "yellow")), highlight=False, soft_wrap=True)
    measured = read_first_reports(url, spec.name, spec.resources.billing)
    sim = spec.resources.simulation
    startup = startup_estimate(spec.resources.provider, None if sim is None else sim.startup_seconds, measured)
    low = rung_below_minimum(spec.scheduler, spec.resources, resumed=stored is not None,
                             startup_s=None if startup.source == "none" else startup.seconds)
    if low is not None:  # on stderr, as `costtune run` warns; --format json keeps stdout to the plan
        err_console.print(styled((f"warning: {low}", "yellow")), highlight=False, soft_wrap=True)
    observed = read_observed(url, spec.name, spec.resources.workers) if stored is not None else None
    rules = launch_rules(url, spec)  # what the policies' launch rules do to its placements, as `costtune run` admits
    result = build_plan(spec, measured=measured, resumes=stored, observed=observed, startup=startup, rules=rules)
    result.notes.extend(notes)
    blocked = rules is not None and rules.all_denied  # `costtune run` starts no trial: $0, no forecast
    room = None if blocked else policy_room(url, dict(spec.tags))
    if room is not None:  # `costtune run` stops at a matching policy's hard cap, whatever budget.usd says
        spend, trials = _plan_spend(result)
        result.policy_cap = cap_by_policy(room, spend, trials)
    s = result.schedule  # a Hyperband plan's trials from zero: its brackets' (the whole study's are at least held)
    planned = s.iterations * sum(b.trials_per_rung[0] for b in s.brackets) if s.iterations else None
    if stored is not None and planned is not None and s.trials is not None and s.trials >= planned \
            and stored.trials > planned:
        held = plural(stored.trials, "trial")
        result.notes.append(f"study {spec.name!r} already holds {held}, more than the {planned} planned: earlier "
                            "runs added iterations that cost less than planned; `costtune run` plans another while "
                            "what is left of the cap holds one"
                            + ("" if spec.budget.usd_micros is not None else
                               " (without a cap it plans none: give budget.usd with --change-cap to repeat the "
                               "brackets)"))
    if fmt == "table":
        render_plan(result, out_console)  # the plan at once; the forecast follows when its runs are done
        out_console.file.flush()
    if simulated and runs != 0 and not blocked and (result.schedule.trials or 0) >= _LARGE_RUN_TRIALS:
        many = plural(result.schedule.trials or 0, "trial")
        err_console.print(f"note: each forecast run simulates about {many}; that takes minutes per run "
                          "(--runs 3 for a quicker forecast, --no-forecast for the plan alone)", highlight=False)
    if simulated and runs != 0 and not blocked:
        capped = _under_policy_cap(spec, result.policy_cap if stored is None else None)
        result.forecast = _forecast_with_progress(capped or spec, runs, jobs=jobs, exact_sampler=exact_sampler,
                                                  show=not quiet, rules=() if rules is None else rules.bodies)
        if capped is not None and result.policy_cap is not None:
            from costtune.money import format_usd

            r, own = result.policy_cap.room, spec.budget.usd_micros
            result.notes.append(f"the forecast runs under policy {r.policy}'s hard cap: {format_usd(r.left_micros)} "
                                f"left in its window ({r.window})"
                                + (", less than budget.usd" if own is not None else " (the sweep gives no budget.usd)"))
        if stored is None:  # a resume's forecast is of the study from zero, its plan of the whole study held
            by_policy = result.policy_cap.trials if capped is not None and result.policy_cap is not None else None
            if capped is None or by_policy is not None:
                result.notes.extend(forecast_disagreements(result, by_policy))
        if stored is not None:
            result.notes.append(f"the forecast simulates study {spec.name!r} whole, from its first trial under its "
                                "cap: the money it already spent is part of its spend")
    elif simulated and not blocked:
        result.notes.append("no spend forecast (--runs 0 / --no-forecast): the figures above are the analytic plan")
    if result.policy_cap is not None:
        spend, trials = _plan_spend(result)
        if result.forecast is not None and stored is None and (spend is None or result.forecast.spend(50) > spend):
            spend, trials = result.forecast.spend(50), round(result.forecast.quantile("trials", 50))
            if spend > result.policy_cap.room.left_micros:
                result.policy_cap = cap_by_policy(result.policy_cap.room, spend, trials)
        counted = not (spec.resources.provider == "local" and startup.source == "none")
        result.notes.append(policy_note(result.policy_cap, spend, startup_counted=counted))
    if fmt == "json":
        click.echo(json.dumps(to_dict(result), indent=2))
        return
    if result.forecast is not None:
        render_forecast(result.forecast, out_console, from_zero=stored is not None)
    render_notes(result, out_console)


def _under_policy_cap(spec: Any, cap: Any) -> Any:
    """``spec`` with ``budget.usd`` lowered to what a matching policy's hard cap leaves in its window now, when
    that is less (``costtune run`` stops there: its launches are reserved in the window too), so the Monte Carlo
    forecast stops where the run will; None when no policy binds tighter than the sweep's own cap. A window that
    resets during a long run is not modelled: the forecast stops at the money left now."""
    import copy

    from costtune.spec import parse_sweep

    if cap is None:
        return None
    left, own = cap.room.left_micros, spec.budget.usd_micros
    if left <= 0 or (own is not None and own <= left):
        return None
    raw = copy.deepcopy(spec.raw)  # the forecast's runs are parsed from the file's data
    raw["budget"] = {**(raw.get("budget") or {}), "usd": left / 1_000_000}
    try:
        return parse_sweep(raw)
    except (InputError, SpecError):  # e.g. less than a rung scheduler's min_usd: the plan's notes say so
        return None


def _plan_spend(plan: Any) -> tuple[int | None, int | None]:
    """What the run a plan describes spends and how many trials it starts: the next run's for a resume, else
    the plan's money in all (a rung plan's start-up included)."""
    if plan.this_run is not None:
        return plan.this_run.micros, plan.this_run.trials
    s = plan.schedule
    spend = plan.total_micros if plan.total_micros is not None else (
        s.planned_micros if s.expected_micros is None else s.expected_micros)
    return spend, s.trials


def _as_resumed(stored: Any, spec: Any, *, change_cap: bool) -> tuple[Any, list[str]]:
    """The sweep as `costtune run` would resume the stored study (``costtune.runner.session.as_resumed``), and
    notes on what the file says that the resume does not take."""
    from costtune.money import format_cap
    from costtune.runner.session import as_resumed, sampler_drift

    info = stored.info
    notes = sampler_drift(info, spec)
    file_cap = spec.budget.usd_micros
    resumed = as_resumed(info, spec, change_cap=change_cap)
    if file_cap != info.budget_usd_micros and not change_cap:
        notes.append(f"budget.usd: the file says {format_cap(file_cap)}, study {info.name!r} has a stored cap "
                     f"of {format_cap(info.budget_usd_micros)}: planned with the stored one; `costtune run` refuses "
                     "the file's unless --change-cap, which makes it the cap (`costtune plan --change-cap` plans "
                     "with it)")
    return resumed, notes


def _forecast_with_progress(spec: Any, runs: int | None, *, jobs: int | None, exact_sampler: bool,
                            show: bool, rules: Any = ()) -> Any:
    """The forecast, with a progress bar on stderr: runs done / total and the median spend so far.
    ``runs`` None: until its figures settle, at most ``DEFAULT_RUNS``; ``rules``: the spend policies' launch
    rules its runs admit launches under (``costtune.plan.rules``)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from costtune.plan.forecast import DEFAULT_RUNS, forecast

    settle, most = runs is None, DEFAULT_RUNS if runs is None else runs
    progress = Progress(TextColumn("forecast {task.description}", style="bold", markup=False), BarColumn(),
                        MofNCompleteColumn(),
                        TextColumn("runs"), TextColumn("{task.fields[detail]}", markup=False), TextColumn("elapsed"),
                        TimeElapsedColumn(), TextColumn("left at most" if settle else "left"), TimeRemainingColumn(),
                        console=err_console, transient=True, disable=not show)
    task = progress.add_task(spec.name, total=most, detail="")
    spends: list[int] = []

    def on_run(_k: int, sample: Any) -> None:
        spends.append(sample.spend_micros)
        median = sorted(spends)[len(spends) // 2]
        progress.update(task, advance=1, detail=f"median spend so far {format_usd(median)}", refresh=True)

    from costtune.money import format_usd

    with progress:
        return forecast(spec, most, jobs=jobs, exact_sampler=exact_sampler, on_run=on_run, settle=settle,
                        rules=rules)
