"""`costtune run` and `costtune demo`: run (or resume) a sweep with a live progress line."""

from __future__ import annotations

import copy
import os
import time
from importlib import resources
from pathlib import Path
from typing import Any

import click

from costtune.cli.common import count, db_option, err_console, handled, open_store, out_console
from costtune.errors import CosttuneError, SpecError
from costtune.limits import MAX_WORKERS
from costtune.richtext import styled
from costtune.words import plural


@click.command()
@click.argument("sweep_file", type=click.Path(dir_okay=False))
@db_option
@click.option("--workers", type=count(1, MAX_WORKERS), help="Override resources.workers.")
@click.option("--name", help="Override the study name from the sweep file.")
@click.option("--quiet", is_flag=True, help="No progress display; only the final leaderboard.")
@click.option("--change-cap", is_flag=True,
              help="Resuming: make the file's budget.usd the study's new cap (recorded; see `costtune audit`).")
@handled
def run(sweep_file: str, db: str | None, workers: int | None, name: str | None, quiet: bool,
        change_cap: bool) -> None:
    """Run (or resume) the sweep described by SWEEP_FILE.

    A study has one dollar cap, stored when it is created: resuming with another budget.usd is an
    error unless --change-cap is given.
    """
    from costtune.plan.stored import read_stored_study
    from costtune.runner.session import parse_resuming
    from costtune.store import resolve_db_url
    from costtune.yamlfile import read_yaml_file

    raw_overrides: dict[str, Any] = {}
    if name is not None:
        raw_overrides["name"] = name
    if workers is not None:
        if workers < 1:
            raise SpecError("--workers", "must be >= 1", workers)
        raw_overrides["workers"] = workers
    raw = _override(read_yaml_file(sweep_file, what="sweep file"), raw_overrides)

    def find(study: str) -> Any:  # the study the file resumes, read-only: nothing is created before the checks
        stored = read_stored_study(resolve_db_url(db), study)
        return None if stored is None else stored.info

    spec, kept = parse_resuming(raw, find)
    _run_spec(spec, db, quiet=quiet, workdir=str(Path.cwd()), change_cap=change_cap, kept=kept)


def _override(raw: Any, overrides: dict[str, Any]) -> Any:
    """The sweep file's mapping with --name / --workers set (a file that is no mapping is refused by parse_sweep)."""
    if not overrides or not isinstance(raw, dict):
        return raw
    raw = copy.deepcopy(raw)
    if "name" in overrides:
        raw["name"] = overrides["name"]
    if "workers" in overrides and isinstance(raw.setdefault("resources", {}), dict):
        raw["resources"]["workers"] = overrides["workers"]
    return raw


def _run_spec(spec: Any, db: str | None, *, quiet: bool, workdir: str, change_cap: bool = False,
              kept: str | None = None) -> None:
    from costtune.runner.session import open_sweep, run_with_progress, sampler_drift
    from costtune.schedulers.defaults import rung_below_minimum
    from costtune.spec.environment import resolve_env
    from costtune.spec.sweep import load_warnings

    resolve_env(spec.env, os.environ)  # a ${VAR} that is not set is bad input: refused before the store opens
    for warning in (*spec.resources.warnings, *load_warnings(spec)):  # a snapshot price; a cap that cannot bind
        err_console.print(styled((f"warning: {warning}", "yellow")), highlight=False, soft_wrap=True)
    if spec.resources.provider == "aws":  # what only EC2 can tell, before the store opens or money is held
        from costtune.runner.remote import check_aws_sweep

        check_aws_sweep(spec)
    # `kill PID` (SIGTERM) stops a sweep the way Ctrl-C does (entry.py, and the controller while it runs)
    store = open_store(db, create=True)
    study, resumed = open_sweep(store, spec, change_cap=change_cap)
    if resumed and not quiet:
        err_console.print(styled("resuming study ", (spec.name, "bold"), f" in {store.display_url}"), highlight=False)
    low = rung_below_minimum(spec.scheduler, spec.resources, resumed=resumed)
    if low is not None:  # the rungs it will run with (a resumed study's own), before anything launches
        err_console.print(styled((f"warning: {low}", "yellow")), highlight=False, soft_wrap=True)
    if resumed:
        if kept is not None:  # the rungs came from the study, not the file: say so
            err_console.print(styled((f"note: {kept}", "dim")), highlight=False, soft_wrap=True)
        for line in sampler_drift(study.info, spec):
            err_console.print(styled((f"warning: {line}", "yellow")), highlight=False, soft_wrap=True)
    if not quiet:  # the study's own sampler: a resumed study keeps the one it was created with
        from costtune.samplers import describe_sampler
        from costtune.schedulers import describe_scheduler

        proposer = describe_sampler(study.info.sampler, spec.scheduler, len(spec.space.names))
        err_console.print(styled((f"sampler {proposer}, scheduler "
                                  f"{describe_scheduler(spec.scheduler)}", "dim")), highlight=False)
    before = study.history() if resumed else None  # what earlier runs left: this run's share is the rest
    status = run_with_progress(spec, study, err_console, quiet=quiet, workdir=workdir)
    _print_summary(study, status, before)


