"""costtune's own error tree.

User-facing errors carry the path of the offending field so a message reads like
``space.lr.low: must be > 0 for loguniform, got -1``. The CLI maps ``InputError`` to
exit code 2 and every other ``CosttuneError`` to exit code 1.
"""

from __future__ import annotations

import math
import re
import reprlib
from typing import Any


class _AsSpelled(reprlib.Repr):
    """``reprlib.Repr`` that spells a value the way a YAML file does, also inside lists and mappings, so an error
    quotes the value as the user wrote it: ``true``/``false``/``null``; numbers without a ``.0`` the user did not
    write (``1e12``, not ``1000000000000.0``) and ``.nan``/``.inf``; text quoted only when the bare text would read
    as something else (``'5'``, ``''``, ``'c[5'``); lists and mappings in flow style (``[a, b]``,
    ``{period: daily}``, keys in the order given). With ``json`` set, NaN and Infinity are spelled as a JSON line
    writes them (metric lines)."""

    def __init__(self, *, json: bool = False) -> None:
        super().__init__()
        self.json = json

    def repr_bool(self, x: bool, level: int) -> str:
        return "true" if x else "false"

    def repr_bool_(self, x: Any, level: int) -> str:  # numpy.bool_
        return "true" if bool(x) else "false"

    def repr_NoneType(self, x: None, level: int) -> str:  # noqa: N802 (reprlib looks methods up by type name)
        return "null"

    def repr_float(self, x: float, level: int) -> str:
        return _number(float(x), json=self.json)

    repr_float64 = repr_float32 = repr_float16 = repr_float  # numpy floats

    def repr_int64(self, x: Any, level: int) -> str:  # numpy integers
        return self.repr_int(int(x), level)

    repr_int32 = repr_int16 = repr_int8 = repr_uint64 = repr_uint32 = repr_uint16 = repr_uint8 = repr_int64

    def repr_Decimal(self, x: Any, level: int) -> str:  # noqa: N802
        return str(x)

    def repr_str(self, x: str, level: int) -> str:
        if len(x) > self.maxstring:  # keep both ends, as reprlib does
            i = max(0, (self.maxstring - 3) // 2)
            j = max(0, self.maxstring - 3 - i)
            x = x[:i] + self.fillvalue + x[len(x) - j:]
        return _text(x, json=self.json)

    def repr_tuple(self, x: tuple[Any, ...], level: int) -> str:
        return self._repr_iterable(x, level, "[", "]", self.maxtuple)

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        items = [f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}" for k, v in list(x.items())[:self.maxdict]]
        if len(x) > self.maxdict:
            items.append(self.fillvalue)
        return "{" + ", ".join(items) + "}"


# Text that YAML reads back as the same text when written bare, and that reads as one value inside a message:
# no spaces, no quotes, no flow or comment characters, no leading indicator.
_BARE = re.compile(r"[A-Za-z0-9_./~^$+=<>()\\-][A-Za-z0-9_./~^$+=<>()\\*?!@%&|:;-]*")


def _text(x: str, *, json: bool = False) -> str:
    """``x`` bare when that reads back as the same text, else quoted (single quotes, or JSON double quotes when it
    holds a character that needs an escape)."""
    if not json and _BARE.fullmatch(x) and x != "-" and not x.endswith(":") and not _reads_as_other(x):
        return x
    if json or not x.isprintable():
        import json as _json

        return _json.dumps(x, ensure_ascii=False)
    return "'" + x.replace("'", "''") + "'"


def _reads_as_other(x: str) -> bool:
    """True when the bare text would read as a number, a boolean or null in a YAML file: by costtune's YAML 1.2
    rules, or by YAML 1.1's (``1_000``, ``yes``, ``off``), which many readers still follow."""
    import yaml

    from costtune.yamlfile import core_number  # yamlfile imports this module

    if core_number(x) is not None or x.lower() in ("null", "~", "true", "false"):
        return True
    return yaml.resolver.Resolver().resolve(yaml.ScalarNode, x, (True, False)) != "tag:yaml.org,2002:str"


def _number(x: float, *, json: bool = False) -> str:
    """A float as a file would write it: ``.nan``, ``.inf``, ``-.inf`` (``NaN``, ``Infinity`` with ``json``);
    ``1e12`` and ``1.5e3`` for integral values with three or more trailing zeros (no ``.0`` the user did not
    write); otherwise the shortest text that reads back as the same float (``0.1``, ``5.0``, ``1e-7``)."""
    if math.isnan(x):
        return "NaN" if json else ".nan"
    if math.isinf(x):
        return ("-" if x < 0 else "") + ("Infinity" if json else ".inf")
    text = repr(x)
    if x.is_integer() and "e" not in text:
        digits = text[:-2].lstrip("-")  # "N.0"
        significant = digits.rstrip("0")
        if len(digits) - len(significant) >= 3:
            mantissa = significant[0] + ("." + significant[1:] if len(significant) > 1 else "")
            return f"{'-' if x < 0 else ''}{mantissa}e{len(digits) - 1}"
        return text
    mantissa, e, exponent = text.partition("e")
    return f"{mantissa}e{int(exponent)}" if e else text


# Values in messages stay one bounded line, whatever was given (a 1 MiB string, a deep alias tree).
_VALUE = _AsSpelled()
_VALUE.maxstring = _VALUE.maxother = 200
_VALUE.maxlong = 60
_VALUE.maxlist = _VALUE.maxtuple = _VALUE.maxdict = _VALUE.maxset = 12
_VALUE.maxlevel = 4


def _unbounded(json: bool) -> _AsSpelled:
    whole = _AsSpelled(json=json)  # unbounded but for nesting: for callers that shorten the text themselves
    whole.maxstring = whole.maxother = whole.maxlong = 1 << 30
    whole.maxlist = whole.maxtuple = whole.maxdict = whole.maxset = whole.maxfrozenset = whole.maxdeque = 1 << 30
    whole.maxarray = 1 << 30
    whole.maxlevel = 20
    return whole


_WHOLE = _unbounded(json=False)
_WHOLE_JSON = _unbounded(json=True)


def shown(value: Any, *, bounded: bool = True, json: bool = False) -> str:
    """A value in a message, as the file spells it (see ``_AsSpelled``): ``true``/``false``/``null``, ``1e12``,
    ``.nan``, ``[a, b]``, ``{period: daily}``, text quoted only when needed (``'5'``); one bounded line unless
    ``bounded`` is False (the caller shortens it). ``json`` spells a value of a JSON line (``NaN``, text in double
    quotes; unbounded). The one helper every "..., got VALUE" and "must be one of ..." message uses (``SpecError``,
    metric lines, choice lists)."""
    if json:
        return _WHOLE_JSON.repr(value)
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
        super().__init__(f"scopes {prefix}*: {held} {'launch' if held == 1 else 'launches'} held, at most {limit} at "
                         "once (rules.max_instances)")


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
