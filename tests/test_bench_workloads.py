"""The benchmark workloads: deterministic, finite, priced by size and instance, with a reachable target."""

from __future__ import annotations

import math

import numpy as np
import pytest

from costtune.demo.bench_workloads import MAX_STEPS, SPACES, TARGETS, WORKLOADS, mlp_tabular, xgb_like
from costtune.space import SearchSpace

INSTANCES = ("m5.large", "c5.xlarge", "g4dn.xlarge")


def _configs(workload: str, n: int, seed: int = 0) -> list[dict]:
    space = SearchSpace.from_dict(SPACES[workload])
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def _seconds(fn, params: dict, instance: str, steps: int) -> float:
    return sum(fn(params, k, instance)[1] for k in range(steps))


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_deterministic(workload: str) -> None:
    fn = WORKLOADS[workload]
    for params in _configs(workload, 5):
        for step in (0, 3, MAX_STEPS[workload] - 1):
            assert fn(dict(params), step, "c5.xlarge") == fn(dict(params), step, "c5.xlarge")


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_finite_outputs_over_random_params(workload: str) -> None:
    fn = WORKLOADS[workload]
    for params in _configs(workload, 200, seed=1):
        for instance in (*INSTANCES, "unknown.type"):
            for step in (0, MAX_STEPS[workload] // 2, MAX_STEPS[workload] - 1):
                loss, seconds = fn(params, step, instance)
                assert math.isfinite(loss) and loss > 0
                assert math.isfinite(seconds) and seconds > 0


def test_mlp_cost_grows_with_width_on_m5() -> None:
    base = {"lr": 2e-3, "layers": 2, "batch": 64}
    secs = [_seconds(mlp_tabular, {**base, "width": w}, "m5.large", 5) for w in (16, 64, 256, 1024)]
    assert secs == sorted(secs) and secs[-1] > 20 * secs[0]


def test_gpu_pays_off_for_wide_nets_only() -> None:
    def speedup(width: int, layers: int) -> float:
        params = {"lr": 2e-3, "width": width, "layers": layers, "batch": 64}
        return mlp_tabular(params, 0, "m5.large")[1] / mlp_tabular(params, 0, "g4dn.xlarge")[1]

    assert speedup(1024, 3) > 10
    assert speedup(16, 1) < 2
    wide = {"lr": 2e-3, "width": 1024, "layers": 3, "batch": 64}
    assert mlp_tabular(wide, 0, "g4dn.xlarge")[1] < mlp_tabular(wide, 0, "c5.xlarge")[1] < mlp_tabular(
        wide, 0, "m5.large"
    )[1]


def test_xgb_rounds_cost_grows_with_depth_and_deep_fast_trees_overfit() -> None:
    base = {"eta": 0.3, "subsample": 0.7, "colsample": 0.8}
    secs = [xgb_like({**base, "depth": d}, 0, "m5.large")[1] for d in (2, 6, 12)]
    assert secs == sorted(secs)
    curve = [xgb_like({**base, "depth": 11}, k, "m5.large")[0] for k in range(MAX_STEPS["xgb_like"])]
    assert curve[-1] > min(curve) + 0.05  # the loss turns back up


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_target_reachable_but_rare(workload: str) -> None:
    fn, last = WORKLOADS[workload], MAX_STEPS[workload] - 1
    finals = [fn(p, last, "m5.large")[0] for p in _configs(workload, 2000, seed=2)]
    share = sum(v <= TARGETS[workload] for v in finals) / len(finals)
    assert 0.005 < share < 0.1
