"""`costtune report`: what a study's money bought, as tables, JSON, CSV or one HTML page."""

from __future__ import annotations

from pathlib import Path

import click

from costtune.cli.common import db_option, format_option, handled, open_store, out_console
from costtune.errors import InputError


@click.command()
@click.argument("study")
@db_option
@format_option
@click.option("--html", "html_path", type=click.Path(dir_okay=False), default=None,
              help="Write a self-contained HTML report (tables and charts) to this file.")
@click.option("--section", type=click.Choice(["improvements", "waste", "spend", "steps"]), default="improvements",
              show_default=True, help="Which table --format csv prints: cost per improvement, preemption waste "
              "by trial, spend by instance type and market, or steps per dollar.")
@handled
def report(study: str, db: str | None, fmt: str, html_path: str | None, section: str) -> None:
    """What STUDY's money bought: cost per improvement, the Pareto front, spend, preemption waste.

    Also spend by instance type and market, and median steps reached per dollar on each instance type.
    """
    from costtune.reports import cost as reports
    from costtune.store.reads import attempt_rows, trial_costs

    store = open_store(db)
    info = store.get_study(study)
    history = store.history(info.id)
    attempts = attempt_rows(store, info.id)  # one query for every trial, not one per trial
    costs = trial_costs(attempts)
    attempts_fn = reports.attempts_by_trial(attempts)
    if html_path is not None:
        from costtune.reports.html import render_html

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
