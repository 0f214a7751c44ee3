"""Samplers never propose a configuration already tried or running while an untried one remains.

One rule for every sampler (``costtune.samplers.novelty``, applied where the study takes a
proposal), and model-based samplers pick the best untried candidate themselves.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import costtune
from costtune.history import History, Mode
from costtune.samplers.bayes import BayesSampler
from costtune.samplers.novelty import avoid_repeat, config_key, finite_size
from costtune.space import SearchSpace
from costtune.store import Store

THREE = {"opt": {"type": "categorical", "choices": ["adam", "sgd"]},
         "act": {"type": "categorical", "choices": ["relu", "tanh"]},
         "width": {"type": "categorical", "choices": ["s", "m", "l"]}}  # 12 combinations


def _loss(p: dict[str, Any]) -> float:
    return {"adam": 0.0, "sgd": 0.3}[p["opt"]] + {"relu": 0.0, "tanh": 0.2}[p["act"]] + \
        {"s": 0.2, "m": 0.0, "l": 0.1}[p["width"]]


def _distinct(trials: list[costtune.FrozenTrial]) -> int:
    return len({tuple(sorted(t.params.items())) for t in trials})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bayes_on_twelve_combinations_tries_all_twelve_in_twelve_trials(tmp_path: Path, seed: int) -> None:
    study = costtune.create_study("bayes12", storage=str(tmp_path / "s.db"), space=THREE,
                                  sampler={"type": "bayes", "seed": seed, "n_startup": 4})
    study.optimize(lambda t: _loss(t.params), n_trials=12)
    assert _distinct(study.trials) == 12
    assert study.best_value == 0.0  # and so it found the best one


def test_random_on_a_finite_space_covers_it_in_as_many_trials(tmp_path: Path) -> None:
    space = {"a": {"type": "int", "low": 1, "high": 4}, "b": {"values": [0.5, 1.5, 2.5]}}
    study = costtune.create_study("rand12", storage=str(tmp_path / "s.db"), space=space,
                                  sampler={"type": "random", "seed": 5})
    study.optimize(lambda t: float(t.params["a"]), n_trials=12, n_jobs=3)
    assert _distinct(study.trials) == 12
    study.optimize(lambda t: float(t.params["a"]), n_trials=2)  # all tried: a repeat is all that is left
    assert len(study.trials) == 14 and _distinct(study.trials) == 12


def test_random_keeps_its_seeded_configs_where_no_repeat_occurs(tmp_path: Path) -> None:
    space = {"a": {"type": "int", "low": 1, "high": 1000}, "b": {"type": "categorical", "choices": list("xyz")}}
    url = f"sqlite:///{tmp_path / 's.db'}"
    runs = []
    for name, jobs in (("one", 1), ("four", 4)):
        study = costtune.create_study(name, storage=url, space=space, sampler={"type": "random", "seed": 11})
        study.optimize(lambda t: float(t.params["a"]), n_trials=20, n_jobs=jobs)
        runs.append({t.number: t.params for t in study.trials})
    expected = {n: SearchSpace.from_dict(space).sample(np.random.default_rng([11, n])) for n in range(20)}
    assert runs[0] == runs[1] == expected


def test_mixed_spaces_never_repeat_exactly() -> None:
    """A model that keeps proposing one point: the rule draws a fresh one; an untried point stays."""
    space = SearchSpace.from_dict({"lr": {"type": "uniform", "low": 0.0, "high": 1.0},
                                   "act": {"type": "categorical", "choices": ["relu", "tanh"]}})
    assert finite_size(space) is None
    tried = [{"lr": 1.0, "act": "relu"}, {"lr": 0.5, "act": "tanh"}]
    rng = np.random.default_rng(0)
    fresh = avoid_repeat(space, {"lr": 1.0, "act": "relu"}, tried, rng)
    assert space.contains(fresh) and config_key(fresh, space.names) not in {config_key(c, space.names) for c in tried}
    assert avoid_repeat(space, {"lr": 0.25, "act": "relu"}, tried, rng) == {"lr": 0.25, "act": "relu"}


class _Stubborn:
    """A custom sampler that always proposes the same configuration."""

    uses_history = True

    def suggest(self, space: SearchSpace, history: History, rng: np.random.Generator) -> dict[str, Any]:
        return {"lr": 0.0, "act": "relu"}


def test_the_rule_holds_for_custom_samplers_and_spares_enqueued_configs(tmp_path: Path) -> None:
    space = {"lr": {"type": "uniform", "low": 0.0, "high": 1.0},
             "act": {"type": "categorical", "choices": ["relu", "tanh"]}}
    study = costtune.create_study("stubborn", storage=str(tmp_path / "s.db"), space=space, sampler=_Stubborn())
    study.enqueue({"lr": 0.0, "act": "relu"})
    study.enqueue({"lr": 0.0, "act": "relu"})  # the user's explicit choice: runs twice
    study.optimize(lambda t: t.params["lr"], n_trials=6)
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    assert params[0] == params[1] == (("act", "relu"), ("lr", 0.0))
    assert len(set(params[2:])) == 4 and params[0] not in params[2:]


def test_bayes_scores_every_untried_point_of_a_small_finite_space() -> None:
    """Past start-up the acquisition's pick is the best untried point, here the one the model favours."""
    space = SearchSpace.from_dict(THREE)
    combos = list(space.grid())
    done = [c for c in combos if not (c["opt"] == "adam" and c["act"] == "relu")]  # 9 tried
    history = History("loss", Mode.MIN, tuple(
        costtune.FrozenTrial(number=i, state=costtune.TrialState.COMPLETE, params=c, value=_loss(c))
        for i, c in enumerate(done)))
    pick = BayesSampler(n_startup=4).suggest(space, history, np.random.default_rng(0))
    assert pick["opt"] == "adam" and pick["act"] == "relu"


