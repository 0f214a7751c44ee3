"""How numbers read to people: durations, metric values and money, the same in every table and page.

Money has one rule (``costtune.money.usd_places``): three significant digits of the smallest
non-zero amount, shared by a whole column. Durations read like a person writes them (``850 ms``,
``42 s``, ``3 m 12 s``, ``3 h 22 m``, ``2 d 4 h``), whether the time is wall time or the simulated
instance time of a virtual clock. These are for display only; JSON and CSV keep exact values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from costtune.money import format_usd, format_usd_column, usd_places

__all__ = ["format_duration", "format_number", "format_usd", "format_usd_column", "usd_places"]

_MINUTE, _HOUR, _DAY = 60, 3600, 86400


def format_duration(seconds: float | None, missing: str = "-") -> str:
    """``850 ms``, ``4.2 s``, ``42 s``, ``3 m 12 s``, ``3 h 22 m``, ``2 d 4 h``; None (or nan) shows ``missing``.

    Two units at most, the smaller rounded, so a column of durations stays narrow. Negative
    durations (a clock that went backwards) keep their sign.
    """
    if seconds is None or not math.isfinite(seconds):
        return missing
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds == 0:
        return "0 s"
    if seconds < 1:
        ms = round(seconds * 1000)
        if ms < 1000:
            return f"{ms} ms"
    if seconds < 10 and round(seconds, 1) < 10:
        return f"{seconds:.1f} s"
    if seconds < _MINUTE and round(seconds) < _MINUTE:
        return f"{round(seconds)} s"
    total = round(seconds)
    if total < _HOUR:
        return _two(total, _MINUTE, "m", "s")
    minutes = round(seconds / _MINUTE)
    if minutes < 24 * 60:
        return _two(minutes, 60, "h", "m")
    hours = round(seconds / _HOUR)
    return _two(hours, 24, "d", "h")


def _two(amount: int, per: int, big: str, small: str) -> str:
    whole, rest = divmod(amount, per)
    return f"{whole} {big} {rest} {small}"


def format_number(value: Any, digits: int = 6, missing: str = "-") -> str:
    """A metric or parameter value: floats (and exact decimals) to ``digits`` significant digits."""
    if value is None:
        return missing
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float | Decimal):
        return format(value, f".{digits}g")
    return str(value)


def format_params(params: dict[str, Any]) -> str:
    """``lr=0.01 hidden=64``: floats to four significant digits."""
    return " ".join(f"{k}={format_number(v, 4)}" for k, v in params.items())


GONE = "controller gone"


def shown_state(row: Mapping[str, Any]) -> str:
    """A row's state as read-only views show it: a trial marked running whose controller is gone
    (``row["controller_gone"]``) is ``running (controller gone)``, not presented as live."""
    state = str(row["state"])
    return f"{state} ({GONE})" if row.get("controller_gone") else state


def shown_exit_code(exit_reason: str | None, exit_code: int | None) -> int | None:
    """The exit code a listing shows for an attempt (the stored one stays in JSON as ``exit_code``).

    A ``completed`` attempt shows the code its trial exited with (0), or none: one that costtune itself
    ended at its top rung (``max_usd`` reached) holds the signal costtune sent (-15 from SIGTERM, by a
    local process or mimicked by the simulator), which says nothing about a trial that completed.
    Every other ending shows its recorded code.
    """
    if exit_reason == "completed" and exit_code not in (0, None):
        return None
    return exit_code
