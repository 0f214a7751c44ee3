"""Configurations as rows of the unit cube, for the model-based samplers.

Numeric parameters go through their distribution's ``to_unit`` map (so log scales and priors shape the
geometry), unordered choices become one-hot blocks. ``Encoder.encode`` memoises by configuration, so a
long study encodes each trial once per process rather than once per suggestion.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from costtune.errors import CosttuneError
from costtune.samplers.novelty import config_key

if TYPE_CHECKING:
    from costtune.space import SearchSpace

__all__ = ["CONTINUOUS", "ONEHOT", "ORDINAL", "Encoder", "is_real"]

CONTINUOUS, ORDINAL, ONEHOT = "continuous", "ordinal", "onehot"


_MEMO_LIMIT = 200_000  # encoded configurations kept per space


@dataclass(frozen=True)
class _Block:
    name: str
    dist: Any
    kind: str
    start: int
    width: int
    options: tuple[Any, ...] = ()


def is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _plain(v: Any) -> Any:
    """numpy scalars to Python ones, so configs serialise and compare like user input."""
    return v.item() if isinstance(v, np.generic) else v


def _index_of(options: tuple[Any, ...], value: Any) -> int | None:
    loose = None
    for i, o in enumerate(options):
        try:
            equal = bool(o == value)
        except (TypeError, ValueError):
            continue
        if equal:
            if type(o) is type(value):
                return i  # prefer an exact-type match: True == 1 must not pick option 1 over True
            loose = i if loose is None else loose
    return loose


class Encoder:
    """Maps configurations to rows of [0, 1]^dim and back."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.blocks: list[_Block] = []
        col = 0
        for name, dist in space.items():
            options = getattr(dist, "options", None)
            ordered = (
                options is not None
                and getattr(dist, "kind", "") == "values"
                and all(is_real(o) for o in options)
            )
            if options is not None and not ordered:
                self.blocks.append(_Block(name, dist, ONEHOT, col, len(options), tuple(options)))
                col += len(options)
            else:
                kind = ORDINAL if getattr(dist, "is_discrete", False) or ordered else CONTINUOUS
                self.blocks.append(_Block(name, dist, kind, col, 1))
                col += 1
        self.dim = col
        self.continuous_cols = np.array([b.start for b in self.blocks if b.kind == CONTINUOUS], dtype=int)
        self.numeric_cols = np.array([b.start for b in self.blocks if b.kind != ONEHOT], dtype=int)
        self._snap_cache: dict[str, dict[Any, float]] = {}
        self._names = tuple(space.names)
        self._rows: dict[Any, np.ndarray | None] = {}

    def encode(self, params: dict[str, Any]) -> np.ndarray | None:
        """The row of ``params`` (shape ``(dim,)``, read-only); None when the config does not belong to
        this space (e.g. the space was edited mid-study)."""
        try:
            # the type is part of the identity: 1 and 1.0 are equal keys but not always equal members
            key: Any = tuple([(type(v), v) for v in map(params.__getitem__, self._names)])
            hash(key)
        except KeyError:
            return None
        except TypeError:  # an unhashable value (a list choice): its JSON form
            plain = config_key(params, self._names)
            key = None if plain is None else tuple(
                (type(params[n]), v) for n, v in zip(self._names, plain, strict=True))
        if key is None:
            return self._encode(params)
        if key not in self._rows:
            if len(self._rows) >= _MEMO_LIMIT:
                self._rows.clear()
            row = self._encode(params)
            if row is not None:
                row.setflags(write=False)
            self._rows[key] = row
        return self._rows[key]

    def _encode(self, params: dict[str, Any]) -> np.ndarray | None:
        row = np.zeros(self.dim)
        for b in self.blocks:
            if b.name not in params:
                return None
            value = params[b.name]
            try:
                if not b.dist.contains(value):
                    return None
                if b.kind == ONEHOT:
                    idx = _index_of(b.options, value)
                    if idx is None:
                        return None
                    row[b.start + idx] = 1.0
                    continue
                u = float(b.dist.to_unit(value))
            except (TypeError, ValueError, ArithmeticError, CosttuneError):
                return None
            if not math.isfinite(u):
                return None
            row[b.start] = min(max(u, 0.0), 1.0)
        return row

    def random(self, n: int, rng: np.random.Generator) -> np.ndarray:
        x = rng.random((n, self.dim))
        for b in self.blocks:
            if b.kind == ONEHOT:
                x[:, b.start : b.start + b.width] = np.eye(b.width)[rng.integers(b.width, size=n)]
        return self.snap(x)

    def snap(self, x: np.ndarray) -> np.ndarray:
        """Move every row onto a point the space can express, so the model scores what we would run."""
        x = np.array(x, dtype=float)
        x[:, self.numeric_cols] = np.clip(x[:, self.numeric_cols], 0.0, 1.0)
        for b in self.blocks:
            if b.kind == ONEHOT:
                block = x[:, b.start : b.start + b.width]
                x[:, b.start : b.start + b.width] = np.eye(b.width)[np.argmax(block, axis=1)]
            elif b.kind == ORDINAL:
                cache = self._snap_cache.setdefault(b.name, {})
                col = x[:, b.start]
                for i, u in enumerate(col):
                    value = _plain(b.dist.from_unit(float(u)))
                    if value not in cache:
                        cache[value] = float(b.dist.to_unit(value))
                    col[i] = cache[value]
        return x

    def decode(self, row: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
        config: dict[str, Any] = {}
        for b in self.blocks:
            if b.kind == ONEHOT:
                config[b.name] = b.options[int(np.argmax(row[b.start : b.start + b.width]))]
            else:
                config[b.name] = self._from_unit(b.dist, float(row[b.start]), rng)
        return config

    @staticmethod
    def _from_unit(dist: Any, u: float, rng: np.random.Generator) -> Any:
        # Unbounded priors (normal, gamma, ...) map the cube's faces to +-inf: retry just inside.
        for lo in (0.0, 1e-9, 1e-6):
            try:
                value = _plain(dist.from_unit(min(max(u, lo), 1.0 - lo)))
            except (ValueError, ArithmeticError, CosttuneError):
                continue
            if (not isinstance(value, float) or math.isfinite(value)) and dist.contains(value):
                return value
        return _plain(dist.sample(rng))
