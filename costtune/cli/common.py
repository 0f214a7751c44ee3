"""What every command module shares: the consoles, the common options, opening the store, and the
mapping of costtune's errors to messages and exit codes.

Exit codes: 0 success, 1 failure, 2 bad input (a sweep file, a flag, a study name, a config),
130 interrupted. Bad input is rejected before the store is opened, so it changes nothing.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from rich.console import Console
from rich.markup import escape

from costtune.errors import CosttuneError, InputError, NoStore, StoreUnavailable

# Messages keep their lines when piped (CI logs, grep) instead of wrapping at 80 columns.
err_console = Console(stderr=True, soft_wrap=True)
# Piped output (a file, CI) gets wide tables instead of rich's 80-column default.
out_console = Console() if Console().is_terminal else Console(width=200)

db_option = click.option(
    "--db", "db", envvar="COSTTUNE_DB", metavar="URL",
    help="Store URL or SQLite path (env COSTTUNE_DB; default ~/.local/share/costtune/costtune.db).",
)
ENV_DB = "COSTTUNE_DB"


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses ``nan`` and ``inf`` (which pass a range check)."""

    name = "finite float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def count(minimum: int = 1, maximum: int | None = None) -> click.IntRange:
    """The type of a numeric flag: an integer >= minimum (and <= maximum); click names the flag on a bad value.

    Values that reach the store (a trial number) pass ``maximum=INT64_MAX``, the store's column range.
    """
    return click.IntRange(minimum, maximum)

format_option = click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
                             show_default=True, help="Output format.")


def handled(func: Callable[..., Any]) -> Callable[..., Any]:
    """Map costtune's errors to messages and exit codes at the edge, never as tracebacks."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InputError as exc:  # escaped: a value like "[/x]" in a message is text, not rich markup
            err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
            sys.exit(2)
        except CosttuneError as exc:
            err_console.print(f"[red]failed:[/] {escape(str(exc))}", highlight=False)
            sys.exit(1)
        except KeyboardInterrupt:
            err_console.print("interrupted: running trials were stopped and re-queued; "
                              "run the same command again to resume", highlight=False)
            sys.exit(130)

    return wrapper


def open_store(db: str | None, *, create: bool = False):  # type: ignore[no-untyped-def]
    """Open the store; commands that only read refuse to create an empty SQLite file.

    Every failure to open is an ``InputError`` (exit 2) naming where the URL came from (``--db``,
    ``COSTTUNE_DB``) and the URL with its password masked; nothing is left behind.
    """
    from sqlalchemy.engine import make_url

    from costtune.store import Store, resolve_db_url

    label = _db_label(db)
    try:
        url = make_url(resolve_db_url(db))
        if not create and url.drivername == "sqlite" and url.database and not Path(url.database).exists():
            raise NoStore(f"no store at {url.database} (run a sweep first, or pass --db / COSTTUNE_DB)")
        return Store(db)
    except StoreUnavailable as exc:
        raise exc.with_label(label) from None


def _db_label(db: str | None) -> str:
    """Where the store URL came from, for messages: ``--db``, ``COSTTUNE_DB`` or the default path."""
    ctx = click.get_current_context(silent=True)
    source = ctx.get_parameter_source("db") if ctx is not None and "db" in ctx.params else None
    if source == ParameterSource.ENVIRONMENT or (db is None and os.environ.get(ENV_DB)):
        return ENV_DB
    if db is None:
        return "default store (--db / COSTTUNE_DB not given)"
    return "--db"
