"""The ``costtune`` command: one module per command group, assembled here.

run.py (run, demo), studies.py (studies, leaderboard, trials, enqueue, logs), report.py (report),
money.py (plan, spend), prices.py (prices), audit.py (audit); common.py holds what they share. Command modules never
import this package, so there is no import circle.
"""

from __future__ import annotations

import click

from costtune.cli import audit, money, prices, report, run, studies
from costtune.cli.common import handled


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="costtune")
def main() -> None:
    """Cost-aware hyperparameter tuning: sweeps budgeted in dollars."""


for _command in (run.run, run.demo, studies.studies, studies.leaderboard, studies.trials, studies.enqueue,
                 studies.logs, report.report, money.plan, money.spend, audit.audit):
    main.add_command(_command)
prices.prices.callback = handled(prices.prices.callback)  # type: ignore[arg-type]
main.add_command(prices.prices)

__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover
    main()
