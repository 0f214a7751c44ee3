"""The money commands: `costtune plan` (what a sweep will cost) and `costtune spend` (the ledger's books)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from costtune.cli.common import db_option, err_console, handled, open_store, out_console
from costtune.errors import SpecError


@click.command()
@db_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@handled
def spend(db: str | None, fmt: str) -> None:
    """Spend by ledger scope: cap, spent, held by running trials, and what is left."""
    from rich.table import Table

    from costtune.money import format_usd_column

    store = open_store(db)
    names = {f"study:{info.id}": f"study {info.name}" for info in store.list_studies()}
    rows = []
    for scope, (cap, spent, reserved) in store.balances().items():
        rows.append({"scope": scope, "name": names.get(scope, scope), "cap_micros": cap, "spent_micros": spent,
                     "reserved_micros": reserved, "left_micros": None if cap is None else cap - spent - reserved})
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"spend by scope in {store.display_url}", title_justify="left")
    for col in ("scope", "cap", "spent", "held", "left"):
        table.add_column(col, justify="left" if col == "scope" else "right")
    keys = ("cap_micros", "spent_micros", "reserved_micros", "left_micros")
    columns = [format_usd_column([r[k] for r in rows]) for k in keys]  # one number of decimals per column
    for i, r in enumerate(rows):
        table.add_row(r["name"], *(column[i] for column in columns))
    out_console.print(table)


@click.command()
@click.argument("sweep_file", type=click.Path(dir_okay=False))
@click.option("--runs", type=click.IntRange(min=0), default=20, show_default=True,
              help="Simulated runs behind the spend forecast (simulated sweeps only).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="Output format.")
@click.option("--quiet", is_flag=True, help="No progress bar while the simulated runs go.")
@handled
def plan(sweep_file: str, runs: int, fmt: str, quiet: bool) -> None:
    """What SWEEP_FILE will cost, before any money is spent.

    Rungs and brackets in dollars, start-up and minimum-charge overheads, expected preemption
    waste and, for a simulated sweep, a spend forecast from --runs runs of it on the simulator.
    Nothing is written to any store of yours: plan takes no --db.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from costtune.plan import build_plan
    from costtune.plan.render import render, to_dict
    from costtune.spec import load_sweep

    if runs < 1:
        raise SpecError("--runs", "must be an integer >= 1", runs)
    spec = load_sweep(sweep_file)
    show = not quiet and spec.resources.provider == "simulated"
    progress = Progress(TextColumn("[bold]simulating {task.description}"), BarColumn(),
                        TextColumn("{task.completed}/{task.total} runs"), TextColumn("{task.fields[detail]}"),
                        TimeElapsedColumn(), console=err_console, transient=True, disable=not show)
    task = progress.add_task(spec.name, total=runs, detail="")
    spends: list[int] = []

    def on_run(_k: int, sample: Any) -> None:
        spends.append(sample.spend_micros)
        median = sorted(spends)[len(spends) // 2]
        progress.update(task, advance=1, detail=f"median spend so far ${median / 1e6:.4f}")

    try:
        with progress:
            result = build_plan(spec, runs=runs, on_run=on_run)
    except KeyboardInterrupt:
        err_console.print("interrupted: plan spends nothing and keeps nothing", highlight=False)
        sys.exit(130)
    if fmt == "json":
        click.echo(json.dumps(to_dict(result), indent=2))
    else:
        render(result, out_console)
