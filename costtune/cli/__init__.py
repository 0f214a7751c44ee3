"""The ``costtune`` command: one module per command group, assembled in app.py.

run.py (run, demo), studies.py (studies, leaderboard, trials, enqueue, logs), report.py (report),
money.py (plan, spend), prices.py (prices), audit.py (audit); common.py holds what they share. The
console script starts in entry.py, which handles SIGINT and SIGTERM before anything heavy is imported. This
package imports nothing itself: ``costtune.cli.main`` (the click group) loads app.py on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from costtune.cli.app import main

__all__ = ["main"]


def __getattr__(name: str) -> Any:
    if name == "main":
        from costtune.cli.app import main

        return main
    raise AttributeError(f"module 'costtune.cli' has no attribute {name!r}")
