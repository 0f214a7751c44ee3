"""The names of `costtune report`'s sections, in the order the terminal shows them (no imports: the CLI
reads them at start-up for ``--section``'s choices)."""

from __future__ import annotations

SECTIONS = ("improvements", "pareto", "classes", "spend", "steps", "waste")
