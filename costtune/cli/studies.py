"""Read and edit what the store holds: `studies`, `leaderboard`, `trials`, `enqueue`, `logs`."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import click

from costtune.cli.common import (
    confirm,
    count,
    db_option,
    err_console,
    format_option,
    handled,
    open_store,
    out_console,
)
from costtune.errors import CosttuneError, InputError, NoStore, SpecError
from costtune.limits import INT32_MAX, INT64_MAX
from costtune.words import plural


@click.group(invoke_without_command=True, short_help="List, delete or rename studies.")
@db_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="Output format of the listing.")
@click.pass_context
@handled
def studies(ctx: click.Context, db: str | None, fmt: str) -> None:
    """List the studies in the store; `studies delete NAME` and `studies rename OLD NEW` edit them."""
    ctx.ensure_object(dict)["db"] = db
    if ctx.invoked_subcommand is None:
        _list_studies(db, fmt)


def _list_studies(db: str | None, fmt: str) -> None:
    from costtune.history import Outcomes
    from costtune.money import format_usd_column, micros_to_usd
    from costtune.reports.fmt import format_number
    from costtune.reports.table import Column, FittedTable
    from costtune.samplers import describe_sampler
    from costtune.schedulers import describe_scheduler
    from costtune.study.resume import stored_scheduler

    try:
        store = open_store(db)
    except NoStore as exc:  # no store yet: nothing to list, and nothing created; say so rather than an empty table
        if fmt == "json":
            err_console.print(exc.reason, highlight=False)
            click.echo("[]")
        else:
            out_console.print(f"no studies yet: {exc.reason}", highlight=False, soft_wrap=True)  # and where
        return
    rows = []
    for info in store.list_studies():
        history = store.history(info.id)
        best = history.best()
        outcomes = Outcomes.of(history.trials)
        scheduler = stored_scheduler(info)
        rows.append({
            "name": info.name, "metric": info.metric, "mode": str(info.mode),
            "sampler": describe_sampler(info.sampler, scheduler, len(info.space or {})),  # bohb: its model
            "scheduler": scheduler["type"],
            "scheduler_detail": describe_scheduler(scheduler),
            "trials": len(history.trials), "finished": sum(t.state.finished for t in history.trials),
            # how they ended (history.Outcomes): a failed trial, or one stopped before a report, is no result
            "with_result": outcomes.results, "failed": outcomes.failed, "no_result": outcomes.no_result,
            "unfinished": outcomes.unfinished,  # queued or running: the four parts add up to ``trials``
            "controller_gone": len(store.gone_trials(info.id)),
            "best_value": best.value if best else None,
            "cost_usd": str(micros_to_usd(history.spent_micros)),
            "cost_micros": history.spent_micros,
            "created_at": info.created_at.isoformat(),
            "last_stop": info.last_stop,  # why its last run stopped; null before any, and while one runs
            "outcomes": outcomes.words(),  # the table's words (not in the JSON: its counts are)
        })
    if fmt == "json":
        click.echo(json.dumps([{k: v for k, v in r.items() if k != "outcomes"} for r in rows], indent=2))
        return
    if not rows:
        out_console.print(f"no studies in {store.display_url} yet (`costtune run SWEEP.yaml` creates one)",
                          highlight=False, soft_wrap=True)
        return
    out_console.print(FittedTable([
        Column("name", [r["name"] for r in rows], keep=0, justify="left"),
        Column("objective", [f"{r['metric']} ({r['mode']})" for r in rows], keep=3, justify="left"),
        Column("trials", [f"{r['trials']} ({r['outcomes']})" + (f", {r['controller_gone']} running (controller gone)"
                                                               if r["controller_gone"] else "") for r in rows],
               keep=2, justify="left", wrap=9),
        Column("sampler", [r["sampler"] for r in rows], keep=5, justify="left", wrap=16),  # bohb: its model, long
        Column("scheduler", [r["scheduler_detail"] for r in rows], keep=6, justify="left", wrap=14),
        Column("best", [format_number(r["best_value"]) for r in rows], keep=1),
        Column("cost", format_usd_column([r["cost_micros"] for r in rows]), keep=1),
        Column("created", [r["created_at"][:19].replace("T", " ") for r in rows], keep=4),
        Column("last stop", [r["last_stop"] or "-" for r in rows], keep=3, justify="left", wrap=18),
    ], title=f"studies in {store.display_url}"))


def _store_db(ctx: click.Context, db: str | None) -> str | None:
    """A subcommand's --db, else the one given to `costtune studies`."""
    return db if db is not None else (ctx.obj or {}).get("db")


