"""What the operating system can pass on: text that becomes an argv entry, an environment string or a path.

A parameter value, a command argument or an ``env`` value with a NUL character (or a lone surrogate,
or more than ``MAX_ARG_BYTES``) would fail only when the trial is launched, after its money was
reserved; every reader of user input refuses it up front with this check.
"""

from __future__ import annotations

import os

MAX_ARG_BYTES = 128 * 1024  # Linux's limit on one argv or environment string (MAX_ARG_STRLEN)


def unfit_for_os(text: str) -> str | None:
    """Why ``text`` cannot be an argv entry, an environment string or a path; None when it can."""
    if "\x00" in text:
        return "holds a NUL character, which no argument, environment variable or path can hold"
    try:
        raw = os.fsencode(text)
    except UnicodeEncodeError as exc:
        return f"holds {text[exc.start]!r}, which cannot be encoded for the operating system"
    if len(raw) > MAX_ARG_BYTES:
        return f"is {len(raw)} bytes long; one argument or environment string holds at most {MAX_ARG_BYTES}"
    return None


__all__ = ["MAX_ARG_BYTES", "unfit_for_os"]
