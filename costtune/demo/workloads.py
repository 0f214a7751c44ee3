"""Deterministic workloads for the simulated provider: learning curves with a price tag.

Each is ``workload(params, step, instance_type) -> (metric_value, seconds_for_this_step)``: the
metric (a loss, lower is better) falls with the steps towards an asymptote that depends on the
configuration, and a step takes longer for bigger configurations and less on faster instances.
So a tuner has a real trade-off: the best configurations are not the cheapest to evaluate, and
the fastest instance is not necessarily the cheapest per step.
"""

from __future__ import annotations

import functools
import math
from typing import Any

# How many times faster than an m5.large one step runs; an unknown type counts as 1.0.
INSTANCE_SPEED: dict[str, float] = {
    "m5.large": 1.0,
    "c5.xlarge": 1.8,
    "c5.2xlarge": 3.2,
    "g4dn.xlarge": 4.0,
}

# The Hartmann-6 test function's published constants (global minimum about -3.32237).
_H6_ALPHA = (1.0, 1.2, 3.0, 3.2)
_H6_A = (
    (10.0, 3.0, 17.0, 3.5, 1.7, 8.0),
    (0.05, 10.0, 17.0, 0.1, 8.0, 14.0),
    (3.0, 3.5, 1.7, 10.0, 17.0, 8.0),
    (17.0, 8.0, 0.05, 10.0, 0.1, 14.0),
)
_H6_P = (
    (0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886),
    (0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991),
    (0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650),
    (0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381),
)


def speed(instance_type: str) -> float:
    return INSTANCE_SPEED.get(instance_type, 1.0)


@functools.lru_cache(maxsize=4096)  # a simulated trial asks for its configuration's value at every step
def hartmann6_value(x: tuple[float, ...]) -> float:
    """The Hartmann-6 function on [0, 1]^6."""
    total = 0.0
    for alpha, a_row, p_row in zip(_H6_ALPHA, _H6_A, _H6_P, strict=True):
        total += alpha * math.exp(-sum(a * (xi - p) ** 2 for a, xi, p in zip(a_row, x, p_row, strict=True)))
    return -total


def hartmann6(params: dict[str, Any], step: int, instance_type: str) -> tuple[float, float]:
    """Params ``x1``..``x6`` in [0, 1] (clipped); the loss decays from 1.0 to Hartmann-6(x).

    ``x6`` doubles as a "model size": bigger converges faster per step but each step costs more.
    """
    try:
        x = tuple(min(1.0, max(0.0, float(params[f"x{i}"]))) for i in range(1, 7))
    except KeyError as exc:
        raise ValueError(f"hartmann6 needs params x1..x6 in [0, 1], missing {exc.args[0]!r}") from None
    asymptote = hartmann6_value(x)
    tau = 8.0 - 5.0 * x[5]  # steps to fall by 1/e: 3 to 8
    value = asymptote + (1.0 - asymptote) * math.exp(-(step + 1) / tau)
    seconds = 30.0 * (0.5 + x[5]) / speed(instance_type)
    return value, seconds


def mlp_curve(params: dict[str, Any], step: int, instance_type: str) -> tuple[float, float]:
    """A made-up MLP's validation error per epoch.

    Params (defaults in brackets, so a sweep may tune only some): ``lr`` [1e-3], ``hidden`` [128],
    ``dropout`` [0.1], ``batch_size`` [64]. The best lr is near 3e-3; too high converges fast to a
    worse error. Wider nets reach lower error and GPUs help them most.
    """
    lr = float(params.get("lr", 1e-3))
    hidden = float(params.get("hidden", 128))
    dropout = float(params.get("dropout", 0.1))
    batch = float(params.get("batch_size", 64))
    if lr <= 0 or hidden < 1 or batch < 1 or not 0 <= dropout < 1:
        raise ValueError(
            f"mlp_curve needs lr > 0, hidden >= 1, batch_size >= 1, 0 <= dropout < 1; got {params!r}"
        )
    log_lr_miss = math.log10(lr / 3e-3)
    asymptote = (
        0.04
        + 0.05 * log_lr_miss**2
        + 0.6 / math.sqrt(hidden)
        + 0.08 * (dropout - 0.25) ** 2
        + 0.01 * math.log2(batch / 32.0) ** 2 / 4.0
    )
    rate = min(1.5, 0.15 * (lr / 1e-3) ** 0.5 * (64.0 / batch) ** 0.25)  # epochs^-1
    value = asymptote + (0.9 - asymptote) * math.exp(-rate * (step + 1)) if asymptote < 0.9 else asymptote
    gpu_bonus = 1.0 + (math.log2(hidden / 64.0) if instance_type.startswith("g") and hidden > 64 else 0.0)
    seconds = 20.0 * (hidden / 128.0) * (1.0 + 32.0 / batch) / (speed(instance_type) * gpu_bonus)
    return value, seconds
