"""What every command module shares: the consoles, the common options, opening the store, and the
mapping of costtune's errors to messages and exit codes.

Exit codes: 0 success, 1 failure, 2 bad input (a sweep file, a flag, a study name, a config),
130 interrupted. Bad input is rejected before the store is opened, so it changes nothing.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from costtune.cli.entry import exit_interrupted, hint_for
from costtune.errors import CosttuneError, InputError

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


def handled(func: Callable[..., Any]) -> Callable[..., Any]:
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
            exit_interrupted(hint_for(func.__name__))

    return wrapper


def open_store(db: str | None, *, create: bool = False):  # type: ignore[no-untyped-def]
    """Open the store; commands that only read refuse to create an empty SQLite file."""
    from sqlalchemy.engine import make_url

    from costtune.store import Store, resolve_db_url

    url = make_url(resolve_db_url(db))
    if not create and url.drivername == "sqlite" and url.database and not Path(url.database).exists():
        raise InputError(f"--db: no store at {url.database} (run a sweep first, or pass --db / COSTTUNE_DB)")
    return Store(db)
