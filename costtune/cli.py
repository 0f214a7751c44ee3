"""The ``costtune`` command.

Exit codes: 0 success, 1 failure, 2 bad input (a sweep file, a flag, a study name, a config),
130 interrupted. Bad input is rejected before the store is opened, so it changes nothing.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from costtune.errors import CosttuneError, InputError, SpecError

# Messages keep their lines when piped (CI logs, grep) instead of wrapping at 80 columns.
err_console = Console(stderr=True, soft_wrap=True)
# Piped output (a file, CI) gets wide tables instead of rich's 80-column default.
out_console = Console() if Console().is_terminal else Console(width=200)

db_option = click.option(
    "--db", "db", envvar="COSTTUNE_DB", metavar="URL",
    help="Store URL or SQLite path (env COSTTUNE_DB; default ~/.local/share/costtune/costtune.db).",
)
format_option = click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
                             show_default=True, help="Output format.")


def _handled(func: Callable[..., Any]) -> Callable[..., Any]:
    """Map costtune's errors to messages and exit codes at the edge, never as tracebacks."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            err_console.print(f"[red]error:[/] {exc}", highlight=False)
            sys.exit(2)
        except CosttuneError as exc:
            err_console.print(f"[red]failed:[/] {exc}", highlight=False)
            sys.exit(1)
        except KeyboardInterrupt:
            err_console.print("interrupted: running trials were stopped and re-queued; "
                              "run the same command again to resume", highlight=False)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="costtune")
def main() -> None:
    """Cost-aware hyperparameter tuning: sweeps budgeted in dollars."""


def _store(db: str | None, *, create: bool = False):  # type: ignore[no-untyped-def]
    """Open the store; commands that only read refuse to create an empty SQLite file."""
    from sqlalchemy.engine import make_url

    from costtune.store import Store, resolve_db_url

    url = make_url(resolve_db_url(db))
    if not create and url.drivername == "sqlite" and url.database and not Path(url.database).exists():
        raise InputError(f"--db: no store at {url.database} (run a sweep first, or pass --db / COSTTUNE_DB)")
    return Store(db)


