"""`costtune report`: what a study's money bought, as tables, JSON, CSV or one HTML page."""

from __future__ import annotations

from pathlib import Path

import click

from costtune.cli.common import db_option, format_option, handled, open_store, out_console
from costtune.errors import InputError
from costtune.reports.sections import SECTIONS


@click.command(short_help="What a study's money bought, as tables, JSON, CSV or HTML.")
@click.argument("study")
@db_option
@format_option
@click.option("--html", "html_path", type=click.Path(dir_okay=False), default=None,
              help="Write a self-contained HTML report (tables and charts) to this file.")
@click.option("--section", type=click.Choice(SECTIONS), default=None, metavar="NAME",
              help="Print only this section: improvements (cost per improvement), pareto (the metric-vs-cost "
              "front), classes (spend by class: useful, stopped early, policy stop, failed, re-run, unfinished), spend "
              "(by instance type and market), steps (steps per dollar), waste (re-run money by trial). "
              "--format csv prints one section: improvements unless named.")
@handled
def report(study: str, db: str | None, fmt: str, html_path: str | None, section: str | None) -> None:
    """What STUDY's money bought: cost per improvement, the Pareto front, where the money went.

    Every dollar is counted once: useful (trials that ran to their end), stopped early (by the scheduler or by
    the study's budget), stopped by a spend policy's cap (the policies named), failed, re-run after a
    preemption or interruption, or still running/queued; by instance type and market too, with median
    steps reached per dollar on each instance type.
    """
    from costtune.reports import cost, terminal
    from costtune.reports.leaderboard import study_ladder
    from costtune.store.reads import attempt_rows, trial_costs

    store = open_store(db)
    info = store.get_study(study)
    history = store.history(info.id)
    attempts = attempt_rows(store, info.id)  # one query for every trial, not one per trial
    costs = trial_costs(attempts)
    if html_path is not None:
        from costtune.reports.html import render_html

        path = Path(html_path)
        try:
            from costtune.policies.status import study_verdicts

            path.write_text(render_html(info.name, history, attempts, ladder=study_ladder(info.spec),
                                        policies=study_verdicts(store, info.id)), encoding="utf-8")
        except OSError as exc:
            raise InputError(f"--html: cannot write {path}: {exc.strerror or exc}") from None
        click.echo(str(path.resolve()))
    elif fmt == "json":
        click.echo(cost.to_json(history, info.name, attempts, costs, section=section))
    elif fmt == "csv":
        click.echo(cost.to_csv(history, section or "improvements", attempts, costs), nl=False)
    else:
        label = f"{info.name} ({info.metric}, {info.mode})"
        for part in terminal.sections(history, attempts, costs, label, only=section):
            out_console.print(part, highlight=False)