@studies.command("delete", short_help="Delete a study, its trials and its own ledger scope.")
@click.argument("name")
@db_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--delete-output", is_flag=True, help="Also remove the trials' output directories.")
@click.pass_context
@handled
def delete_study(ctx: click.Context, name: str, db: str | None, yes: bool, delete_output: bool) -> None:
    """Delete study NAME: its trials, attempts, reports and its own ledger scope, in one transaction.

    Refused while a live `costtune run` (or in-process study) runs one of its trials. What a
    controller that died left is settled first, exactly as the study's next run would: leftover
    process trees stopped, open attempts closed and billed from their own facts, held money charged
    or released. Money it spent stays in the books of every other ledger scope (team, day, month).
    Output directories stay on disk unless --delete-output. Asks first unless --yes; without a
    terminal to ask, --yes is needed.
    """
    from costtune.money import format_usd
    from costtune.store.admin import StudyBusy

    store = open_store(_store_db(ctx, db))
    info = store.get_study(name)
    busy = store.live_owners(info.id)
    if busy:
        owners = ", ".join(sorted(busy))
        raise StudyBusy(f"study {name!r} is being run by a live controller ({owners}); stop it first")
    history = store.history(info.id)
    dirs = sorted({t.output_dir for t in history.trials if t.output_dir})
    what = (f"study {name!r} in {store.display_url}: {plural(len(history.trials), 'trial')}, "
            f"{format_usd(history.spent_micros)} spent")
    if delete_output and dirs:
        what += f", and {plural(len(dirs), 'trial output directory')} under {_common_root(dirs)}"
    confirm(what, verb="delete", yes=yes, refused=CosttuneError)
    _settle_first(store, info.id, name)
    done = store.delete_study(info.id)
    kept = (f"; {plural(done.reservations_kept, 'reservation')} {'stays' if done.reservations_kept == 1 else 'stay'} "
            "in other scopes' books") if done.reservations_kept else ""
    click.echo(f"deleted study {done.name!r}: {plural(done.trials, 'trial')}, {plural(done.attempts, 'attempt')}, "
               f"{plural(done.reports, 'report')}, {format_usd(done.spent_micros)} of spend{kept}")
    if delete_output:
        removed, left = _remove_trial_dirs(done.output_dirs)
        left_text = f"; left {', '.join(left)}" if left else ""
        click.echo(f"removed {plural(removed, 'trial output directory')}{left_text}")
    elif done.output_dirs:
        click.echo(f"output directories kept under {_common_root(list(done.output_dirs))} (--delete-output)")


def _settle_first(store: Any, study_id: int, name: str) -> None:
    """Settle what dead controllers left exactly as a run's recovery would (stop leftover process
    trees, close open attempts billed from their own facts, charge and release held money), so the
    spend reaches every scope before the study's own books go. Raises ``StudyBusy`` when an attempt
    ran on another host, which only that host can settle."""
    from costtune.providers import make_provider
    from costtune.richtext import styled
    from costtune.runner.settle import settle_dead
    from costtune.store.admin import StudyBusy

    others = _cloud_providers(store, study_id)

    def unlisted(provider: str, exc: Exception) -> None:  # its instances, if any, are left running
        regions = ",".join(getattr(getattr(others[provider], "aws", None), "regions", ()))
        reap = f"costtune reap --provider {provider}" + (f" --regions {regions}" if regions else "")
        err_console.print(styled((
            f"warning: could not list the {provider} instances of study {name!r} ({exc}); instances its dead "
            f"controller left may still be running, and billing. Once the credentials work, `{reap} --db "
            f"{store.display_url}` terminates them (after this delete no attempt owns them)", "yellow")),
            highlight=False, soft_wrap=True)

    orphans = settle_dead(store, study_id, name, make_provider("local"),
                          lambda message: err_console.print(message, highlight=False), others=others,
                          on_unlisted=unlisted)
    away = sorted({(o.host or "?", o.number) for o in orphans if o.left_open})
    if away:
        where = "; ".join(f"trial {n} on {host}" for host, n in away)
        raise StudyBusy(f"study {name!r} still has attempts another host ran ({where}), which this host cannot "
                        f"see or stop: run `costtune studies delete {name}` on that host")


