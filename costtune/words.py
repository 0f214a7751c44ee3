"""The one way a count is written in a message (``1 trial``, ``2 trials``), and the one way a list
cut short says so (``10 of 16 shown; costtune leaderboard NAME for all``)."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"(\d+)")


def plural(n: int, noun: str, many: str | None = None) -> str:
    """``n`` and ``noun``, the noun in its plural form unless ``n`` is exactly 1.

    The plural is ``many`` when given, else ``noun`` + "s" ("trial" -> "trials"; "entry" ->
    "entries"; "…s"/"…x"/"…ch"/"…sh" -> "…es"). Only the last word of ``noun`` changes:
    ``plural(2, "failed trial")`` is "2 failed trials".
    """
    return f"{n} {noun if n == 1 else many or _plural(noun)}"


def noun_for(n: int, noun: str, many: str | None = None) -> str:
    """``plural`` without the count: ``noun_for(2, "policy")`` is "policies" (a list of names follows it)."""
    return noun if n == 1 else many or _plural(noun)


def verb_for(n: int, one: str, many: str) -> str:
    """The verb agreeing with ``n`` subjects: ``verb_for(1, "denies", "deny")`` is "denies"."""
    return one if n == 1 else many


def _plural(noun: str) -> str:
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u"):
        return noun[:-1] + "ies"
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    return noun + "s"


# How an attempt's note starts when the study's dollar cap stopped its trial (runner/decisions.py writes it,
# `costtune trials STUDY N` shows it as the trial's "stopped:" line).
BUDGET_STOP = "stopped by the budget"


def article(word: str) -> str:
    """The indefinite article before ``word``: "an" before a vowel ("an asha scheduler"), else "a"."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def shown(count: int, total: int, for_all: str) -> str | None:
    """The note under a list cut to ``count`` of ``total`` rows, saying how to see them all
    (``for_all``, e.g. "costtune leaderboard NAME for all"); None when nothing is hidden."""
    if total <= count:
        return None
    return f"{count} of {total} shown; {for_all}"


__all__ = ["article", "plural", "shown"]


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders numbers inside text by value: ``study:2`` before ``study:10`` (text order puts
    ``study:10`` first). Digit runs compare as integers, the rest as text; the two never compare with each other."""
    return tuple((1, int(part)) if part.isdigit() else (0, part) for part in _DIGITS.split(text) if part)