def test_three_parallel_workers_on_the_simulated_cloud_try_twelve_configs(tmp_path: Path) -> None:
    sweep = {"name": "sim12", "objective": {"metric": "loss", "mode": "min"}, "space": THREE,
             "sampler": {"type": "bayes", "seed": 0, "n_startup": 4}, "budget": {"trials": 12},
             "resources": {"provider": "simulated", "region": "us-east-1", "instance_type": "m5.large",
                           "workers": 3, "simulation": {"workload": "simworkloads:three_choices", "max_steps": 5}}}
    file = tmp_path / "sweep.yaml"
    file.write_text(yaml.safe_dump(sweep, sort_keys=False))
    db = f"sqlite:///{tmp_path / 'store.db'}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "costtune.cli", "run", str(file), "--db", db, "--quiet"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    store = Store(db)
    trials = store.history(store.get_study("sim12").id).trials
    assert len(trials) == 12 and _distinct(list(trials)) == 12


def test_cost_aware_bayes_tries_all_twelve_in_twelve_trials(tmp_path: Path) -> None:
    study = costtune.create_study("cost12", storage=str(tmp_path / "s.db"), space=THREE, usd_per_hour="3600",
                                  sampler={"type": "bayes", "seed": 3, "n_startup": 4, "cost_aware": True})
    study.optimize(lambda t: _loss(t.params), n_trials=12)
    assert _distinct(study.trials) == 12


def test_bohb_does_not_repeat_on_a_finite_space(tmp_path: Path) -> None:
    from costtune.providers import make_provider

    from costtune.runner.controller import SweepController
    from costtune.runner.session import open_sweep
    from costtune.spec import parse_sweep

    spec = parse_sweep({
        "name": "bohb12", "objective": {"metric": "loss", "mode": "min"}, "space": THREE,
        "sampler": {"type": "bayes", "seed": 0, "n_startup": 3},
        "scheduler": {"type": "bohb", "min_usd": 0.0003, "max_usd": 0.0027, "eta": 3, "min_points": 3},
        "budget": {"usd": 0.06, "trials": 12},  # room for all 12 now that a rung's money starts after start-up
        "resources": {"provider": "simulated", "region": "us-east-1", "instance_type": "m5.large", "workers": 3,
                      "simulation": {"workload": "simworkloads:three_choices", "max_steps": 100}}})
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    study, _ = open_sweep(store, spec)
    SweepController(spec, study, make_provider("simulated", simulation=spec.resources.simulation,
                                               metric=spec.metric), trial_events=False).run()
    trials = study.history().trials
    assert len(trials) == 12 and _distinct(list(trials)) == 12