def _cloud_providers(store: Any, study_id: int) -> dict[str, Any]:
    """The cloud adapters a study's attempts ran on, for settling them before the study goes: on AWS, an
    adapter over every region its attempts ran in (it only lists, terminates and reads launch facts; no image
    is launched), so instances a dead controller left are terminated and billed from EC2's own times."""
    regions = sorted({a.region or "" for attempts in store.attempts_by_trial(study_id).values() for a in attempts
                      if a.provider == "aws"} - {""})
    if not regions:
        return {}
    from costtune.providers.aws import AwsProvider
    from costtune.providers.aws.clients import Clients
    from costtune.spec.aws import AwsResources

    return {"aws": AwsProvider(AwsResources(regions=tuple(regions), image=""), session=Clients().session)}


def _common_root(dirs: list[str]) -> str:
    import os.path

    return os.path.commonpath(dirs) if len(dirs) > 1 else str(Path(dirs[0]).parent)


def _remove_trial_dirs(dirs: tuple[str, ...]) -> tuple[int, list[str]]:
    """Remove the trials' folders (costtune named them ``trial-NNNN``), then their parent if empty."""
    import shutil

    removed, left, parents = 0, [], set()
    for d in dirs:
        path = Path(d)
        if not path.exists():
            continue
        if not (path.is_dir() and path.name.startswith("trial-")):
            left.append(d)  # not a folder costtune made: never remove it
            continue
        try:
            shutil.rmtree(path)
            removed += 1
            parents.add(path.parent)
        except OSError as exc:
            left.append(f"{d} ({exc.strerror or exc})")
    from costtune.study.output import MARKER

    for parent in parents:
        with contextlib.suppress(OSError):
            if [entry.name for entry in parent.iterdir()] == [MARKER]:
                (parent / MARKER).unlink()  # the study's claim on its folder goes with the study
            parent.rmdir()  # only when nothing else lives there
    return removed, left


@studies.command("rename", short_help="Give a study another name.")
@click.argument("old")
@click.argument("new")
@db_option
@click.pass_context
@handled
def rename_study(ctx: click.Context, old: str, new: str, db: str | None) -> None:
    """Rename study OLD to NEW (letters, digits, '_', '.', '-', like a sweep file's name).

    The study keeps its output directory (chosen when it was created), so its trials' files stay
    where they are.
    """
    from costtune.names import check_study_name

    check_study_name(new, "NEW")
    store = open_store(_store_db(ctx, db))
    info = store.get_study(old)
    if store.find_study(new) is not None:
        raise InputError(f"NEW: study {new!r} already exists in {store.display_url}; pick another name "
                         f"or delete it first (costtune studies delete {new})")
    store.rename_study(info.id, new)
    click.echo(f"renamed study {old!r} to {new!r}")


@click.command(short_help="Every trial of a study, best first, with its cost.")
@click.argument("study")
@db_option
@format_option
@click.option("--limit", type=count(), default=None, help="Show only the first N rows (table only).")
@handled
def leaderboard(study: str, db: str | None, fmt: str, limit: int | None) -> None:
    """Every trial of STUDY, best first, with parameters, state, metrics and cost.

    Cost columns: total spend, the highest dollar rung judged at (rung schedulers; stored verdicts), instance type and
    market of the last attempt and preemptions with the money their re-run work cost (when the study
    has them), the last step reported, time billed (what the cost pays for, minimum charges included;
    simulated instance time on a virtual clock) and tries. The table keeps the columns that fit the
    terminal; --format json|csv has every column.
    """
    from costtune.reports.leaderboard import study_ladder, to_csv, to_json, to_table
    from costtune.store.reads import attempt_rows, trial_costs

    store = open_store(db)
    info = store.get_study(study)
    history = store.history(info.id)
    costs = trial_costs(attempt_rows(store, info.id))  # one query for every trial, not one per trial
    ladder = study_ladder(info.spec)
    gone = store.gone_trials(info.id)  # running, but nothing watches them: not shown as live
    if fmt == "json":
        click.echo(to_json(history, info.name, costs, ladder, gone))
    elif fmt == "csv":
        click.echo(to_csv(history, costs, ladder, gone), nl=False)
    else:
        out_console.print(to_table(history, f"leaderboard: {info.name} ({info.metric}, {info.mode})", limit,
                                    costs, ladder, gone, for_all="leave out --limit for all"))
        _gone_note(gone)
        from costtune.policies.status import study_verdicts, verdicts_line

        policies = verdicts_line(study_verdicts(store, info.id))  # the spend policies its launches ran under
        if policies:
            out_console.print(policies, highlight=False, markup=False)
        best = history.best()
        if best is not None and best.output_dir:
            out_console.print(f"best trial's output: {best.output_dir}", highlight=False, soft_wrap=True)


