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


def integer(value: Any, path: str, *, minimum: int = 1, maximum: int = INT64_MAX, hint: str = "") -> int:
    """An int in [minimum, maximum]: an int, or a float with an integral value (``3.0`` -> 3); never a
    bool, a fractional float (``3.5``) or text (``"3"``). Raises ``SpecError`` naming ``path`` and the
    value, the message stating the bound that failed (``hint`` appended to the ">= minimum" one)."""
    if isinstance(value, float) and value.is_integer():  # finite: inf and nan are not integral
        number: Any = int(value)
    else:
        number = value
    if isinstance(number, bool) or not isinstance(number, int) or number < minimum:
        raise SpecError(path, f"must be an integer >= {minimum}{hint}", value)
    if number > maximum:
        raise SpecError(path, f"must be an integer <= {maximum}", value)
    return number


def seconds(value: Any, path: str, *, positive: bool, what: str = "a number of seconds") -> float:
    """A finite number of seconds, > 0 (``positive``) or >= 0, and at most ``MAX_SECONDS`` (a year)."""
    bound = "> 0" if positive else ">= 0"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value < 0 or (positive and value == 0):
        raise SpecError(path, f"must be {what} {bound}", value)
    if value > MAX_SECONDS:
        raise SpecError(path, f"must be at most {MAX_SECONDS} (365 days)", value)
    return float(value)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(value: Any, path: str) -> float:
    """Seconds from a number (``600``) or a number with a unit (``90s``, ``10m``, ``6h``, ``2d``), > 0 and at
    most a year; ``SpecError`` naming ``path`` otherwise."""
    given = value
    if isinstance(value, str):
        text = value.strip().lower()
        unit = _UNITS.get(text[-1:], 0) if text else 0
        number = text[:-1].strip() if unit else text
        try:
            value = float(number) * (unit or 1)
        except ValueError:
            raise SpecError(path, "must be a duration such as 600, 90s, 10m, 6h or 2d", value) from None
    try:
        return seconds(value, path, positive=True, what="a duration (seconds, or 90s, 10m, 6h, 2d)")
    except SpecError as e:  # name the value as it was given (--poll 0s), not the seconds read from it
        raise SpecError(path, e.reason, given) from None


def os_text(text: str, path: str) -> str:
    """``text`` unchanged, or a ``SpecError`` when the operating system could not pass it on."""
    problem = unfit_for_os(text)
    if problem:
        raise SpecError(path, problem, text if len(text) <= 200 else f"{text[:200]}...")
    return text


__all__ = ["duration", "integer", "os_text", "seconds", "unfit_for_os"]
