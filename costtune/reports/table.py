"""Terminal tables that fit the console: whole columns are left out, numbers are never cut.

A ``FittedTable`` is a rich renderable built from ``Column`` objects. When it is printed it looks at
the width it may use and keeps columns in order of ``keep`` (lower first) while they fit; the kept
columns appear in their original left-to-right order, each exactly as wide as its widest cell, so
no cell is wrapped, folded or cut with an ellipsis. Text columns given a ``wrap`` width (an error
message, a parameter list) may wrap down to it and share what room is left. What was left out is
named under the table with a hint (a wider terminal, or ``--format json`` for every column). A table with no
rows prints its title and a line saying so (``empty``: "no rows" unless the caller says why), never bare headers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

HEADER_WORD_MAX = 12  # a longer header word folds rather than widening a column of short numbers
_BORDER = 3  # each column adds one border and a space of padding on either side


WORD_MAX = 30  # a longer word (a path, a URL) may fold: keeping it whole would crowd out the other columns


@dataclass
class Column:
    """One column: its header, one cell per row, and how much it matters (``keep``: lower stays longer)."""

    header: str
    cells: Sequence[str | Text]
    keep: int = 50
    justify: Literal["left", "right", "center"] = "right"
    wrap: int | None = None  # None: never wraps (numbers); else the narrowest width it may wrap to
    style: str | None = None
    _texts: list[Text] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._texts = [c.copy() if isinstance(c, Text) else Text(str(c)) for c in self.cells]
        for text in self._texts:  # a number never wraps; a text column folds words longer than its width
            text.no_wrap, text.overflow = self.wrap is None, "fold"

    @property
    def natural(self) -> int:
        """Its widest cell (every line of it), or its header's longest word if that is wider."""
        cells = max((line_len(t) for t in self._texts), default=0)
        words = max((len(w) for w in self.header.split()), default=1)
        return max(1, cells, min(words, HEADER_WORD_MAX))

    @property
    def least(self) -> int:
        """The narrowest it may be: its natural width for numbers; for text, ``wrap`` widened to its longest
        word (up to ``WORD_MAX``), so wrapping breaks lines between words and never cuts one."""
        if self.wrap is None:
            return self.natural
        word = max((len(w) for t in self._texts for w in t.plain.split()), default=1)
        return min(self.natural, max(self.wrap, min(word, WORD_MAX), 1))


def line_len(text: Text) -> int:
    return max((Text(line).cell_len for line in text.plain.splitlines()), default=0)


def table_width(widths: Sequence[int]) -> int:
    """Cells plus borders and padding of a boxed rich table."""
    return sum(widths) + _BORDER * len(widths) + 1


def choose(columns: Sequence[Column], width: int, *, always: int = 2) -> tuple[list[int], dict[int, int]]:
    """Indexes of the columns left out, and the width of each kept one, to fit ``width`` cells.

    The ``always`` most important columns stay even on a console too narrow for them.
    """
    order = sorted(range(len(columns)), key=lambda i: (columns[i].keep, i))
    kept: list[int] = []
    for rank, i in enumerate(order):
        if rank < always or table_width([columns[k].least for k in [*kept, i]]) <= width:
            kept.append(i)
    widths = {i: columns[i].least for i in kept}
    room = width - table_width(list(widths.values()))
    by_rank = sorted(kept, key=lambda i: (columns[i].keep, i))
    for i in [i for i in by_rank if columns[i].wrap is not None]:  # wrapped text first, then whole headers
        extra = min(max(room, 0), columns[i].natural - widths[i])
        widths[i] += extra
        room -= extra
    for i in by_rank:
        extra = min(max(room, 0), len(columns[i].header) - widths[i])
        if extra > 0 and widths[i] + extra == len(columns[i].header):  # only when the header fits on one line
            widths[i] += extra
            room -= extra
    dropped = [i for i in range(len(columns)) if i not in widths]
    return dropped, widths


class FittedTable:
    """A table that keeps the columns that fit the console; see the module docstring."""

    def __init__(self, columns: Sequence[Column], *, title: str | None = None,
                 hint: str = "widen the terminal, or use --format json for every column", always: int = 2,
                 note: str | None = None, empty: str = "no rows") -> None:
        self.columns = list(columns)
        self.empty = empty  # said under the title instead of a table with no rows
        self.title = title
        self.note = note  # printed under the table: rows left out (``costtune.words.shown``)
        self.hint = hint
        self.always = always
        rows = {len(c.cells) for c in self.columns}
        if len(rows) > 1:
            raise ValueError(f"every column needs one cell per row, got {sorted(rows)} cells")
        self.rows = rows.pop() if rows else 0

    def fit(self, width: int) -> tuple[Table, list[str]]:
        """The rich table for ``width`` cells and the headers of the columns left out."""
        dropped, widths = choose(self.columns, width, always=self.always)
        table = Table(title=None if self.title is None else Text(self.title), title_justify="left")  # never markup
        kept = [i for i in range(len(self.columns)) if i in widths]
        for i in kept:
            col = self.columns[i]
            header = Text(col.header, no_wrap=False, overflow="fold")  # a long header word folds
            table.add_column(header, justify=col.justify, width=widths[i], style=col.style)
        for r in range(self.rows):
            table.add_row(*(self.columns[i]._texts[r] for i in kept))
        return table, [self.columns[i].header for i in dropped]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if not self.rows:  # headers over nothing read as a broken report: the title, then why it is empty
            if self.title is not None:
                yield from Text(self.title).wrap(console, options.max_width)
            yield from Text(f"  {self.empty}", style="dim").wrap(console, options.max_width)
            return
        table, dropped = self.fit(options.max_width)
        yield table
        if self.note:
            yield from Text(self.note, style="dim").wrap(console, options.max_width)
        if dropped:
            note = Text(f"not shown: {', '.join(dropped)} ({self.hint})", style="dim")
            yield from note.wrap(console, options.max_width)  # wraps even on a soft-wrapping console
