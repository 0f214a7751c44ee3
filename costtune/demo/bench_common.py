"""Helpers shared by the benchmark workloads (``bench_workloads``, ``bench_workloads2``, ``bench_sklearn``)."""

from __future__ import annotations

import hashlib
import math
import struct
from typing import Any


def jitter(key: tuple[float, ...], step: int, amplitude: float) -> float:
    """A deterministic wiggle in [-amplitude, amplitude]: curves are not perfectly smooth in real life."""
    digest = hashlib.blake2b(struct.pack(f"<{len(key)}di", *key, step), digest_size=8).digest()
    return amplitude * (2.0 * int.from_bytes(digest, "little") / 2.0**64 - 1.0)


def need(params: dict[str, Any], name: str, workload: str) -> float:
    """``params[name]`` as a finite float; ValueError naming the workload and the param otherwise."""
    try:
        value = float(params[name])
    except KeyError:
        raise ValueError(f"{workload} needs param {name!r}; got {sorted(params)}") from None
    if not math.isfinite(value):
        raise ValueError(f"{workload}: param {name!r} must be finite, got {value!r}")
    return value
