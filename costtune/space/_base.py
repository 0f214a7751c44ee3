"""What every distribution shares: field readers, value checks and the common base class.

The readers take the raw YAML/JSON mapping plus the field path, so each ``SpecError`` names the
exact field at fault. Nothing here knows the concrete distribution classes.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import MISSING, fields
from typing import Any, ClassVar

import numpy as np

from costtune.errors import SpecError
from costtune.limits import INT64_MAX, INT64_MIN, MAX_GRID_POINTS
from costtune.ostext import unfit_for_os
from costtune.yamlfile import core_number

_EPS = 1e-9
_REQUIRED: Any = object()
_NEEDS_POINTS = "a grid needs explicit values or a point count (points: N)"
_SCALAR_MSG = "must be a string, number, boolean or null"


def _fmt(x: float) -> str:
    """Bounds in messages read as the user wrote them: ``16`` rather than ``16.0``."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(x)


def _is_real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def _literal(text: str) -> Any:
    """Read a CLI-style scalar: 'true' -> True, '64' -> 64, '1e-3' -> 0.001, anything else stays text."""
    t = text.strip()
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none", "~"):
        return None
    number = core_number(t)  # YAML 1.2 core, like a sweep file: '0o17' is 15, '1_000' stays text
    return text if number is None else number


def _as_int(raw: Any) -> int | None:
    """An integer, an integral float or such a string as int; None if it is none of these."""
    value = _literal(raw) if isinstance(raw, str) else raw
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _unit(u: Any) -> float:
    if not _is_real(u) or math.isnan(float(u)):
        raise SpecError("u", "must be a number in [0, 1]", u)
    return min(max(float(u), 0.0), 1.0)


# Numbers in a sweep file are numbers (YAML 1.2 core reads ``1e-5`` as one): a quoted ``"0"`` is text, refused
# by every numeric field of a distribution as ``budget.trial_seconds`` or ``scheduler.eta`` refuse it.
def _quoted(raw: Any) -> str:
    """The hint for a number given as text (``"0"``): empty for anything else (``'abc'`` is just not a number)."""
    if isinstance(raw, str) and core_number(raw.strip()) is not None:
        return " (not quoted: numbers in a sweep file are numbers)"
    return ""


def _number(spec: Mapping, key: str, path: str, kind: str, default: Any = _REQUIRED) -> Any:
    """A finite float field: an int or float (never a bool, nor text such as ``"0"``)."""
    where = f"{path}.{key}"
    if key not in spec or (spec[key] is None and default is None):
        if default is _REQUIRED:
            raise SpecError(where, f"missing required field for {kind}")
        return default
    raw = spec[key]
    value = raw.item() if isinstance(raw, np.generic) else raw
    if not _is_real(value):
        raise SpecError(where, f"must be a number{_quoted(raw)}", raw)
    if not math.isfinite(float(value)):
        raise SpecError(where, "must be finite", raw)
    return float(value)


def _positive(spec: Mapping, key: str, path: str, kind: str) -> float:
    value = _number(spec, key, path, kind)
    if value <= 0:
        raise SpecError(f"{path}.{key}", f"must be > 0 for {kind}", spec[key])
    return value


def _integer(spec: Mapping, key: str, path: str, kind: str, default: Any = _REQUIRED) -> int:
    if key not in spec:
        if default is _REQUIRED:
            raise SpecError(f"{path}.{key}", f"missing required field for {kind}")
        return default
    value = None if isinstance(spec[key], str) else _as_int(spec[key])
    if value is None:
        raise SpecError(f"{path}.{key}", f"must be an integer{_quoted(spec[key])}", spec[key])
    if not INT64_MIN <= value <= INT64_MAX:
        raise SpecError(f"{path}.{key}", "must be a 64-bit integer (between -2**63 and 2**63 - 1)", spec[key])
    return value


def _order(low: float, high: float, spec: Mapping, path: str) -> None:
    if high <= low:
        raise SpecError(f"{path}.high", f"must be > low ({_fmt(low)})", spec.get("high", high))


def _points(raw: Any, where: str) -> int:
    """A grid point count: an integer in [1, MAX_GRID_POINTS]."""
    k = None if isinstance(raw, str) else _as_int(raw)
    if k is None or k < 1:
        raise SpecError(where, f"must be an integer >= 1{_quoted(raw)}", raw)
    if k > MAX_GRID_POINTS:
        raise SpecError(where, f"must be at most {MAX_GRID_POINTS} (grid points per parameter)", raw)
    return k


def _same(a: Any, b: Any) -> bool:
    """Type-aware equality, so ``True`` never matches the choice ``1`` nor ``'1'`` the choice ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if a is None or b is None:
        return a is b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return _is_real(a) and _is_real(b) and a == b


def _options(raw: Any, where: str) -> tuple:
    """A non-empty list of unique scalars, with numpy scalars made plain."""
    if not isinstance(raw, (list, tuple)) or not raw:
        raise SpecError(where, "must be a non-empty list", raw)
    out: list[Any] = []
    for i, item in enumerate(raw):
        value = item.item() if isinstance(item, np.generic) else item
        if value is not None and not isinstance(value, (str, bool, int, float)):
            raise SpecError(f"{where}[{i}]", _SCALAR_MSG, item)
        if isinstance(value, float) and not math.isfinite(value):
            raise SpecError(f"{where}[{i}]", "must be finite", item)
        if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
            raise SpecError(f"{where}[{i}]", "must be a 64-bit integer (between -2**63 and 2**63 - 1)", item)
        if isinstance(value, str) and unfit_for_os(value):  # a value reaches the trial's argv and environment
            raise SpecError(f"{where}[{i}]", str(unfit_for_os(value)), item)
        for j, seen in enumerate(out):
            if _same(seen, value):
                raise SpecError(f"{where}[{i}]", f"duplicates {where.rsplit('.', 1)[-1]}[{j}]", item)
        out.append(value)
    return tuple(out)


class _Base:
    """Behaviour shared by every distribution (the concrete classes are dataclasses)."""

    kind: ClassVar[str]
    _fields: ClassVar[tuple[str, ...]]
    takes_points: ClassVar[bool] = True  # a grid point count applies (continuous and int; not a list of choices)
    points: int | None

    @property
    def is_numeric(self) -> bool:
        return True

    @property
    def is_discrete(self) -> bool:
        return False

    def to_dict(self) -> dict[str, Any]:
        """The YAML form; fields at their default are left out to keep sweep files short."""
        out: dict[str, Any] = {"type": self.kind}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None or (f.default is not MISSING and type(value) is type(f.default)
                                 and value == f.default):
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def _check_representable(self, path: str) -> None:
        """Raise ``SpecError`` naming ``path`` when samples, unit maps or grid points could leave 64-bit
        numbers; distributions whose fields are checked on parsing need nothing more."""

    def _grid_points(self, points: int | None, path: str) -> int:
        n = self.points if points is None else points
        if n is None:
            raise SpecError(path, _NEEDS_POINTS)
        return _points(n, f"{path}.points" if path else "points")
