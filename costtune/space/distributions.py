"""Parameter distributions: parsing, sampling, unit-interval maps and grids.

Each distribution is a frozen dataclass so spaces can be compared, hashed and stored. Checks live in
``parse_distribution`` rather than ``__post_init__`` because only the parser knows the field path a
message must name; objects built directly are re-parsed (and so checked) when they enter a space.

The classes live in ``continuous`` (real-valued) and ``discrete`` (Int, Categorical, Values), the shared
field readers and base class in ``_base``. This module ties them together and stays the import path:
it re-exports every name it used to define, private helpers included.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeAlias

import numpy as np

from costtune.errors import SpecError
from costtune.space._base import _EPS as _EPS
from costtune.space._base import _NEEDS_POINTS as _NEEDS_POINTS
from costtune.space._base import _REQUIRED as _REQUIRED
from costtune.space._base import _SCALAR_MSG as _SCALAR_MSG
from costtune.space._base import _as_int as _as_int
from costtune.space._base import _Base, _options, _points
from costtune.space._base import _fmt as _fmt
from costtune.space._base import _integer as _integer
from costtune.space._base import _is_real as _is_real
from costtune.space._base import _literal as _literal
from costtune.space._base import _number as _number
from costtune.space._base import _order as _order
from costtune.space._base import _positive as _positive
from costtune.space._base import _same as _same
from costtune.space._base import _unit as _unit
from costtune.space.continuous import Beta, Exponential, Gamma, LogNormal, LogUniform, Normal, Uniform
from costtune.space.continuous import _Continuous as _Continuous
from costtune.space.continuous import _scipy as _scipy
from costtune.space.continuous import _ScipyBased as _ScipyBased
from costtune.space.discrete import Categorical, Int, Values
from costtune.space.discrete import _Choice as _Choice
from costtune.space.discrete import _pick as _pick

Distribution: TypeAlias = (
    Uniform | LogUniform | Normal | LogNormal | Exponential | Gamma | Beta | Int | Categorical | Values
)
_CLASSES = (Uniform, LogUniform, Normal, LogNormal, Exponential, Gamma, Beta, Int, Categorical, Values)
KINDS: dict[str, type[Any]] = {c.kind: c for c in _CLASSES}


def parse_distribution(spec: Any, path: str) -> Distribution:
    """Turn the YAML/JSON form (or a distribution object, re-checked) into a validated distribution."""
    if isinstance(spec, _Base):
        spec = spec.to_dict()
    if isinstance(spec, Mapping):
        if "type" in spec:
            kind = spec["type"]
            if not isinstance(kind, str) or kind not in KINDS:
                allowed_kinds = ", ".join(KINDS)
                raise SpecError(f"{path}.type", f"unknown distribution type; allowed: {allowed_kinds}", kind)
        elif "values" in spec:
            kind = "values"
        else:
            raise SpecError(f"{path}.type", "missing; give a distribution type or a values list")
        cls = KINDS[kind]
        allowed = (*cls._fields, "points") if cls.takes_points else cls._fields
        for key in spec:
            if key == "points" and not cls.takes_points:
                every = "choice" if kind == "categorical" else "value"
                raise SpecError(f"{path}.points", f"does not apply to {kind}: a point count is for continuous and "
                                f"int distributions (a grid takes every {every}); remove it", spec[key])
            if key != "type" and key not in allowed:
                raise SpecError(f"{path}.{key}", f"unknown field for {kind}; allowed: {', '.join(allowed)}")
        points = spec.get("points")
        dist = cls._parse(spec, path, None if points is None else _points(points, f"{path}.points"))
        dist._check_representable(path)
        return dist
    if isinstance(spec, (list, tuple)):
        return Values(_options(spec, path))
    if isinstance(spec, (str, bool, int, float, np.generic)):
        if isinstance(spec, float) and not math.isfinite(spec):
            raise SpecError(path, "must be finite", spec)
        return Values(_options([spec], path))
    raise SpecError(path, "must be a mapping with a type, a list of values or a single value", spec)