@click.command(short_help="Trials in creation order, with attempts and errors.")
@click.argument("study")
@click.argument("trial", type=count(0, INT32_MAX), required=False)
@db_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@handled
def trials(study: str, trial: int | None, db: str | None, fmt: str) -> None:
    """Trials of STUDY in the order they were created, with their attempts; TRIAL: one trial in detail.

    The detail view shows every attempt: where it ran, its time billed and cost, how it ended, and
    the command line it really ran (placeholders filled in).
    """
    from costtune.reports.trials import trial_detail, trial_rows, trials_table

    store = open_store(db)
    info = store.get_study(study)
    if trial is not None:
        store.trial(info.id, trial)  # an unknown number is an error naming it
    history = store.history(info.id)
    gone = store.gone_trials(info.id)  # running, but nothing watches them: not shown as live
    rows = trial_rows(history, store.attempts_by_trial(info.id, trial), gone)  # one query, not one per trial
    if trial is not None:
        [row] = [r for r in rows if r["trial"] == trial]
        if fmt == "json":
            click.echo(json.dumps(row, indent=2))
        else:
            kind = (info.spec.get("scheduler") or {}).get("type") if isinstance(info.spec, dict) else None
            for part in trial_detail(row, info.metric, title=f"trial {trial} of {info.name}", scheduler=kind):
                out_console.print(part, highlight=False)
        return
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    out_console.print(trials_table(rows, info.metric, title=f"trials: {info.name}"))
    _gone_note(gone)


def _gone_note(gone: set[int]) -> None:
    if gone:
        numbers = ", ".join(map(str, sorted(gone)))
        which = f"trial {numbers}" if len(gone) == 1 else f"trials {numbers}"
        err_console.print(f"{which}: running (controller gone): the controller that ran it died; the study's next "
                          "run (or `costtune studies delete`) stops what is left and bills it", highlight=False)


@click.command(short_help="Queue a configuration to run next.")
@click.argument("study")
@click.argument("assignments", nargs=-1, required=True)
@db_option
@click.option("--raise-trials", "raise_trials", type=count(1, INT64_MAX), default=None, metavar="N",
              help="First raise the study's stored budget.trials to N (recorded in `costtune audit`).")
@handled
def enqueue(study: str, assignments: tuple[str, ...], db: str | None, raise_trials: int | None) -> None:
    """Queue a configuration for STUDY, e.g. `costtune enqueue mystudy lr=0.01 hidden=64`.

    Queued configurations run before sampled ones, in the order they were queued. Each counts
    toward the sweep's budget.trials: a study that already holds that many trials refuses more (exit 2,
    naming how many it allows and holds) unless --raise-trials N raises the stored budget.trials to N,
    a change recorded in `costtune audit`.
    """
    from costtune.study.queue import enqueue_config

    config: dict[str, str] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError("enqueue", "each argument must be key=value", item)
        if key in config:
            raise SpecError(f"enqueue.{key}", "given twice", item)
        config[key] = value
    queued = enqueue_config(open_store(db), study, config, raise_trials=raise_trials)
    number, typed, limit, name = queued.number, queued.params, queued.limit, queued.study
    raised = f" (budget.trials raised from {limit} to {raise_trials}, see costtune audit)" if raise_trials else ""
    click.echo(f"queued trial {number} for study {name}: {typed}{raised}")


@click.command(short_help="A trial's stdout or stderr, every attempt in order.")
@click.argument("study")
@click.argument("trial", type=count(0, INT32_MAX))
@db_option
@click.option("--stderr", "stream", flag_value="stderr", help="Show stderr instead of stdout.")
@click.option("--stdout", "stream", flag_value="stdout", default=True, help="Show stdout (default).")
@click.option("--tail", type=count(), default=None, help="Only the last N lines.")
@handled
def logs(study: str, trial: int, db: str | None, stream: str, tail: int | None) -> None:
    """Print the stdout (or --stderr) log of TRIAL of STUDY, every attempt in order."""
    store = open_store(db)
    info = store.get_study(study)
    frozen = store.trial(info.id, trial)
    if not frozen.output_dir:
        simulated = any(a.provider == "simulated" for a in store.attempts(info.id, trial))
        why = ("a simulated trial runs as a workload on a virtual clock and writes no logs; `costtune trials "
               f"{study} {trial}` shows what it reported" if simulated else "it never started")
        raise InputError(f"trial {trial} of {study!r} has no output directory ({why})")
    path = Path(frozen.output_dir) / f"{stream}.log"
    if not path.exists():
        raise CosttuneError(f"no {stream} log at {path}")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for line in lines[-tail:] if tail else lines:
        click.echo(line)
