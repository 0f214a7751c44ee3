"""A recorded scikit-learn sweep replayed as a benchmark workload: real learning curves, real seconds.

``benchmarks/record_sklearn.py`` trained an ``MLPClassifier`` on the digits set for every
configuration of a 324-point grid, one epoch per step, and stored each epoch's validation log loss
and CPU seconds in ``data/sklearn_mlp_digits.json.gz`` (~100 kB). ``sklearn_mlp(params, step,
instance_type) -> (loss, seconds)`` looks the answer up; the space is exactly the recorded grid
(categoricals and an int), so every suggestion has one. The table is read on first use, not on import.

Seconds: the recorded CPU seconds of that epoch x ``SCALE`` (the digits set is tiny; x``SCALE``
stands for a data set that many times bigger, so an epoch takes seconds to minutes as in real use)
divided by the instance type's speed: scikit-learn's MLP uses the CPU only, so a GPU type runs it
about as fast as its vCPUs (a pricier way to run it) and a compute-optimised type is fastest.
"""

from __future__ import annotations

import functools
import gzip
import json
from importlib import resources
from typing import Any

DATA = "sklearn_mlp_digits.json.gz"
# The recorded grid (benchmarks/record_sklearn.py records exactly this; a test checks the file matches).
GRID: dict[str, list[float]] = {
    "hidden": [16, 64, 256],
    "lr": [1e-4, 1e-3, 1e-2, 1e-1],
    "alpha": [1e-5, 1e-3, 1e-1],
    "batch": [16, 64, 256],
    "layers": [1, 2, 3],
}
STEPS = 20
SCALE = 600.0
# CPU speed relative to an m5.large (one thread of work; newer, faster cores on c5).
SPEED: dict[str, float] = {"m5.large": 1.0, "c5.xlarge": 1.6, "g4dn.xlarge": 1.1}
INSTANCES: dict[str, tuple[str, ...]] = {"sklearn_mlp": ("m5.large", "c5.xlarge", "g4dn.xlarge")}


@functools.cache
def table() -> dict[str, Any]:
    """The recorded sweep: ``{"grid", "order", "steps", "meta", "runs"}`` (see record_sklearn.py)."""
    with resources.files("costtune.demo").joinpath("data", DATA).open("rb") as raw, gzip.open(raw, "rt") as f:
        return json.load(f)


@functools.cache
def _index() -> dict[tuple[float, ...], tuple[tuple[float, ...], tuple[float, ...]]]:
    data = table()
    order = data["order"]
    return {
        tuple(float(run["params"][k]) for k in order): (tuple(run["loss"]), tuple(run["seconds"]))
        for run in data["runs"]
    }


def _space(grid: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """The costtune ``space:`` of a grid: ``layers`` (consecutive ints) an int, the rest categoricals."""
    out: dict[str, dict[str, Any]] = {}
    for name, values in grid.items():
        if name == "layers":
            out[name] = {"type": "int", "low": min(values), "high": max(values)}
        else:
            out[name] = {"type": "categorical", "choices": list(values)}
    return out


def sklearn_mlp(params: dict[str, Any], step: int, instance_type: str) -> tuple[float, float]:
    """The recorded validation log loss after epoch ``step + 1`` and that epoch's scaled seconds.

    Raises ValueError naming the params when they are not a point of the recorded grid, or when
    ``step`` is outside ``0 .. steps - 1``.
    """
    data = table()
    order = data["order"]
    try:
        key = tuple(float(params[k]) for k in order)
    except KeyError as err:
        raise ValueError(f"sklearn_mlp needs params {order}; got {sorted(params)} (missing {err})") from None
    except (TypeError, ValueError):
        raise ValueError(f"sklearn_mlp: params must be numbers of the recorded grid; got {params!r}") from None
    found = _index().get(key)
    if found is None:
        raise ValueError(f"sklearn_mlp: {params!r} is not in the recorded grid {data['grid']}")
    if not 0 <= step < data["steps"]:
        raise ValueError(f"sklearn_mlp: step must be in 0..{data['steps'] - 1}, got {step}")
    losses, seconds = found
    return losses[step], max(seconds[step], 1e-4) * SCALE / SPEED.get(instance_type, 1.0)


WORKLOADS = {"sklearn_mlp": sklearn_mlp}
SPACES: dict[str, dict[str, dict[str, Any]]] = {"sklearn_mlp": _space(GRID)}
MAX_STEPS: dict[str, int] = {"sklearn_mlp": STEPS}
# About the 2nd percentile of the grid's final losses (tests/test_bench_workloads.py).
TARGETS: dict[str, float] = {"sklearn_mlp": 0.0835}
