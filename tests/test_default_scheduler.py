"""The scheduler a sweep file gets when it has no ``scheduler`` section: learning-curve stopping under a
dollar budget on priced resources, FIFO otherwise. The section a new study got is stored with it, so a
study keeps its scheduler when the default changes (a study stored before defaults were stored ran FIFO
and still does)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from costtune.providers import make_provider

from costtune.errors import InputError, SpecError
from costtune.runner.controller import SweepController
from costtune.runner.session import open_sweep
from costtune.spec import parse_sweep
from costtune.store import Store


def sweep(**top: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": "sched",
        "objective": {"metric": "loss", "mode": "min"},
        "space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
                  "width": {"type": "int", "low": 16, "high": 256}},
        "sampler": {"type": "random", "seed": 4},
        "budget": {"usd": 0.05},
        "resources": {"provider": "simulated", "instance_type": "m5.large", "region": "us-east-1",
                      "simulation": {"workload": "costtune.demo.workloads:mlp_curve", "max_steps": 30,
                                     "preemptions_per_hour": 0}},
    }
    cfg.update(top)
    return {k: v for k, v in cfg.items() if v is not None}


def _run(url: str, data: dict[str, Any]) -> Store:
    spec = parse_sweep(data)
    store = Store(url)
    study, _ = open_sweep(store, spec)
    provider = make_provider("simulated", simulation=spec.resources.simulation, metric=spec.metric)
    SweepController(spec, study, provider, trial_events=False).run()
    return store


def test_a_dollar_budget_on_priced_resources_gets_curve_stopping() -> None:
    assert parse_sweep(sweep()).scheduler["type"] == "curve"


@pytest.mark.parametrize("changes", [
    {"budget": {"trials": 3}},  # no dollar budget: nothing to judge spend against
    {"budget": {"trials": 2, "usd": 0.05}, "resources": {"provider": "local", "usd_per_hour": 0},
     "command": ["true"]},
])
def test_no_dollar_budget_or_no_price_keeps_fifo(changes: dict[str, Any]) -> None:
    assert parse_sweep(sweep(**changes)).scheduler == {"type": "fifo"}


def test_a_new_study_stores_the_scheduler_it_got_and_judges_with_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = _run(url, sweep())
    info = store.get_study("sched")
    assert info.spec["scheduler"] == {"type": "curve"}
    history = store.history(info.id)
    judged = [t for t in history.trials if t.state == "stopped" and t.verdicts]
    # random search on a 30-step curve, a cap worth many trials: some curves are stopped early, by a verdict
    assert judged and all(t.last_step is not None and t.last_step < 29 for t in judged)


def test_a_study_stored_without_a_scheduler_resumes_fifo_and_is_not_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = _run(url, sweep(budget={"usd": 0.01}))
    info = store.get_study("sched")
    old = {k: v for k, v in info.spec.items() if k != "scheduler"}  # as a study made by an earlier version
    store.update_study(info.id, spec=old)
    spec = parse_sweep(sweep(budget={"usd": 0.01}))
    assert spec.scheduler["type"] == "curve"  # what a new study would get today
    _study, resumed = open_sweep(store, spec)
    assert resumed and spec.scheduler == {"type": "fifo"}
    assert store.get_study("sched").spec["scheduler"] == {"type": "fifo"}  # now stored as it runs


def test_a_resume_that_names_another_scheduler_is_refused_naming_both(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = _run(url, sweep(budget={"usd": 0.01}))
    before = store.get_study("sched").spec
    with pytest.raises(InputError, match=r"scheduler.*curve.*fifo"):
        open_sweep(store, parse_sweep(sweep(budget={"usd": 0.01}, scheduler={"type": "fifo"})))
    assert store.get_study("sched").spec == before  # refused: the store is unchanged


def test_a_section_without_type_gets_the_default_type_with_its_settings(tmp_path: Path) -> None:
    assert parse_sweep(sweep(scheduler={})).scheduler["type"] == "curve"
    tuned = parse_sweep(sweep(scheduler={"confidence": 0.9}))
    assert (tuned.scheduler["type"], tuned.scheduler["confidence"]) == ("curve", 0.9)
    with pytest.raises(SpecError, match=r"scheduler\.confidence: unknown field for fifo"):
        parse_sweep(sweep(scheduler={"confidence": 0.9}, budget={"trials": 3}))
    with pytest.raises(SpecError, match=r"scheduler\.eta: unknown field for curve.*name the type to set this field"):
        parse_sweep(sweep(scheduler={"eta": 3}))
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = _run(url, sweep(scheduler={"confidence": 0.9}, budget={"usd": 0.01}))
    assert store.get_study("sched").spec["scheduler"] == {"confidence": 0.9, "type": "curve"}  # its type stored


def test_a_resume_changing_a_curve_setting_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    """A new user's finding: confidence 0.95 -> 0.8 on resume was taken without a word and stored, so later
    verdicts quoted 80% intervals; a study's stopping rule is fixed like its rungs."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = _run(url, sweep(budget={"usd": 0.01}))
    before = store.get_study("sched").spec
    for changed, field in (({"type": "curve", "confidence": 0.8}, "confidence"), ({"min_points": 9}, "min_points"),
                           ({"type": "curve", "min_usd": 0.001}, "min_usd")):
        with pytest.raises(InputError, match=rf"scheduler\.{field}: study 'sched' already exists"):
            open_sweep(store, parse_sweep(sweep(budget={"usd": 0.01}, scheduler=changed)))
    assert store.get_study("sched").spec == before
    same = parse_sweep(sweep(budget={"usd": 0.01}, scheduler={"type": "curve", "confidence": 0.95}))
    _study, resumed = open_sweep(store, same)  # the stored settings restated: resumes
    assert resumed


def test_a_resume_with_a_section_without_type_keeps_the_stored_settings_it_does_not_name(tmp_path: Path) -> None:
    """A curve study made with confidence 0.9 resumed with `scheduler: {}` or `{min_points: 5}` was refused as
    "the file says 0.95", which the file did not say: the section's fields go over the stored ones."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = _run(url, sweep(scheduler={"confidence": 0.9}, budget={"usd": 0.01}))
    for section in ({}, {"min_points": 5}):
        spec = parse_sweep(sweep(scheduler=section, budget={"usd": 0.01}))
        _study, resumed = open_sweep(store, spec)
        assert resumed and (spec.scheduler["type"], spec.scheduler["confidence"]) == ("curve", 0.9)
    with pytest.raises(InputError, match=r"scheduler\.min_points: .* 5, the file says 7"):
        open_sweep(store, parse_sweep(sweep(scheduler={"min_points": 7}, budget={"usd": 0.01})))


def test_the_scheduler_is_described_with_its_settings() -> None:
    from costtune.schedulers import describe_scheduler, scheduler_config

    assert describe_scheduler(scheduler_config({"type": "fifo"})) == "fifo"
    assert describe_scheduler(parse_sweep(sweep()).scheduler) == "curve (95% confidence, 5 points, ratio 2)"
    tuned = scheduler_config({"type": "curve", "confidence": 0.975, "min_usd": 0.01})
    assert describe_scheduler(tuned) == "curve (97.5% confidence, 5 points, ratio 2, from $0.01)"
    rungs = scheduler_config({"type": "asha", "min_usd": 0.002, "max_usd": 0.018})
    assert describe_scheduler(rungs) == "asha ($0.002 to $0.018, eta 3)"
