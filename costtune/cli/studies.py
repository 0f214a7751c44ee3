"""Read and edit what the store holds: `studies`, `leaderboard`, `trials`, `enqueue`, `logs`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from costtune.cli.common import count, db_option, err_console, format_option, handled, open_store, out_console
from costtune.errors import CosttuneError, InputError, NoStore, SpecError
from costtune.limits import INT64_MAX


@click.command()
@db_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@handled
def studies(db: str | None, fmt: str) -> None:
    """List the studies in the store."""
    from rich.table import Table

    from costtune.money import format_usd, micros_to_usd

    try:
        store = open_store(db)
    except NoStore as exc:  # no store yet: nothing to list, and nothing created
        err_console.print(exc.reason, highlight=False)
        store = None
    rows = []
    for info in store.list_studies() if store else []:
        history = store.history(info.id)
        best = history.best()
        rows.append({
            "name": info.name, "metric": info.metric, "mode": str(info.mode),
            "trials": len(history.trials), "finished": sum(t.state.finished for t in history.trials),
            "best_value": best.value if best else None,
            "cost_usd": str(micros_to_usd(sum(t.cost_micros for t in history.trials))),
            "cost_micros": sum(t.cost_micros for t in history.trials),
            "created_at": info.created_at.isoformat(),
        })
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"studies in {store.display_url if store else 'no store'}", title_justify="left")
    for col in ("name", "objective", "trials", "best", "cost", "created"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], f"{r['metric']} ({r['mode']})", f"{r['finished']}/{r['trials']}",
                      "-" if r["best_value"] is None else f"{r['best_value']:.6g}",
                      format_usd(r["cost_micros"]), r["created_at"][:19])
    out_console.print(table)


@click.command()
@click.argument("study")
@db_option
@format_option
@click.option("--limit", type=count(), default=None, help="Show only the first N rows (table only).")
@handled
def leaderboard(study: str, db: str | None, fmt: str, limit: int | None) -> None:
    """Every trial of STUDY, best first, with parameters, state, metrics and cost.

    Cost columns: total spend, the highest dollar rung reached (rung schedulers), instance type and
    market of the last attempt, preemptions, money preemptions wasted, and steps reached.
    """
    from costtune.reports.leaderboard import study_ladder, to_csv, to_json, to_table
    from costtune.store.reads import attempt_rows, trial_costs

    store = open_store(db)
    info = store.get_study(study)
    history = store.history(info.id)
    costs = trial_costs(attempt_rows(store, info.id))  # one query for every trial, not one per trial
    ladder = study_ladder(info.spec)
    if fmt == "json":
        click.echo(to_json(history, info.name, costs, ladder))
    elif fmt == "csv":
        click.echo(to_csv(history, costs, ladder), nl=False)
    else:
        out_console.print(to_table(history, f"leaderboard: {info.name} ({info.metric}, {info.mode})", limit,
                                   costs, ladder))
        best = history.best()
        if best is not None and best.output_dir:
            out_console.print(f"best trial's output: {best.output_dir}", highlight=False, soft_wrap=True)


@click.command()
@click.argument("study")
@db_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@handled
def trials(study: str, db: str | None, fmt: str) -> None:
    """Trials of STUDY in the order they were created, with their attempts."""
    from rich.table import Table

    from costtune.money import format_usd, micros_to_usd

    store = open_store(db)
    info = store.get_study(study)
    history = store.history(info.id)
    rows = []
    by_trial = store.attempts_by_trial(info.id)  # one query, not one per trial
    for t in history.trials:
        attempts = by_trial.get(t.number, [])
        rows.append({
            "trial": t.number, "state": str(t.state), "source": t.source, "params": t.params,
            "value": t.value, "last_step": t.last_step, "cost_usd": str(micros_to_usd(t.cost_micros)),
            "cost_micros": t.cost_micros, "output_dir": t.output_dir, "error": t.error,
            "attempts": [{"number": a.number, "provider": a.provider, "exit_reason": a.exit_reason,
                          "exit_code": a.exit_code, "billable_ms": a.billable_ms, "cost_micros": a.cost_micros,
                          "instance_type": a.instance_type, "market": a.market, "region": a.region,
                          "rate_micros_per_hour": a.rate_micros_per_hour, "start_step": a.start_step,
                          "waste_micros": a.waste_micros, "started_at": a.started_at.isoformat(),
                          "ended_at": a.ended_at.isoformat() if a.ended_at else None} for a in attempts],
        })
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"trials: {info.name}", title_justify="left")
    for col in ("trial", "state", "source", info.metric, "step", "cost", "attempts", "params / error"):
        table.add_column(col)
    for r in rows:
        detail = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["params"].items())
        if r["error"]:
            detail += f"\n[red]{r['error'].splitlines()[0]}[/]"
        exits = ",".join(str(a["exit_reason"] or "running") for a in r["attempts"]) or "-"
        table.add_row(str(r["trial"]), r["state"], r["source"],
                      "-" if r["value"] is None else f"{r['value']:.6g}",
                      "-" if r["last_step"] is None else str(r["last_step"]),
                      format_usd(r["cost_micros"]), exits, detail)
    out_console.print(table)


@click.command()
@click.argument("study")
@click.argument("assignments", nargs=-1, required=True)
@db_option
@handled
def enqueue(study: str, assignments: tuple[str, ...], db: str | None) -> None:
    """Queue a configuration for STUDY, e.g. `costtune enqueue mystudy lr=0.01 hidden=64`.

    Queued configurations run before sampled ones, in the order they were queued.
    """
    from costtune.space import SearchSpace

    config: dict[str, str] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError("enqueue", "each argument must be key=value", item)
        if key in config:
            raise SpecError(f"enqueue.{key}", "given twice", item)
        config[key] = value
    store = open_store(db)
    info = store.get_study(study)
    if not info.space:
        raise InputError(f"study {study!r} has no declared search space to check the configuration against")
    typed = SearchSpace.from_dict(info.space).coerce_config(config, path="config")
    number = store.enqueue(info.id, typed)
    click.echo(f"queued trial {number} for study {info.name}: {typed}")


@click.command()
@click.argument("study")
@click.argument("trial", type=count(0, INT64_MAX))
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
        raise InputError(f"trial {trial} of {study!r} has no output directory (it never started)")
    path = Path(frozen.output_dir) / f"{stream}.log"
    if not path.exists():
        raise CosttuneError(f"no {stream} log at {path}")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for line in lines[-tail:] if tail else lines:
        click.echo(line)
