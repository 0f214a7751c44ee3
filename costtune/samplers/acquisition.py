"""Log expected improvement, accurate far into the tail where plain EI underflows to 0.

Kept apart from ``gp.py`` so each module stays short; it depends on no GP internals.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

__all__ = ["log_expected_improvement", "log_h"]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_SQRT_HALF_PI = math.sqrt(0.5 * math.pi)


def log_h(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log(phi(z) + z Phi(z)) and its derivative, accurate far into the left tail.

    Plain EI underflows to exactly 0 a few standard deviations from the incumbent, which leaves the
    candidate search with a flat landscape; in log space the ranking survives.
    """
    z = np.asarray(z, dtype=float)
    val = np.empty_like(z)
    dval = np.empty_like(z)
    mid = z > -1.0
    zm = z[mid]
    h = zm * special.ndtr(zm) + np.exp(-0.5 * zm * zm - _LOG_SQRT_2PI)
    val[mid] = np.log(h)
    dval[mid] = special.ndtr(zm) / h
    tail = (z <= -1.0) & (z > -200.0)
    zt = z[tail]
    m = _SQRT_HALF_PI * special.erfcx(-zt / math.sqrt(2.0))  # Phi(z) / phi(z)
    val[tail] = -0.5 * zt * zt - _LOG_SQRT_2PI + np.log1p(zt * m)
    dval[tail] = m / (1.0 + zt * m)
    far = z <= -200.0
    zf = z[far]
    inv2 = 1.0 / (zf * zf)
    # Asymptotic series: 1 + z m(z) ~ z^-2 (1 - 3 z^-2 + 15 z^-4), m(z) ~ |z|^-1 (1 - z^-2 + 3 z^-4)
    val[far] = -0.5 * zf * zf - _LOG_SQRT_2PI + np.log(inv2) + np.log1p(-3.0 * inv2 + 15.0 * inv2 * inv2)
    dval[far] = -zf * (1.0 - inv2 + 3.0 * inv2 * inv2) / (1.0 - 3.0 * inv2 + 15.0 * inv2 * inv2)
    return val, dval


def log_expected_improvement(
    mean: np.ndarray, std: np.ndarray, best: float, xi: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log EI for minimisation, with its partial derivatives w.r.t. ``mean`` and ``std``."""
    std = np.maximum(std, 1e-12)
    z = (best - xi - mean) / std
    lh, dlh = log_h(z)
    return np.log(std) + lh, -dlh / std, 1.0 / std - dlh * z / std
