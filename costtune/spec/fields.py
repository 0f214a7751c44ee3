"""Field readers every part of a sweep file shares: bounded integers, seconds, argv/env text.

Each raises ``SpecError`` naming the field path and the value. The bounds keep every number the
controller, the store (64-bit columns) and the operating system will see representable.
"""

from __future__ import annotations

import math
from typing import Any

from costtune.errors import SpecError
from costtune.limits import INT64_MAX, MAX_SECONDS
from costtune.ostext import unfit_for_os


def integer(value: Any, path: str, *, minimum: int = 1, maximum: int = INT64_MAX) -> int:
    """An int (never a bool) in [minimum, maximum]; the message states the bound that failed."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(path, f"must be an integer >= {minimum}", value)
    if value > maximum:
        raise SpecError(path, f"must be an integer <= {maximum}", value)
    return value


def seconds(value: Any, path: str, *, positive: bool, what: str = "a number of seconds") -> float:
    """A finite number of seconds, > 0 (``positive``) or >= 0, and at most ``MAX_SECONDS`` (a year)."""
    bound = "> 0" if positive else ">= 0"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value < 0 or (positive and value == 0):
        raise SpecError(path, f"must be {what} {bound}", value)
    if value > MAX_SECONDS:
        raise SpecError(path, f"must be at most {MAX_SECONDS} (365 days)", value)
    return float(value)


def os_text(text: str, path: str) -> str:
    """``text`` unchanged, or a ``SpecError`` when the operating system could not pass it on."""
    problem = unfit_for_os(text)
    if problem:
        raise SpecError(path, problem, text if len(text) <= 200 else f"{text[:200]}...")
    return text


__all__ = ["integer", "os_text", "seconds", "unfit_for_os"]
