"""The ``costtune`` click group: every command module's commands, assembled here.

Command modules never import this module, so there is no import circle. The console script runs
it through entry.py, which owns signals and exit codes.
"""

from __future__ import annotations

import click

from costtune.cli import (
    audit,
    dashboard,
    models,
    money,
    policy,
    prices,
    reap,
    report,
    run,
    schedule,
    scheduler,
    serve,
    studies,
)
from costtune.cli.common import CommandGroup, handled


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="costtune")
def main() -> None:
    """Cost-aware hyperparameter tuning: sweeps budgeted in dollars."""


for _command in (run.run, run.demo, studies.studies, studies.leaderboard, studies.trials, studies.enqueue,
                 studies.logs, report.report, money.plan, money.spend, audit.audit, reap.reap, serve.serve,
                 serve.agent, schedule.schedule, scheduler.scheduler, models.models, dashboard.dashboard):
    main.add_command(_command)
prices.prices.callback = handled(prices.prices.callback)  # type: ignore[arg-type]  # a group: its listing
main.add_command(prices.prices)
main.add_command(policy.policy)

__all__ = ["main"]
