"""A workload whose optimum drifts a little each night, for scheduled sweeps on the simulated cloud.

``costtune.demo.drift:night_N`` (any N >= 1) is Hartmann-6 (see ``workloads.hartmann6``) with every
coordinate shifted by ``DRIFT * (N - 1)``: night 1 is the plain function, and each night's optimum
sits ``DRIFT`` further along every axis with the same optimal value (about -3.32), the way
yesterday's best model is a good but not perfect start on today's data. Point a schedule's sweep
at night 2 with ``costtune schedule update NAME --sweep FILE`` (its ``resources.simulation.workload``).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from typing import Any

from costtune.demo.workloads import hartmann6_value

DRIFT = 0.02
_NIGHT = re.compile(r"^night_([1-9][0-9]{0,3})$")


def drifted(night: int) -> Callable[[dict[str, Any], int, str], tuple[float, float]]:
    """The workload of ``night`` (1, 2, ...): ``(params, step, instance_type) -> (loss, seconds)``."""
    shift = DRIFT * (night - 1)

    def workload(params: dict[str, Any], step: int, instance_type: str) -> tuple[float, float]:
        from costtune.demo.workloads import speed

        x = tuple(min(1.0, max(0.0, float(params[f"x{i}"]) - shift)) for i in range(1, 7))
        asymptote = hartmann6_value(x)
        tau = 8.0 - 5.0 * float(params["x6"])
        value = asymptote + (1.0 - asymptote) * math.exp(-(step + 1) / tau)
        return value, 30.0 * (0.5 + float(params["x6"])) / speed(instance_type)

    workload.__name__ = f"night_{night}"
    return workload


@functools.cache
def _night(n: int) -> Callable[[dict[str, Any], int, str], tuple[float, float]]:
    return drifted(n)


def __getattr__(name: str) -> Any:
    """``night_N`` attributes, so a sweep file can name ``costtune.demo.drift:night_3``."""
    match = _NIGHT.match(name)
    if match is None:
        raise AttributeError(name)
    return _night(int(match.group(1)))
