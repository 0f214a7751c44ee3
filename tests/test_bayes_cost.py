"""Cost-aware BayesSampler: EI per dollar, cost cooling on the budget, and its sweep-file settings."""

from __future__ import annotations

import itertools
import json
import logging
import math
from typing import Any

import numpy as np
import pytest

from costtune.errors import SpecError
from costtune.history import FrozenTrial, History, Mode, TrialState
from costtune.samplers import make_sampler, sampler_config
from costtune.samplers.bayes import BayesSampler
from costtune.samplers.cost_model import cost_exponent, cost_observations, fit_cost_penalty
from costtune.samplers.encoding import Encoder
from costtune.space import Categorical, SearchSpace, Uniform

# "speed" buys nothing on the objective but makes every trial dearer: exp(4 * speed) dollars.
SPEED = SearchSpace({"speed": Uniform(0, 1), "y": Uniform(0, 1)})
INSTANCE = SearchSpace({"instance_type": Categorical(("small", "large")), "y": Uniform(0, 1)})
USD = 1_000_000


def speed_cost(c: dict[str, Any]) -> int:
    return int(USD * math.exp(4 * c["speed"]))


def instance_cost(c: dict[str, Any]) -> int:
    return USD * (10 if c["instance_type"] == "large" else 1)


def flat(c: dict[str, Any]) -> float:
    return (c["y"] - 0.4) ** 2


def history_of(
    space: SearchSpace, cost: Any, n: int, seed: int, budget: int | None = None, state: TrialState = TrialState.COMPLETE
) -> History:
    rng = np.random.default_rng(seed)
    trials = []
    for i in range(n):
        c = space.sample(rng)
        trials.append(FrozenTrial(i, state, c, flat(c), cost_micros=cost(c)))
    return History("y", Mode.MIN, tuple(trials), budget)


def with_budget(history: History, budget: int | None) -> History:
    return History(history.metric, history.mode, history.trials, budget)


def proposals(sampler: BayesSampler, space: SearchSpace, cost: Any, n: int = 20) -> list[dict[str, Any]]:
    """One suggestion from each of ``n`` seeded histories: a paired, deterministic sample."""
    return [sampler.suggest(space, history_of(space, cost, 12, seed), np.random.default_rng(seed)) for seed in range(n)]