def _terminate_like_ctrl_c() -> None:
    """`kill PID` stops a sweep the way Ctrl-C does: running trials are re-queued, not lost."""

    def handler(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@main.command()
@click.argument("sweep_file", type=click.Path(dir_okay=False))
@db_option
@click.option("--workers", type=int, help="Override resources.workers.")
@click.option("--name", help="Override the study name from the sweep file.")
@click.option("--quiet", is_flag=True, help="No progress display; only the final leaderboard.")
@_handled
def run(sweep_file: str, db: str | None, workers: int | None, name: str | None, quiet: bool) -> None:
    """Run (or resume) the sweep described by SWEEP_FILE."""
    from costtune.spec import load_sweep

    raw_overrides: dict[str, Any] = {}
    if name is not None:
        raw_overrides["name"] = name
    if workers is not None:
        if workers < 1:
            raise SpecError("--workers", "must be >= 1", workers)
        raw_overrides["workers"] = workers
    spec = load_sweep(sweep_file)
    spec = _override(spec, raw_overrides)
    _run_spec(spec, db, quiet=quiet, workdir=str(Path.cwd()))


def _override(spec: Any, overrides: dict[str, Any]) -> Any:
    from costtune.spec import parse_sweep

    if not overrides:
        return spec
    raw = json.loads(json.dumps(spec.raw))
    if "name" in overrides:
        raw["name"] = overrides["name"]
    if "workers" in overrides:
        raw.setdefault("resources", {})["workers"] = overrides["workers"]
    return parse_sweep(raw)


def _run_spec(spec: Any, db: str | None, *, quiet: bool, workdir: str) -> None:
    from costtune.runner.session import open_sweep, run_with_progress

    store = _store(db, create=True)
    _terminate_like_ctrl_c()
    study, resumed = open_sweep(store, spec)
    if resumed and not quiet:
        err_console.print(f"resuming study [bold]{spec.name}[/] in {store.display_url}", highlight=False)
    status = run_with_progress(spec, study, err_console, quiet=quiet, workdir=workdir)
    _print_summary(study, status)


def _print_summary(study: Any, status: Any) -> None:
    from costtune.leaderboard import to_table
    from costtune.money import format_usd

    history = study.history()
    out_console.print(to_table(history, f"leaderboard: {study.name} ({history.metric}, {history.mode})",
                               limit=10))
    best = history.best()
    total = sum(t.cost_micros for t in history.trials)
    line = f"{len(history.trials)} trials, {format_usd(total)} spent"
    if status.stop_reason:
        line += f"; stopped: {status.stop_reason}"
    if status.preemptions:
        line += f"; {status.preemptions} preemptions, {format_usd(status.waste_micros)} of work lost to them"
    if status.sim_seconds:
        line += f"; {status.sim_seconds / 3600:.2f} simulated hours"
    out_console.print(line, highlight=False)
    if best is not None:
        out_console.print(f"best: trial {best.number} {history.metric}={best.value:.6g} "
                          f"cost {format_usd(best.cost_micros)} params {best.params}", highlight=False)
        if best.output_dir and Path(best.output_dir).exists():
            out_console.print(f"best trial's output: {best.output_dir}", highlight=False, soft_wrap=True)
    out_console.print(f"store: {study.store.display_url}  (costtune leaderboard {study.name})", highlight=False)
    if best is None and history.trials:
        raise CosttuneError("no trial produced a value; see `costtune trials` and `costtune logs`")


@main.command()
@db_option
@click.option("--trials", type=int, default=None, help="How many trials (default 16).")
@click.option("--workers", type=int, default=None, help="Parallel trials (default 2).")
@click.option("--quiet", is_flag=True, help="No progress display.")
@_handled
def demo(db: str | None, trials: int | None, workers: int | None, quiet: bool) -> None:
    """Tune a real MLP on scikit-learn's digits data, 2 trials at a time, on the local provider."""
    import yaml

    from costtune.spec import parse_sweep

    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise CosttuneError("the demo trains with scikit-learn: pip install 'costtune[examples]'") from None
    raw = yaml.safe_load(resources.files("costtune.demo").joinpath("digits.yaml").read_text())
    raw["name"] = f"digits-demo-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    if trials is not None:
        raw["budget"]["trials"] = trials
    if workers is not None:
        raw["resources"]["workers"] = workers
    _run_spec(parse_sweep(raw), db, quiet=quiet, workdir=str(Path.cwd()))


@main.command()
@db_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_handled
def studies(db: str | None, fmt: str) -> None:
    """List the studies in the store."""
    from rich.table import Table

    from costtune.money import format_usd, micros_to_usd

    try:
        store = _store(db)
    except InputError as exc:  # no store yet: nothing to list, and nothing created
        err_console.print(str(exc).replace("--db: ", ""), highlight=False)
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


@main.command()
@click.argument("study")
@db_option
@format_option
@click.option("--limit", type=int, default=None, help="Show only the first N rows (table only).")
@_handled
def leaderboard(study: str, db: str | None, fmt: str, limit: int | None) -> None:
    """Every trial of STUDY, best first, with parameters, state, metrics and cost.

    Cost columns: total spend, the highest dollar rung reached (rung schedulers), instance type and
    market of the last attempt, preemptions, money preemptions wasted, and steps reached.
    """
    from costtune.leaderboard import study_ladder, to_csv, to_json, to_table
    from costtune.store.reads import attempt_rows, trial_costs

    store = _store(db)
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


@main.command()
@click.argument("study")
@db_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_handled
def trials(study: str, db: str | None, fmt: str) -> None:
    """Trials of STUDY in the order they were created, with their attempts."""
    from rich.table import Table

    from costtune.money import format_usd, micros_to_usd

    store = _store(db)
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


@main.command()
@click.argument("study")
@click.argument("assignments", nargs=-1, required=True)
@db_option
@_handled
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
    store = _store(db)
    info = store.get_study(study)
    if not info.space:
        raise InputError(f"study {study!r} has no declared search space to check the configuration against")
    typed = SearchSpace.from_dict(info.space).coerce_config(config, path="config")
    number = store.enqueue(info.id, typed)
    click.echo(f"queued trial {number} for study {info.name}: {typed}")


@main.command()
@click.argument("study")
@click.argument("trial", type=int)
@db_option
@click.option("--stderr", "stream", flag_value="stderr", help="Show stderr instead of stdout.")
@click.option("--stdout", "stream", flag_value="stdout", default=True, help="Show stdout (default).")
@click.option("--tail", type=int, default=None, help="Only the last N lines.")
@_handled
def logs(study: str, trial: int, db: str | None, stream: str, tail: int | None) -> None:
    """Print the stdout (or --stderr) log of TRIAL of STUDY, every attempt in order."""
    store = _store(db)
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


@main.command()
@click.argument("study")
@db_option
@format_option
@click.option("--html", "html_path", type=click.Path(dir_okay=False), default=None,
              help="Write a self-contained HTML report (tables and charts) to this file.")
@click.option("--section", type=click.Choice(["improvements", "waste", "spend", "steps"]), default="improvements",
              show_default=True, help="Which table --format csv prints: cost per improvement, preemption waste "
              "by trial, spend by instance type and market, or steps per dollar.")
@_handled
def report(study: str, db: str | None, fmt: str, html_path: str | None, section: str) -> None:
    """What STUDY's money bought: cost per improvement, the Pareto front, spend, preemption waste.

    Also spend by instance type and market, and median steps reached per dollar on each instance type.
    """
    from costtune import reports
    from costtune.store.reads import attempt_rows, trial_costs

    store = _store(db)
    info = store.get_study(study)
    history = store.history(info.id)
    attempts = attempt_rows(store, info.id)  # one query for every trial, not one per trial
    costs = trial_costs(attempts)
    attempts_fn = reports.attempts_by_trial(attempts)
    if html_path is not None:
        from costtune.report_html import render_html

        path = Path(html_path)
        try:
            path.write_text(render_html(info.name, history, attempts_fn, attempts), encoding="utf-8")
        except OSError as exc:
            raise InputError(f"--html: cannot write {path}: {exc.strerror or exc}") from None
        click.echo(str(path.resolve()))
    elif fmt == "json":
        click.echo(reports.to_json(history, info.name, attempts_fn, attempts, costs))
    elif fmt == "csv":
        click.echo(reports.to_csv(history, section, attempts, costs), nl=False)
    else:
        label = f"{info.name} ({info.metric}, {info.mode})"
        out_console.print(reports.improvement_table(history, f"cost per improvement: {label}"))
        out_console.print(reports.pareto_table(history, f"Pareto front, {info.metric} vs cost: {label}"))
        for part in reports.placement_tables(history, attempts, costs):
            out_console.print(part, highlight=False)


def _add_prices() -> None:
    from costtune.prices.cli import prices

    prices.callback = _handled(prices.callback)  # type: ignore[arg-type]
    main.add_command(prices)


_add_prices()

from costtune import cli_money  # noqa: E402  (its commands register on ``main``; it imports this module)

del cli_money

if __name__ == "__main__":  # pragma: no cover
    main()
