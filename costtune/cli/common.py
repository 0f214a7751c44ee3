"""What every command module shares: the consoles, the common options, opening the store, and the
mapping of costtune's errors to messages and exit codes.

Exit codes: 0 success, 1 failure, 2 bad input (a sweep file, a flag, a study name, a config),
130 interrupted. Bad input is rejected before the store is opened, so it changes nothing.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from rich.console import Console

from costtune.cli.entry import exit_interrupted, hint_for
from costtune.errors import CosttuneError, InputError, NoStore, StoreUnavailable
from costtune.richtext import make_console, styled

# Messages keep their lines when piped (CI logs, grep) instead of wrapping at 80 columns. Neither console reads
# markup: a study name, a parameter value or a message quoting one prints as written (costtune.richtext).
err_console = make_console(stderr=True, soft_wrap=True)
PIPED_WIDTH = 200  # output going to a file or CI, with no terminal anywhere to measure


def _output_width() -> int | None:
    """Tables fit the terminal: stdout's, else ``$COLUMNS``, else the terminal stderr still shows
    (``costtune leaderboard x | less``), else a wide page for files and CI logs."""
    if Console().is_terminal or os.environ.get("COLUMNS", "").isdigit():
        return None  # rich measures the terminal or reads COLUMNS itself
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        return PIPED_WIDTH


out_console = make_console(width=_output_width(), soft_wrap=True)  # tables fit the width; prose lines never wrap


class _DbOption(click.Option):
    """``--db``, whose help names the store this environment really defaults to (``COSTTUNE_HOME``...)."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        from costtune.store.engine import costtune_home

        self.help = f"Store URL or SQLite path (env COSTTUNE_DB; default {costtune_home() / 'costtune.db'})."
        return super().get_help_record(ctx)


db_option = click.option("--db", "db", envvar="COSTTUNE_DB", metavar="URL", cls=_DbOption,
                         help="Store URL or SQLite path (env COSTTUNE_DB; default under COSTTUNE_HOME).")
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

    Values that reach the store pass its column's range (a trial number: ``maximum=INT32_MAX``).
    """
    return click.IntRange(minimum, maximum)

format_option = click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
                             show_default=True, help="Output format.")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def summary(command: click.Command) -> str:
    """A command's one-line description: its ``short_help``, else the whole first sentence of its help."""
    if command.short_help:
        return command.short_help
    first = inspect.cleandoc(command.help or "").split("\n\n", 1)[0]
    return _SENTENCE_END.split(" ".join(first.split()), maxsplit=1)[0]


class CommandGroup(click.Group):
    """A group whose command list shows each command's whole first sentence, wrapped, never cut."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, summary(cmd)) for name in self.list_commands(ctx)
                if (cmd := self.get_command(ctx, name)) is not None and not cmd.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def handled(func: Callable[..., Any]) -> Callable[..., Any]:
    """Map costtune's errors to messages and exit codes at the edge, never as tracebacks."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InputError as exc:  # a value like "[/x]" in a message is text, not rich markup
            err_console.print(styled(("error:", "red"), f" {exc}"), highlight=False)
            sys.exit(2)
        except CosttuneError as exc:
            err_console.print(styled(("failed:", "red"), f" {exc}"), highlight=False)
            sys.exit(1)
        except KeyboardInterrupt:
            exit_interrupted(hint_for(func.__name__))

    return wrapper


def confirm(what: str, *, verb: str, yes: bool, question: str | None = None, it: bool = False,
            refused: type[CosttuneError] = InputError) -> None:
    """Ask before a destructive act on ``what`` unless ``yes``: without a terminal to ask, ``refused``
    (``not <verb>d: <what>; pass --yes ...``); a "no" prints ``nothing <verb>d`` and exits 1.
    ``question``: the prompt, ``<verb> <what>?`` by default; ``it``: "pass --yes to <verb> it ..."."""
    done = f"{verb}d" if verb.endswith("e") else f"{verb}ed"
    if yes:
        return
    if not sys.stdin.isatty():
        raise refused(f"not {done}: {what}; pass --yes to {verb} {'it ' if it else ''}without being "
                      "asked")
    if not click.confirm(question or f"{verb} {what}?", default=False, err=True):
        err_console.print(f"nothing {done}", highlight=False)
        sys.exit(1)


def open_store(db: str | None, *, create: bool = False):  # type: ignore[no-untyped-def]
    """Open the store; commands that only read refuse to create an empty SQLite file.

    Every failure to open is an ``InputError`` (exit 2) naming where the URL came from (``--db``,
    ``COSTTUNE_DB``) and the URL with its password masked; nothing is left behind.
    """
    from sqlalchemy.engine import make_url

    from costtune.store import Store, resolve_db_url
    from costtune.store.engine import mask_url

    label = _db_label(db)
    try:
        raw = db or os.environ.get(ENV_DB) or ""
        url = make_url(resolve_db_url(db))
        if url.drivername == "sqlite" and _throwaway_sqlite(raw, url.database):
            raise StoreUnavailable(
                f"{mask_url(raw)!r} is an in-memory or URI-form SQLite store: it keeps nothing after the "
                "command ends and no other process can share its caps; give a file path "
                "(x.db, sqlite:///x.db) or a postgresql:// URL")
        if not create and url.drivername == "sqlite" and url.database and not Path(url.database).exists():
            raise NoStore(f"no store at {url.database} (run a sweep first, or pass --db / COSTTUNE_DB)")
        return Store(db)
    except StoreUnavailable as exc:
        raise exc.with_label(label) from None


def _throwaway_sqlite(raw: str, database: str | None) -> bool:
    """True for SQLite forms that keep nothing or that SQLite would read as a URI: ``sqlite://``,
    ``sqlite:///:memory:``, a bare ``:memory:`` and ``file:...`` (which would otherwise become a file
    or folder of that name in the working directory)."""
    bare = raw.strip()
    if not database or database == ":memory:" or database.startswith("file:"):
        return True
    return "://" not in bare and (bare == ":memory:" or bare.startswith("file:"))


def _db_label(db: str | None) -> str:
    """Where the store URL came from, for messages: ``--db``, ``COSTTUNE_DB`` or the default path."""
    ctx = click.get_current_context(silent=True)
    source = ctx.get_parameter_source("db") if ctx is not None and "db" in ctx.params else None
    if source == ParameterSource.ENVIRONMENT or (db is None and os.environ.get(ENV_DB)):
        return ENV_DB
    if db is None:
        return "default store (--db / COSTTUNE_DB not given)"
    return "--db"