@pytest.mark.parametrize(
    ("space", "cost", "cheap"),
    [
        (SPEED, speed_cost, lambda c: c["speed"] < 0.3),
        (INSTANCE, instance_cost, lambda c: c["instance_type"] == "small"),
    ],
    ids=["numeric", "categorical"],
)
def test_prefers_cheap_configs_when_the_objective_does_not_care(
    space: SearchSpace, cost: Any, cheap: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        plain = proposals(BayesSampler(n_startup=5, n_candidates=400), space, cost)
        aware = proposals(BayesSampler(n_startup=5, n_candidates=400, cost_aware=True), space, cost)
    assert not caplog.records
    n_plain, n_aware = sum(map(cheap, plain)), sum(map(cheap, aware))
    assert n_aware >= 16 and n_aware >= n_plain + 8, (n_plain, n_aware)
    assert sum(cost(c) for c in aware) < 0.5 * sum(cost(c) for c in plain)


def test_cost_model_learns_a_categorical_and_a_slow_parameter() -> None:
    inst = history_of(INSTANCE, instance_cost, 12, seed=1)
    penalty = BayesSampler(cost_aware=True).cost_penalty(INSTANCE, inst)
    assert penalty is not None and penalty.alpha == 1.0
    enc = Encoder(INSTANCE)
    rows = np.array([enc.encode({"instance_type": t, "y": 0.5}) for t in ("small", "large")])
    np.testing.assert_allclose(np.exp(penalty.log_cost(rows)), [1.0, 10.0], rtol=0.1)
    speed = BayesSampler(cost_aware=True).cost_penalty(SPEED, history_of(SPEED, speed_cost, 12, seed=1))
    assert speed is not None
    enc = Encoder(SPEED)
    lc = speed.log_cost(np.array([enc.encode({"speed": s, "y": 0.5}) for s in (0.1, 0.5, 0.9)]))
    np.testing.assert_allclose(lc, [0.4, 2.0, 3.6], atol=0.3)


def test_cost_aware_still_optimises_the_objective() -> None:
    """Equal-cost configs are ranked by EI alone: a cheap region must not stall the search."""
    done = list(history_of(SPEED, speed_cost, 8, seed=3).trials)
    sampler = BayesSampler(n_startup=5, n_candidates=400, cost_aware=True)
    for i in range(8):
        c = sampler.suggest(SPEED, History("y", Mode.MIN, tuple(done)), np.random.default_rng([3, i]))
        done.append(FrozenTrial(len(done), TrialState.COMPLETE, c, flat(c), cost_micros=speed_cost(c)))
    assert min(t.value for t in done[8:]) < min(t.value for t in done[:8])  # type: ignore[type-var]


# --- cooling -----------------------------------------------------------------------------------


def test_alpha_is_the_weight_without_a_budget() -> None:
    history = history_of(SPEED, speed_cost, 12, seed=0)
    assert cost_exponent(history, 1.0, 5) == 1.0
    assert cost_exponent(history, 0.3, 5) == 0.3


def test_alpha_cools_to_zero_at_the_budget() -> None:
    history = history_of(SPEED, speed_cost, 12, seed=0)
    spent = history.spent_micros
    at_init = sum(t.cost_micros for t in history.trials[:5])
    alphas = [cost_exponent(with_budget(history, spent + extra), 0.8, 5) for extra in (10 * spent, spent, 1, 0)]
    assert all(a > b for a, b in itertools.pairwise(alphas)), alphas
    assert 0.0 < alphas[0] <= 0.8 and alphas[-1] == 0.0
    budget = 2 * spent
    assert cost_exponent(with_budget(history, budget), 0.8, 5) == pytest.approx(
        0.8 * (budget - spent) / (budget - at_init)
    )
    assert cost_exponent(with_budget(history, spent // 2), 0.8, 5) == 0.0  # overspent
    # Still in start-up: spent_at_init is what has been spent so far, so alpha starts at the weight.
    assert cost_exponent(with_budget(history, 3 * spent), 0.8, 20) == 0.8


def test_at_the_budget_proposals_match_plain_ei() -> None:
    plain = BayesSampler(n_startup=5, n_candidates=400)
    aware = BayesSampler(n_startup=5, n_candidates=400, cost_aware=True)
    for seed in range(3):
        history = history_of(SPEED, speed_cost, 12, seed)
        spent_out = with_budget(history, history.spent_micros)
        assert aware.cost_penalty(SPEED, spent_out) is None
        assert aware.suggest(SPEED, spent_out, np.random.default_rng(seed)) == plain.suggest(
            SPEED, history, np.random.default_rng(seed)
        )
        # With money left the same history gives a different, cheaper proposal.
        rich = with_budget(history, 100 * history.spent_micros)
        assert aware.suggest(SPEED, rich, np.random.default_rng(seed)) != plain.suggest(
            SPEED, history, np.random.default_rng(seed)
        )


# --- fallbacks ----------------------------------------------------------------------------------


def test_no_cost_data_or_equal_costs_is_plain_ei() -> None:
    plain = BayesSampler(n_startup=5, n_candidates=400)
    aware = BayesSampler(n_startup=5, n_candidates=400, cost_aware=True)
    for cost in (lambda c: 0, lambda c: USD):
        history = history_of(SPEED, cost, 12, seed=4)
        assert aware.cost_penalty(SPEED, history) is None
        assert aware.suggest(SPEED, history, np.random.default_rng(1)) == plain.suggest(
            SPEED, history, np.random.default_rng(1)
        )


def test_a_failing_cost_fit_falls_back_to_plain_ei(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise np.linalg.LinAlgError("boom")

    history = history_of(SPEED, speed_cost, 12, seed=5)
    aware = BayesSampler(n_startup=5, n_candidates=400, cost_aware=True)
    monkeypatch.setattr(aware.cost_surrogate, "fit", broken)
    with caplog.at_level(logging.WARNING):
        got = aware.suggest(SPEED, history, np.random.default_rng(2))
    assert got == BayesSampler(n_startup=5, n_candidates=400).suggest(SPEED, history, np.random.default_rng(2))
    assert any("plain expected improvement" in r.getMessage() for r in caplog.records)


def test_cost_model_prefers_complete_trials_over_stopped_ones() -> None:
    enc = Encoder(SPEED).encode
    complete = history_of(SPEED, speed_cost, 3, seed=6)
    stopped = history_of(SPEED, lambda c: speed_cost(c) // 4, 4, seed=7, state=TrialState.STOPPED)
    renumbered = tuple(
        FrozenTrial(10 + t.number, t.state, t.params, t.value, cost_micros=t.cost_micros) for t in stopped.trials
    )
    failed = (FrozenTrial(20, TrialState.FAILED, {"speed": 0.5, "y": 0.5}, None, cost_micros=USD),)
    both = History("y", Mode.MIN, complete.trials + renumbered + failed)
    _, log_cost = cost_observations(both, enc)
    assert len(log_cost) == 3  # enough complete trials: the cheap, cut-short ones would bias the model down
    few = History("y", Mode.MIN, complete.trials[:2] + renumbered + failed)
    _, log_cost = cost_observations(few, enc)
    assert len(log_cost) == 6  # too few complete ones: stopped trials are better than nothing
    assert fit_cost_penalty(History("y", Mode.MIN, complete.trials[:2]), enc, 1.0) is None


# --- settings -----------------------------------------------------------------------------------


def test_config_defaults_leave_stored_configs_unchanged() -> None:
    cfg = sampler_config({"type": "bayes", "seed": 0}, SPEED)
    assert cfg == {"type": "bayes", "seed": 0, "n_startup": 10, "configs": []}
    sampler = make_sampler(cfg)
    assert isinstance(sampler, BayesSampler) and not sampler.cost_aware
    assert "cost" not in repr(sampler)
    assert sampler_config({"type": "bayes", "seed": 0, "cost_aware": False}, SPEED) == cfg


def test_config_json_round_trip() -> None:
    cfg = sampler_config({"type": "bayes", "seed": 3, "cost_aware": True, "cost_weight": 0.5}, SPEED)
    assert cfg["cost_aware"] is True and cfg["cost_weight"] == 0.5
    again = json.loads(json.dumps(cfg))
    assert again == cfg
    sampler = make_sampler(again)
    assert isinstance(sampler, BayesSampler)
    # cost-aware start-up trials are paid for: 5 by default (plain bayes keeps 10), stored with the study
    assert (sampler.cost_aware, sampler.cost_weight, sampler.n_startup) == (True, 0.5, 5)
    default = sampler_config({"type": "bayes", "seed": 3, "cost_aware": True}, SPEED)
    assert default["cost_weight"] == 1.0 and make_sampler(json.loads(json.dumps(default))).cost_weight == 1.0
    assert sampler_config({"type": "bayes", "cost_aware": True, "n_startup": 12}, SPEED)["n_startup"] == 12


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"cost_aware": "yes"}, "sampler.cost_aware"),
        ({"cost_aware": 1}, "sampler.cost_aware"),
        ({"cost_aware": True, "cost_weight": 0}, "sampler.cost_weight"),
        ({"cost_aware": True, "cost_weight": 1.5}, "sampler.cost_weight"),
        ({"cost_aware": True, "cost_weight": math.nan}, "sampler.cost_weight"),
        ({"cost_aware": True, "cost_weight": "high"}, "sampler.cost_weight"),
        ({"cost_aware": True, "cost_weight": True}, "sampler.cost_weight"),
        ({"cost_weight": 0.5}, "sampler.cost_weight"),
    ],
)
def test_config_errors_name_the_field(section: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as err:
        sampler_config({"type": "bayes", "seed": 0, **section}, SPEED)
    assert err.value.path == field


@pytest.mark.parametrize("kind", ["random", "grid", "manual"])
def test_cost_fields_are_bayes_only(kind: str) -> None:
    with pytest.raises(SpecError) as err:
        sampler_config({"type": kind, "cost_aware": True}, SPEED)
    assert err.value.path == "sampler.cost_aware"


@pytest.mark.parametrize(
    "kwargs", [{"cost_weight": 0.0}, {"cost_weight": 1.01}, {"cost_weight": "x"}, {"cost_aware": 1}]
)
def test_sampler_rejects_bad_cost_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(SpecError):
        BayesSampler(**kwargs)
