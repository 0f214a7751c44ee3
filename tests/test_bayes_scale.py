"""The Bayesian sampler at scale and with searched resources: bounded training sets, hyperparameters
refitted on a schedule (memoised without changing a proposal), the encode memo, and the cost-aware
choice of instance type per configuration."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from costtune.history import FrozenTrial, History, Mode, TrialState
from costtune.samplers.bayes import BayesSampler
from costtune.samplers.encoding import Encoder
from costtune.samplers.resource import RESOURCE_PARAMS, resource_split
from costtune.samplers.surrogate import refit_point, select
from costtune.space import Categorical, Int, SearchSpace, Uniform
from costtune.spec.resources import INSTANCE_PARAM, MARKET_PARAM

USD = 1_000_000
RES = SearchSpace({"x": Uniform(0, 1), "y": Uniform(0, 1), "instance_type": Categorical(("cpu", "gpu"))})


def test_resource_names_are_the_ones_the_sweep_file_gives() -> None:
    assert RESOURCE_PARAMS == (INSTANCE_PARAM, MARKET_PARAM)


def test_refit_points_move_every_trial_early_and_in_steps_later() -> None:
    assert [refit_point(n) for n in (1, 31, 32)] == [1, 31, 32]
    assert [refit_point(n) for n in (33, 34, 35)] == [32, 34, 34]
    assert refit_point(1000) == 992 and refit_point(1023) == 992  # a step of 32 at 1,000
    assert all(0 <= n - refit_point(n) < max(2, n // 16 + 1) for n in range(1, 5000))


def test_select_keeps_the_best_the_most_recent_and_a_spread_of_the_rest() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((500, 3))
    y = rng.random(500)
    keep = select(x, y, 90)
    assert len(keep) == 90 and len(set(keep.tolist())) == 90 and list(keep) == sorted(keep)
    assert set(np.argsort(y)[:30].tolist()) <= set(keep.tolist())
    assert set(range(470, 500)) <= set(keep.tolist())
    rest = np.setdiff1d(np.arange(500), keep)
    # the spread third covers the cube: no point left out is far from every kept point
    d = np.sqrt(((x[rest][:, None, :] - x[keep][None, :, :]) ** 2).sum(-1)).min(1)
    assert d.max() < 0.35
    assert list(select(x[:50], y[:50], 90)) == list(range(50))


def _history(n: int, seed: int = 0) -> History:
    rng = np.random.default_rng(seed)
    trials = []
    for i in range(n):
        c = {"x": float(rng.random()), "y": float(rng.random())}
        trials.append(FrozenTrial(i, TrialState.COMPLETE, c, (c["x"] - 0.3) ** 2 + math.sin(5 * c["y"])))
    return History("loss", Mode.MIN, tuple(trials))


def test_a_long_lived_sampler_proposes_what_a_fresh_one_does() -> None:
    """The hyperparameter memo and encode memo save time only: a controller that has suggested all
    along and one restarted at trial n propose the same configuration."""
    space = SearchSpace({"x": Uniform(0, 1), "y": Uniform(0, 1)})
    full = _history(44)
    kw: dict[str, Any] = {"n_candidates": 300, "n_polish": 1, "max_observations": 30, "hyper_cap": 20}
    long_lived = BayesSampler(**kw)
    for n in range(38, 45):
        h = History("loss", Mode.MIN, full.trials[:n])
        proposal = long_lived.suggest(space, h, np.random.default_rng(n))
        assert proposal == BayesSampler(**kw).suggest(space, h, np.random.default_rng(n))
    # 38..44 observations share refit points 38, 40, 42, 44: four fits, not seven
    assert long_lived.surrogate.fits == 4


def test_encode_memo_tells_equal_values_of_different_types_apart() -> None:
    enc = Encoder(SearchSpace({"n": Int(1, 3), "flag": Categorical((True, 1, "one"))}))
    one = enc.encode({"n": 1, "flag": 1})
    true = enc.encode({"n": 1, "flag": True})
    assert one is not None and true is not None and not np.array_equal(one, true)
    assert enc.encode({"n": 1, "flag": 1}) is one  # memoised
    assert enc.encode({"n": 1}) is None and enc.encode({"n": 9, "flag": 1}) is None


def _resource_history(n: int, cost: Any, seed: int, budget: int | None = None) -> History:
    """Loss depends on x and y only; the bill on the instance (and, through ``cost``, on x)."""
    rng = np.random.default_rng(seed)
    trials = []
    for i in range(n):
        c = RES.sample(rng)
        trials.append(FrozenTrial(i, TrialState.COMPLETE, c, (c["x"] - 0.7) ** 2 + (c["y"] - 0.5) ** 2,
                                  cost_micros=cost(c)))
    spent = sum(t.cost_micros for t in trials)
    return History("loss", Mode.MIN, tuple(trials), budget if budget is None else spent + budget)


def pricier_no_faster(c: dict[str, Any]) -> int:
    return int(USD * (1 + c["x"]) * (5 if c["instance_type"] == "gpu" else 1))


def gpu_pays_for_big_x(c: dict[str, Any]) -> int:
    """The GPU costs 5x per hour but runs large-x configurations 20x faster."""
    seconds = 10 + 1000 * c["x"] ** 2
    if c["instance_type"] == "gpu":
        return int(USD * 5 * (10 + 1000 * c["x"] ** 2 / 20) / 100)
    return int(USD * seconds / 100)


@pytest.mark.parametrize("left", [None, 1], ids=["budget-left", "weight-cooled-to-0"])
def test_an_instance_5x_pricier_and_no_faster_stops_being_chosen(left: int | None) -> None:
    sampler = BayesSampler(n_startup=5, n_candidates=300, cost_aware=True)
    picks = [sampler.suggest(RES, _resource_history(12, pricier_no_faster, seed, left), np.random.default_rng(seed))
             for seed in range(8)]
    assert all(RES.contains(p) for p in picks)
    assert [p["instance_type"] for p in picks] == ["cpu"] * 8


def test_the_instance_is_chosen_per_configuration() -> None:
    sampler = BayesSampler(n_startup=5, n_candidates=300, cost_aware=True)
    history = _resource_history(30, gpu_pays_for_big_x, seed=3)
    split = resource_split(RES)
    assert split is not None
    inner, resources = split
    assert list(inner) == ["x", "y"] and resources == {"instance_type": ("cpu", "gpu")}
    sampler.suggest(RES, history, np.random.default_rng(0))
    from costtune.samplers.cost_model import fit_cost_penalty
    from costtune.samplers.resource import ResourceCost

    model = fit_cost_penalty(history, sampler.encoder(RES).encode, 1.0, sampler.cost_surrogate)
    assert model is not None
    cost = ResourceCost(sampler.encoder(RES), sampler.encoder(inner), model, resources)
    assert cost.choose(np.array([0.05, 0.5]))["instance_type"] == "cpu"
    assert cost.choose(np.array([0.95, 0.5]))["instance_type"] == "gpu"


def test_start_up_trials_are_random_until_the_cost_is_known() -> None:
    sampler = BayesSampler(n_startup=10, cost_aware=True)
    empty = History("loss", Mode.MIN, ())
    kinds = {sampler.suggest(RES, empty, np.random.default_rng(s))["instance_type"] for s in range(12)}
    assert kinds == {"cpu", "gpu"}
    # four priced trials, two on each type: start-up configurations are still random, the instance is not
    rng = np.random.default_rng(1)
    configs = [{"x": float(rng.random()), "y": float(rng.random()), "instance_type": kind}
               for kind in ("cpu", "gpu", "cpu", "gpu")]
    known = History("loss", Mode.MIN, tuple(FrozenTrial(i, TrialState.COMPLETE, c, c["x"],
                                                        cost_micros=pricier_no_faster(c))
                                            for i, c in enumerate(configs)))
    picks = [sampler.suggest(RES, known, np.random.default_rng(s)) for s in range(6)]
    assert {p["instance_type"] for p in picks} == {"cpu"}
    assert len({p["x"] for p in picks}) == 6


def test_running_trials_teach_the_cost_model_before_any_trial_finishes() -> None:
    """Start-up $0.50 then $0.10 a step on cpu; 5x both on gpu; full trials run 20 steps."""
    def billed(kind: str, steps: int) -> int:
        return int(USD * (0.5 + 0.1 * steps) * (5 if kind == "gpu" else 1))

    rng = np.random.default_rng(4)
    trials = [FrozenTrial(i, TrialState.RUNNING, {"x": float(rng.random()), "y": float(rng.random()),
                                                   "instance_type": kind},
                          cost_micros=billed(kind, steps), last_step=steps - 1)
              for i, (kind, steps) in enumerate([("cpu", 2), ("gpu", 3), ("cpu", 7), ("gpu", 9), ("cpu", 12)])]
    trials.append(FrozenTrial(5, TrialState.COMPLETE, {"x": 0.5, "y": 0.5, "instance_type": "cpu"}, 1.0,
                              cost_micros=billed("cpu", 20), last_step=19))
    history = History("loss", Mode.MIN, tuple(trials))
    from costtune.samplers.cost_model import cost_data

    sampler = BayesSampler(n_startup=10, cost_aware=True)
    rows, log_cost, n_finished = cost_data(history, sampler.encoder(RES).encode)
    assert n_finished == 1 and len(rows) == 6
    # every running trial is projected to the full 20-step bill of its instance, start-up counted once
    expected = [billed(t.params["instance_type"], 20) / USD for t in trials]
    assert np.allclose(np.exp(log_cost), [expected[5], *expected[:5]], rtol=0.02)
    picks = {sampler.suggest(RES, history, np.random.default_rng(s))["instance_type"] for s in range(4)}
    assert picks == {"cpu"}


def test_with_prices_an_instance_is_judged_by_its_speed_not_by_which_configs_it_happened_to_run() -> None:
    """The start-up draws put only big (slow) configurations on cpu; told the hourly prices, the
    sampler sees cpu is merely slower for big x and runs small-x configurations there. GPU: 5x the
    price, 20x faster on the x-dependent part."""
    price = {"cpu": 1_000_000, "gpu": 5_000_000}

    def hours(c: dict[str, Any]) -> float:
        return 0.05 + c["x"] ** 2 / (20 if c["instance_type"] == "gpu" else 1)

    rng = np.random.default_rng(2)
    configs = [{"x": float(0.7 + 0.3 * rng.random()), "y": float(rng.random()), "instance_type": "cpu"}
               for _ in range(3)]
    configs += [{"x": float(rng.random()), "y": float(rng.random()), "instance_type": "gpu"} for _ in range(9)]
    history = History("loss", Mode.MIN, tuple(
        FrozenTrial(i, TrialState.COMPLETE, c, (c["x"] - 0.1) ** 2,
                    cost_micros=int(hours(c) * price[c["instance_type"]]), last_step=9)
        for i, c in enumerate(configs)))
    sampler = BayesSampler(n_startup=5, n_candidates=300, cost_aware=True)
    sampler.set_rates(lambda params: price[params["instance_type"]])
    picks = [sampler.suggest(RES, history, np.random.default_rng(s)) for s in range(4)]
    assert all(p["x"] < 0.5 for p in picks)  # the objective wants small x ...
    assert {p["instance_type"] for p in picks} == {"cpu"}  # ... which is 5x cheaper on cpu


def test_the_controller_tells_a_cost_aware_sampler_each_placements_price(tmp_path: Any) -> None:
    from costtune.providers import make_provider

    from costtune.runner.controller import SweepController
    from costtune.runner.session import open_sweep
    from costtune.spec import parse_sweep
    from costtune.store import Store

    spec = parse_sweep({
        "name": "priced", "objective": {"metric": "loss", "mode": "min"},
        "space": {"x": {"type": "uniform", "low": 0, "high": 1}},
        "sampler": {"type": "bayes", "seed": 0, "cost_aware": True}, "budget": {"usd": 0.05},
        "resources": {"provider": "simulated", "region": "us-east-1", "market": "spot",
                      "instance_type": {"type": "categorical", "choices": ["m5.large", "g4dn.xlarge"]},
                      "simulation": {"workload": "costtune.demo.workloads:hartmann6", "max_steps": 3}},
    })
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        study, _ = open_sweep(store, spec)
        provider = make_provider("simulated", simulation=spec.resources.simulation, metric=spec.metric)
        SweepController(spec, study, provider, trial_events=False)
        assert isinstance(study.sampler, BayesSampler) and study.sampler._rate is not None
        for itype in ("m5.large", "g4dn.xlarge"):
            assert study.sampler._rate({"x": 0.5, "instance_type": itype}) == spec.resources.rates[f"{itype}/spot"]
    finally:
        store.close()