def totals_line(history: Any, status: Any, before: Any = None) -> str:
    """The run's last word on money: study-wide totals (every run of the study), labelled so, then this
    run's share when other runs hold some of it: earlier ones, or another `costtune run` of the same study
    at the same time. That share is what this controller's own attempts finished and were charged
    (``status.own_*``), never the study's change while it ran; preemptions and simulated time are this run's.
    ``before``: the study's history when the run began (a study earlier runs left trials in)."""
    from costtune.history import Outcomes
    from costtune.money import format_usd
    from costtune.reports.fmt import format_duration

    # A trial that failed or was stopped before it reported the objective is counted as such, never as a
    # result (history.Outcomes: the one rule the studies list and the report use too).
    outcomes = Outcomes.of(history.trials)
    line = f"study total (all runs): {plural(len(history.trials), 'trial')} ({outcomes.words()}), " \
           f"{format_usd(history.spent_micros)} spent"
    own: list[str] = []
    finished = outcomes.total - outcomes.unfinished
    shared = (before is not None and bool(before.trials)) or status.own_finished != finished or \
        status.own_spend_micros != history.spent_micros
    if shared:
        own.append(f"{plural(status.own_finished, 'trial')} ended ({status.own_outcomes.words()}), "
                   f"{format_usd(status.own_spend_micros)} spent")
    if status.preemptions:
        lost = format_usd(status.waste_micros)
        own.append(f"{plural(status.preemptions, 'preemption')}, {lost} of work lost to them")
    if status.sim_seconds:
        own.append(f"{format_duration(status.sim_seconds)} of simulated time")
    if own:
        line += ("; this run: " if shared else "; ") + ", ".join(own)
    if status.stop_reason:
        line += f"; stopped: {status.stop_reason}"
    return line


def _print_summary(study: Any, status: Any, before: Any = None) -> None:
    from costtune.money import format_usd
    from costtune.reports.fmt import format_params
    from costtune.reports.leaderboard import study_ladder, to_table
    from costtune.reports.placed import MARK_NOTE, shown_params
    from costtune.store.reads import attempt_rows, trial_costs

    history = study.history()
    costs = trial_costs(attempt_rows(study.store, study.id))  # placement and simulated time columns
    out_console.print(to_table(history, f"leaderboard: {study.name} ({history.metric}, {history.mode})",
                               limit=10, costs=costs, ladder=study_ladder(study.info.spec),
                               for_all=f"costtune leaderboard {study.name} for all"))
    best = history.best()
    out_console.print(totals_line(history, status, before), highlight=False)
    if best is not None:
        params, moved = shown_params(best.params, costs.get(best.number))  # where it really ran, marked
        out_console.print(f"best: trial {best.number} {history.metric}={best.value:.6g} "
                          f"cost {format_usd(best.cost_micros)} params {format_params(params)}"
                          + (f" ({MARK_NOTE})" if moved else ""), highlight=False)
        if best.output_dir and Path(best.output_dir).exists():
            out_console.print(f"best trial's output: {best.output_dir}", highlight=False, soft_wrap=True)
    out_console.print(f"store: {study.store.display_url}  (costtune leaderboard {study.name})", highlight=False)
    _print_failures(history, study.name)
    if status.error is not None:  # fail-fast, a misspelt objective.metric: the sweep stopped on it
        raise status.error
    if best is None and history.trials and not status.launched:  # nothing ran: say what kept every trial out
        if status.denied or status.stop_kind == "policy":
            raise CosttuneError(f"a spend policy blocked every launch: {status.stop_reason or 'see costtune audit'}; "
                                "see `costtune policy explain SWEEP.yaml` and `costtune audit`")
        if status.stop_kind == "budget":  # the cap (or what is left of it) cannot fund a trial to its first report
            raise CosttuneError(f"no trial could start: {status.stop_reason}; raise budget.usd in the sweep file "
                                "and run it again with --change-cap")
    if best is None and history.trials:
        raise CosttuneError("no trial produced a value; see `costtune trials` and `costtune logs`")


def _print_failures(history: Any, name: str, shown: int = 5) -> None:
    """Each failed trial's reason (the first line of its stored error), the latest first."""
    failed = [t for t in history.trials if str(t.state) == "failed"]
    if not failed:
        return
    out_console.print(f"{plural(len(failed), 'failed trial')}:", highlight=False)
    for t in sorted(failed, key=lambda t: t.number, reverse=True)[:shown]:
        reason = (t.error or "no reason stored").splitlines()[0]
        out_console.print(f"  trial {t.number}: {reason}", highlight=False, soft_wrap=True)
    if len(failed) > shown:
        out_console.print(f"  ... and {len(failed) - shown} more (costtune trials {name})",
                          highlight=False)


@click.command()
@db_option
@click.option("--trials", type=count(), default=None, help="How many trials (default 16).")
@click.option("--workers", type=count(1, MAX_WORKERS), default=None, help="Parallel trials (default 2).")
@click.option("--quiet", is_flag=True, help="No progress display.")
@handled
def demo(db: str | None, trials: int | None, workers: int | None, quiet: bool) -> None:
    """Tune a real MLP on scikit-learn's digits data, 2 trials at a time, on the local provider."""
    from costtune.spec import parse_sweep
    from costtune.yamlfile import load_yaml

    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise CosttuneError("the demo trains with scikit-learn: pip install 'costtune[examples]'") from None
    raw = load_yaml(resources.files("costtune.demo").joinpath("digits.yaml").read_text(encoding="utf-8"),
                    source="demo sweep digits.yaml")
    raw["name"] = f"digits-demo-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    if trials is not None:
        raw["budget"]["trials"] = trials
    if workers is not None:
        raw["resources"]["workers"] = workers
    _run_spec(parse_sweep(raw), db, quiet=quiet, workdir=str(Path.cwd()))
