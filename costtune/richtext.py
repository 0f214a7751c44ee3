"""Terminal text that never reads user input as rich markup.

A study name, a parameter value (``[bold]``), a metric name, a command, a trial's stderr tail or an
error message quoting any of them is shown exactly as written: rich would otherwise take ``[red]``
as a style and stop on ``[/]`` with a ``MarkupError``. Every console costtune prints to is made by
``make_console`` (markup off, so plain strings, table titles and string cells are literal), styled
lines are built as ``styled`` Text, and a template that must stay markup (a progress column)
passes user text through ``literal``.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text


def make_console(**kwargs: Any) -> Console:
    """A rich Console that treats every string as text, never as markup (``markup=False``)."""
    return Console(markup=False, **kwargs)


def literal(value: object) -> str:
    """``value`` as text for a string that rich reads as markup: ``[bold]`` prints as ``[bold]``."""
    return escape(str(value))


def styled(*parts: str | tuple[str, str]) -> Text:
    """One line from pieces, each plain text or ``(text, style)``; no piece is ever read as markup."""
    return Text.assemble(*parts)


__all__ = ["literal", "make_console", "styled"]
