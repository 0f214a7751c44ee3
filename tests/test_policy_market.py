"""`market: cheapest-expected` picks spot or on-demand from expected cost, visibly (issue 10)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from costtune.policies.market import bucket_rate, choose_market, observed_rate, rework_factor
from costtune.providers import make_provider
from simworkloads import with_changes
from test_policy_enforce import SWEEP

from costtune.errors import SpecError
from costtune.runner.controller import SweepController
from costtune.runner.session import open_sweep
from costtune.spec import parse_sweep
from costtune.store import Store


def test_the_expected_cost_model() -> None:
    assert rework_factor(0.0, 5) == 1.0
    assert rework_factor(1.0, 1.0) == pytest.approx(math.e - 1)  # (e^1 - 1) / 1
    assert math.isinf(rework_factor(100.0, 10.0))
    assert 0.0001 < bucket_rate(">20%") < 0.0005  # 25% a month is about 0.0004 an hour
    assert observed_rate(0.1, 0, 0.0) == pytest.approx(0.1)
    assert observed_rate(0.1, 20, 10.0) == pytest.approx(1.05)  # (0.1 x 10 + 20) / (10 + 10)
    short = choose_market(35_000, 96_000, hours=0.1, at_risk_hours=0.005, rate_per_hour=2.0)
    assert short.market == "spot" and short.spot_micros < short.on_demand_micros
    long = choose_market(35_000, 96_000, hours=4.0, at_risk_hours=4.0, rate_per_hour=2.0)
    assert long.market == "on-demand" and "never finishes" not in long.note()
    assert "market cheapest-expected: on-demand" in long.note()


def _run(store: Store, **changes: object) -> list[tuple[str, str]]:
    spec = parse_sweep(with_changes(SWEEP, tags={"team": "x"}, **changes))
    study, _ = open_sweep(store, spec)
    provider = make_provider("simulated", simulation=spec.resources.simulation, metric=spec.metric)
    SweepController(spec, study, provider, trial_events=False).run()
    return [(a.market, a.note) for t in study.history().trials for a in store.attempts(study.id, t.number)]


def test_cheapest_expected_on_the_simulated_cloud(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    sim = {"workload": "simworkloads:steady", "startup_seconds": 30, "seed": 0, "preemptions_per_hour": 2.0}
    short = _run(store, name="short", budget={"trials": 3, "usd": 1, "trial_seconds": 300},
                 resources__market="cheapest-expected", resources__simulation={**sim, "max_steps": 20})
    assert short and {m for m, _n in short} == {"spot"}
    assert all(n.startswith("market cheapest-expected: spot (expected spot $") for _m, n in short)
    long = _run(store, name="long", budget={"trials": 2, "usd": 5, "trial_seconds": 14_400},
                resources__market="cheapest-expected",
                resources__simulation={**sim, "max_steps": 1400, "checkpoint": False})
    assert long and {m for m, _n in long} == {"on-demand"}
    assert "market cheapest-expected: on-demand" in long[0][1]
    with pytest.raises(SpecError, match="cheapest-expected is a market policy"):
        parse_sweep(with_changes(SWEEP, resources__market={"type": "categorical",
                                                           "choices": ["spot", "cheapest-expected"]}))
