"""costtune's own error tree.

User-facing errors carry the path of the offending field so a message reads like
``space.lr.low: must be > 0 for loguniform, got -1``. The CLI maps ``InputError`` to
exit code 2 and every other ``CosttuneError`` to exit code 1.
"""

from __future__ import annotations

import reprlib
from typing import Any


class _AsSpelled(reprlib.Repr):
    """``reprlib.Repr`` that spells booleans and null the way a YAML or JSON file does (``true``, ``false``,
    ``null``), also inside lists and mappings, so an error quotes the value as the user wrote it."""

    def repr_bool(self, x: bool, level: int) -> str:
        return "true" if x else "false"

    def repr_bool_(self, x: Any, level: int) -> str:  # numpy.bool_
        return "true" if bool(x) else "false"

    def repr_NoneType(self, x: None, level: int) -> str:  # noqa: N802 (reprlib looks methods up by type name)
        return "null"


# Values in messages stay one bounded line, whatever was given (a 1 MiB string, a deep alias tree).
_VALUE = _AsSpelled()
_VALUE.maxstring = _VALUE.maxother = 200
_VALUE.maxlong = 60
_VALUE.maxlist = _VALUE.maxtuple = _VALUE.maxdict = _VALUE.maxset = 12
_VALUE.maxlevel = 4


_WHOLE = _AsSpelled()  # unbounded but for nesting: for callers that shorten the text themselves
_WHOLE.maxstring = _WHOLE.maxother = _WHOLE.maxlong = 1 << 30
_WHOLE.maxlist = _WHOLE.maxtuple = _WHOLE.maxdict = _WHOLE.maxset = _WHOLE.maxfrozenset = _WHOLE.maxdeque = 1 << 30
_WHOLE.maxarray = 1 << 30
_WHOLE.maxlevel = 20


def shown(value: Any, *, bounded: bool = True) -> str:
    """A value in an error message, as the file spells it: ``true``/``false``/``null`` (not Python's ``True`` and
    ``None``), text quoted, numbers as numbers; one bounded line unless ``bounded`` is False (the caller shortens
    it). The one helper every "..., got VALUE" message uses (``SpecError``, metric lines)."""
    return (_VALUE if bounded else _WHOLE).repr(value)


class CosttuneError(Exception):
    """Base of every error costtune raises on purpose.

    Picklable whatever a subclass's ``__init__`` takes (rebuilt from its message and attributes, ``__init__`` not
    called again): a forecast's worker process raises them to the parent, which showed "a worker process died"
    instead of the error when one could not be rebuilt."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuilt, (type(self), self.args, dict(self.__dict__)))


def _rebuilt(cls: type[CosttuneError], args: tuple[Any, ...], state: dict[str, Any]) -> CosttuneError:
    """``cls`` with ``args`` (its message) and ``state`` (its attributes), as it was pickled."""
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class InputError(CosttuneError):
    """Bad input from a user: a sweep file, a CLI flag, an enqueued config, an API call."""


class SpecError(InputError):
    """A field of a sweep file / search space / config is invalid.

    ``path`` is dotted (``space.lr.low``, ``command[3]``); ``value`` is what was given.
    """

    _MISSING = object()

    def __init__(self, path: str, message: str, value: Any = _MISSING) -> None:
        self.path = path
        self.reason = message
        self.value = value
        text = f"{path}: {message}" if path else message
        if value is not SpecError._MISSING:
            text += f", got {shown(value)}"
        super().__init__(text)


class StoreError(CosttuneError):
    """The store refused an operation (missing study, conflicting definition, ...)."""


class StoreUnavailable(InputError):
    """The store cannot be opened: a bad URL, a refused or failed connection, a path that is no store.

    ``reason`` is one line naming the URL (password masked); ``label`` names where the URL came from
    (``--db``, ``COSTTUNE_DB``; ``store`` by default). Raised while the store is first opened, and
    only after anything that open created (a SQLite file, its directories) was removed again.
    """

    def __init__(self, reason: str, *, label: str = "store") -> None:
        self.reason = reason
        self.label = label
        super().__init__(f"{label}: {reason}")

    def with_label(self, label: str) -> StoreUnavailable:
        return type(self)(self.reason, label=label)


class NoStore(StoreUnavailable):
    """A command that only reads was pointed at a SQLite file that does not exist (none was created)."""


class StudyNotFound(StoreError, InputError):
    """A study name or id that the store does not hold."""


class SamplerExhausted(CosttuneError):
    """The sampler has no configuration left to propose (a finished grid, an empty manual list)."""


class StopTrial(Exception):
    """Raised inside an objective to end a trial because the scheduler said stop.

    Not an error: the trial is recorded as ``stopped`` with its last reported values.
    """


class TrialFailed(Exception):
    """Raised by ``trial.report`` when the trial cannot go on (its objective was NaN or infinite).

    The trial is already recorded as failed with the reason; ``Study.optimize`` goes on to the
    next trial. In an ask/tell loop, catch it and ask for the next trial.
    """


class BudgetExhausted(CosttuneError):
    """The study's dollar cap cannot fund another trial (``Study.ask``; ``optimize`` just ends)."""


class LaunchLimit(CosttuneError):
    """A reservation would make more launches held at once under a policy than ``rules.max_instances``."""

    def __init__(self, prefix: str, limit: int, held: int) -> None:
        self.prefix = prefix
        self.limit = limit
        self.held = held
        super().__init__(f"scopes {prefix}*: {held} launches held, at most {limit} at once (rules.max_instances)")


class CapExceeded(CosttuneError):
    """A reservation would take a scope past its hard cap; nothing was reserved anywhere."""

    def __init__(self, scope: str, cap_micros: int, spent_micros: int, reserved_micros: int, asked_micros: int) -> None:
        self.scope = scope
        self.cap_micros = cap_micros
        self.spent_micros = spent_micros
        self.reserved_micros = reserved_micros
        self.asked_micros = asked_micros

        from costtune.money import format_usd as usd  # money imports this module: imported when raised

        super().__init__(
            f"scope {scope!r}: cap {usd(cap_micros)} would be exceeded: spent {usd(spent_micros)}, "
            f"reserved {usd(reserved_micros)}, asked for {usd(asked_micros)} more "
            f"(micro-dollars: cap {cap_micros}, spent {spent_micros}, reserved {reserved_micros}, "
            f"asked {asked_micros})"
        )
