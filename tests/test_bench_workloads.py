"""The benchmark workloads: deterministic, finite, priced by size and instance, with a reachable target."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from costtune.demo import bench_sklearn
from costtune.demo.bench_workloads import (
    INSTANCES,
    MAX_STEPS,
    SPACES,
    TARGETS,
    WORKLOADS,
    cnn_vision,
    finetune_startup,
    mlp_tabular,
    sklearn_mlp,
    xgb_like,
)
from costtune.prices.catalog import PriceTable
from costtune.space import SearchSpace


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
        for instance in (*INSTANCES[workload], "unknown.type"):
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


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_every_searched_instance_type_has_a_bundled_spot_price(workload: str) -> None:
    table = PriceTable.bundled()
    for instance in INSTANCES[workload]:
        assert table.rate("aws", "us-east-1", instance, "spot").usd_per_hour_micros > 0


def _cnn(width: int, res: int, batch: int = 64, lr: float = 0.04) -> dict:
    return {"width": width, "resolution": res, "batch": batch, "lr": lr}


def test_cnn_width_and_resolution_buy_quality_with_seconds() -> None:
    last = MAX_STEPS["cnn_vision"] - 1
    sizes = [(8, 32), (32, 64), (64, 128), (128, 192)]
    losses = [cnn_vision(_cnn(w, r), last, "m5.large")[0] for w, r in sizes]
    secs = [cnn_vision(_cnn(w, r), 0, "m5.large")[1] for w, r in sizes]
    assert losses == sorted(losses, reverse=True) and losses[0] - losses[-1] > 0.3
    assert secs == sorted(secs) and secs[-1] > 100 * secs[0]


def test_cnn_gpu_pays_only_for_big_nets_and_r5_only_for_big_batches() -> None:
    def speedup(params: dict, fast: str, slow: str) -> float:
        return cnn_vision(params, 0, slow)[1] / cnn_vision(params, 0, fast)[1]

    assert speedup(_cnn(128, 192), "g4dn.xlarge", "m5.large") > 10
    assert speedup(_cnn(8, 32), "g4dn.xlarge", "m5.large") < 2
    assert speedup(_cnn(128, 192), "g5.xlarge", "g4dn.xlarge") > 1.5
    # r5.xlarge (32 GiB) is slower than c5.xlarge until the batch's working set overflows 8 GiB
    assert speedup(_cnn(64, 128, batch=32), "r5.xlarge", "c5.xlarge") < 1
    assert speedup(_cnn(64, 192, batch=512), "r5.xlarge", "c5.xlarge") > 1.5


def test_finetune_start_up_is_minutes_and_depends_on_the_instance() -> None:
    params = {"lr": 1e-3, "hidden": 512, "dropout": 0.3, "weight_decay": 1e-3}
    first = {i: finetune_startup(params, 0, i)[1] for i in INSTANCES["finetune_startup"]}
    later = {i: finetune_startup(params, 1, i)[1] for i in INSTANCES["finetune_startup"]}
    assert all(120 <= first[i] - later[i] <= 300 for i in first)
    assert len({round(first[i] - later[i]) for i in first}) == len(first)
    total_epochs = sum(finetune_startup(params, k, "m5.large")[1] for k in range(1, MAX_STEPS["finetune_startup"]))
    assert first["m5.large"] > 0.5 * total_epochs  # start-up is a large share of a whole trial


def test_finetune_optimum_is_interior_on_every_axis() -> None:
    last = MAX_STEPS["finetune_startup"] - 1
    centre = {"lr": 1e-3, "hidden": 512, "dropout": 0.3, "weight_decay": 1e-3}
    best = finetune_startup(centre, last, "m5.large")[0]
    for name, dist in SPACES["finetune_startup"].items():
        for bound in (dist["low"], dist["high"]):
            assert finetune_startup({**centre, name: bound}, last, "m5.large")[0] > best + 0.01, (name, bound)


def test_sklearn_table_is_the_grid_and_every_point_answers() -> None:
    data = bench_sklearn.table()
    assert data["grid"] == bench_sklearn.GRID and data["steps"] == MAX_STEPS["sklearn_mlp"]
    size = math.prod(len(v) for v in bench_sklearn.GRID.values())
    assert len(data["runs"]) == size
    for run in data["runs"]:
        assert len(run["loss"]) == len(run["seconds"]) == data["steps"]
    for params in _configs("sklearn_mlp", 300, seed=3):  # the space samples only recorded points
        assert sklearn_mlp(params, 0, "m5.large")[0] > 0
    path = Path(bench_sklearn.__file__).parent / "data" / bench_sklearn.DATA
    assert path.stat().st_size < 1_000_000


def test_sklearn_replay_is_the_recording_scaled_by_instance() -> None:
    run = bench_sklearn.table()["runs"][7]
    loss, seconds = sklearn_mlp(run["params"], 3, "m5.large")
    assert loss == run["loss"][3]
    assert seconds == pytest.approx(run["seconds"][3] * bench_sklearn.SCALE)
    # scikit-learn's MLP runs on the CPUs only: the c5's are fastest, the GPU type's barely beat an m5's
    assert sklearn_mlp(run["params"], 3, "c5.xlarge")[1] < sklearn_mlp(run["params"], 3, "g4dn.xlarge")[1] < seconds
    finals = [r["loss"][-1] for r in bench_sklearn.table()["runs"]]
    assert min(finals) < 0.5 * float(np.median(finals))  # configurations matter


def test_sklearn_refuses_a_point_off_the_grid() -> None:
    params = {**bench_sklearn.table()["runs"][0]["params"], "hidden": 17}
    with pytest.raises(ValueError, match="not in the recorded grid"):
        sklearn_mlp(params, 0, "m5.large")
    with pytest.raises(ValueError, match="step"):
        sklearn_mlp(bench_sklearn.table()["runs"][0]["params"], MAX_STEPS["sklearn_mlp"], "m5.large")
