"""Simulated sweeps through the real controller, store and ledger: the books to the micro-dollar."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from costtune.providers import make_provider
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simworkloads import with_changes

from costtune.history import TrialState
from costtune.runner.controller import RunStatus, SweepController
from costtune.runner.session import open_sweep
from costtune.schedulers import rung_ladder
from costtune.spec import SweepSpec, parse_sweep
from costtune.store import Store

M5_LARGE_OD = 96_000  # micro-dollars an hour, bundled snapshot (aws us-east-1 on-demand)
M5_2XLARGE_OD = 384_000

BASE: dict[str, Any] = {
    "name": "sim",
    "objective": {"metric": "loss", "mode": "min"},
    "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
    "sampler": {"type": "random", "seed": 3},
    "scheduler": {"type": "asha", "min_usd": 0.01, "max_usd": 0.09, "eta": 3},
    "budget": {"usd": 0.5},
    "resources": {
        "provider": "simulated", "region": "us-east-1", "instance_type": "m5.large", "market": "on-demand",
        "workers": 4,
        "simulation": {"workload": "simworkloads:steady", "max_steps": 200, "startup_seconds": 30, "seed": 0},
    },
}


def sweep(**changes: Any) -> dict[str, Any]:
    return with_changes(BASE, **changes)


def run_sim(store: Store, cfg: dict[str, Any], *, change_cap: bool = False) -> tuple[SweepSpec, Any, RunStatus]:
    spec = parse_sweep(cfg)
    study, _ = open_sweep(store, spec, change_cap=change_cap)
    provider = make_provider("simulated", simulation=spec.resources.simulation, metric=spec.metric)
    status = SweepController(spec, study, provider, trial_events=False).run()
    return spec, study, status


def all_attempts(store: Store, study: Any) -> list[tuple[Any, Any]]:
    return [(t, a) for t in study.history().trials for a in store.attempts(study.id, t.number)]


def check_books(store: Store, spec: SweepSpec, study: Any) -> int:
    """Every attempt charged billable time x its rate under the provider's rounding; the ledger agrees."""
    total = 0
    for trial, attempt in all_attempts(store, study):
        assert attempt.cost_micros == spec.resources.billing.charge(attempt.billable_ms, attempt.rate_micros_per_hour)
        if not spec.resources.simulation.spot_prices:  # with a price trace the rate depends on the launch time
            assert attempt.rate_micros_per_hour == spec.resources.rate_for(attempt.instance_type, attempt.market)
        assert attempt.exit_reason is not None, f"trial {trial.number} left an attempt open"
        total += attempt.cost_micros
    history = study.history()
    assert sum(t.cost_micros for t in history.trials) == total
    _cap, spent, reserved = store.balance(f"study:{study.id}")
    assert (spent, reserved) == (total, 0)
    return total


def test_charges_are_exact_rungs_are_dollars_and_the_cap_holds(store: Store) -> None:
    spec, study, status = run_sim(store, sweep())
    ladder = rung_ladder(10_000, 90_000, 3)
    assert ladder == (10_000, 30_000, 90_000)  # min_usd * eta**k, in micro-dollars
    total = check_books(store, spec, study)
    assert total <= 500_000 and status.spend_micros == total
    granule = spec.resources.billing.charge(61_000, M5_LARGE_OD) - spec.resources.billing.charge(60_000, M5_LARGE_OD)
    trials = study.history().trials
    assert len(trials) > 10
    step_cost = spec.resources.billing.charge(70_000, M5_LARGE_OD) - spec.resources.billing.charge(60_000, M5_LARGE_OD)
    for trial in trials:
        attempts = store.attempts(study.id, trial.number)
        if len(attempts) != 1 or not trial.verdicts:
            continue  # a relaunched trial's rungs count on from where it was promoted
        reports = store.reports(study.id, trial.number)
        first = spec.resources.billing.charge(round(reports[0][2] * 1000), M5_LARGE_OD)  # spend at 1st report
        rung = trial.verdicts[-1][0]
        if not trial.verdicts[-1][2]:  # its last verdict stopped it (or it reached max_usd)
            # judged (and stopped) when its spend past its first report reached a rung: within one billing
            # second below it, never before that: the rung's worth of ten-second steps after the first one
            assert rung - granule < trial.cost_micros - first <= rung, (trial.number, trial.cost_micros, first)
            assert len(reports) - 1 >= rung // step_cost - 1, (trial.number, len(reports))
        elif trial.state == TrialState.COMPLETE:  # promoted, then it ran all 200 ten-second steps
            assert trial.last_step == 199
    promoted = [t for t in trials if any(up for _level, _value, up in t.verdicts)]
    assert promoted and len(promoted) < len(trials) / 2  # ASHA lets about 1/eta on


def test_a_pricier_instance_reaches_its_first_rung_after_proportionally_fewer_steps(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    configs = [{"x": 0.5, "instance_type": "m5.large"}, {"x": 0.5, "instance_type": "m5.2xlarge"}]
    cfg = sweep(sampler={"type": "manual", "configs": configs}, budget={"usd": 1.0},
                resources__instance_type={"type": "categorical", "choices": ["m5.large", "m5.2xlarge"]},
                resources__simulation__startup_seconds=0)
    _spec, study, _status = run_sim(store, cfg)
    booked = store.rung_reports(study.id)  # trial -> [(its spend at the report, loss)]
    reached = {n: sum(1 for cost, _loss in booked[n] if cost <= 10_000) for n in (0, 1)}
    # $0.01 buys 375 s of m5.large (37 ten-second steps) and 93 s of m5.2xlarge (9 steps)
    assert reached == {0: 37, 1: 9}  # 4x the price, a quarter of the steps for the same dollars


def test_an_instance_priced_3x_reaches_its_first_rung_after_a_third_of_the_steps(tmp_path: Path) -> None:
    overrides = tmp_path / "prices.yaml"
    overrides.write_text(yaml.safe_dump({"prices": [
        {"provider": "aws", "region": "us-east-1", "instance_type": "m5.large", "market": "on-demand",
         "usd_per_hour": 0.10, "source": "test rate"},
        {"provider": "aws", "region": "us-east-1", "instance_type": "m5.xlarge", "market": "on-demand",
         "usd_per_hour": 0.30, "source": "test rate"}]}))
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    configs = [{"x": 0.5, "instance_type": "m5.large"}, {"x": 0.5, "instance_type": "m5.xlarge"}]
    cfg = sweep(sampler={"type": "manual", "configs": configs}, budget={"usd": 1.0},
                resources__instance_type={"type": "categorical", "choices": ["m5.large", "m5.xlarge"]},
                resources__price_overrides=str(overrides), resources__simulation__startup_seconds=0)
    spec, study, _status = run_sim(store, cfg)
    assert spec.resources.rates == {"m5.large/on-demand": 100_000, "m5.xlarge/on-demand": 300_000}
    booked = store.rung_reports(study.id)
    reached = {n: sum(1 for cost, _loss in booked[n] if cost <= 10_000) for n in (0, 1)}
    assert reached == {0: 36, 1: 12}  # $0.01 buys 360 s at $0.10/h and 120 s at $0.30/h: a third of the steps
    check_books(store, spec, study)


def test_spot_preemptions_requeue_charge_and_report_waste(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    cfg = sweep(resources__market="spot", budget={"usd": 0.3},
                scheduler={"type": "asha", "min_usd": 0.004, "max_usd": 0.036, "eta": 3},
                resources__simulation__preemptions_per_hour=3.0)
    spec, study, status = run_sim(store, cfg)
    check_books(store, spec, study)
    attempts = [a for _t, a in all_attempts(store, study)]
    preempted = [a for a in attempts if a.exit_reason == "preempted"]
    assert len(preempted) >= 0.2 * len(attempts)  # a 20%-and-more preemption rate
    assert status.preemptions == len(preempted) and status.waste_micros > 0
    for trial in study.history().trials:
        assert trial.state != TrialState.FAILED
        assert trial.state in (TrialState.COMPLETE, TrialState.STOPPED, TrialState.QUEUED)
    history = study.history()
    assert sum(t.state.finished for t in history.trials) >= len(history.trials) - 1  # the sweep completed


def test_preempted_trials_resume_from_their_checkpoint(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    cfg = sweep(resources__market="spot", budget={"usd": 0.3}, scheduler={"type": "fifo"},
                resources__simulation__preemptions_per_hour=6.0, resources__simulation__max_steps=60)
    _spec, study, _status = run_sim(store, cfg)
    resumed = 0
    for trial in study.history().trials:
        attempts = store.attempts(study.id, trial.number)
        steps = [s for s, _m, _e in store.reports(study.id, trial.number)]
        assert len(steps) == len(set(steps)), "a resumed trial repeated a checkpointed step"
        resumed += sum(a.exit_reason == "preempted" for a in attempts[:-1])
        if trial.state == TrialState.COMPLETE:
            assert steps == list(range(60))
    assert resumed > 0


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["asha", "hyperband", "sh", "fifo"]),
    workers=st.integers(1, 8),
    eta=st.integers(2, 4),
    min_cents=st.integers(1, 3),
    levels=st.integers(1, 3),
    extra_cents=st.integers(0, 40),
    preemptions=st.sampled_from([0.0, 2.0, 10.0]),
    spot=st.booleans(),
)
def test_spend_never_passes_the_cap(kind: str, workers: int, eta: int, min_cents: int, levels: int,
                                    extra_cents: int, preemptions: float, spot: bool) -> None:
    min_usd = min_cents / 100
    max_usd = min_usd * eta**levels
    budget = round(max_usd + extra_cents / 100, 2)
    scheduler = {"type": "fifo"} if kind == "fifo" else {"type": kind, "min_usd": min_usd, "max_usd": max_usd,
                                                        "eta": eta}
    cfg = sweep(scheduler=scheduler, budget={"usd": budget, "trials": 60},
                resources__workers=workers, resources__market="spot" if spot else "on-demand",
                resources__instance_type={"type": "categorical", "choices": ["m5.large", "c5.xlarge"]},
                resources__simulation__workload="simworkloads:varied",
                resources__simulation__preemptions_per_hour=preemptions)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/s.db")
        try:
            spec, study, status = run_sim(store, cfg)
            total = check_books(store, spec, study)
        finally:
            store.close()
    # On a virtual clock the bound is exact: no attempt outspends its reservation.
    assert total <= spec.budget.usd_micros
    assert status.spend_micros == total


def test_killing_the_controller_mid_sweep_loses_no_charge_and_relaunches_nothing(tmp_path: Path) -> None:
    cfg = sweep(name="killed", budget={"usd": 2.0}, resources__simulation__workload="simworkloads:sluggish",
                resources__workers=6)
    file = tmp_path / "sweep.yaml"
    file.write_text(yaml.safe_dump(cfg))
    db = f"sqlite:///{tmp_path / 'store.db'}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
           "COSTTUNE_TEST_STEP_SLEEP": "0.003"}
    cmd = [sys.executable, "-m", "costtune.cli", "run", str(file), "--db", db, "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = Store(db)
    deadline = time.monotonic() + 60
    finished = 0
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            study = store.get_study("killed")
            finished = sum(t.state.finished for t in store.history(study.id).trials)
        except Exception:
            continue
        if finished >= 15:
            break
    assert proc.poll() is None, "the sweep ended before it could be killed; slow its workload down"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert finished >= 15
    again = subprocess.run(cmd, env={**env, "COSTTUNE_TEST_STEP_SLEEP": "0"}, capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0, again.stderr
    spec = parse_sweep(cfg)
    study = store.get_study("killed")
    from costtune.study import Study

    study_obj = Study(store, study)
    check_books(store, spec, study_obj)
    for trial in study_obj.history().trials:
        attempts = store.attempts(study.id, trial.number)
        ends = [a.exit_reason for a in attempts]
        # at most one attempt ran to a decision; any other was cut short by the kill and re-queued
        assert sum(e in ("completed", "stopped", "budget") for e in ends) <= 1, ends
        assert all(e in ("completed", "stopped", "budget", "interrupted") for e in ends), ends
    assert study_obj.history().spent_micros <= spec.budget.usd_micros


def test_bohb_fits_its_model_on_the_highest_rung_with_enough_results(tmp_path: Path) -> None:
    from costtune.samplers.rung_model import RungModelSampler
    from costtune.space import SearchSpace

    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    cfg = sweep(scheduler={"type": "bohb", "min_usd": 0.01, "max_usd": 0.09, "eta": 3, "min_points": 3},
                sampler={"type": "bayes", "seed": 1, "n_startup": 3}, budget={"usd": 1.5},
                resources__simulation__workload="simworkloads:varied")
    spec, study, _status = run_sim(store, cfg)
    check_books(store, spec, study)
    sampler = study.sampler
    assert isinstance(sampler, RungModelSampler)
    space = SearchSpace.from_dict(study.space_dict())
    seen = sampler.rung_history(space, study.history())
    assert seen is not None
    top = max(level for level in sampler.rungs.levels() if len(sampler.rungs.results_at(level)) >= 3)
    # observations: the values at that rung; every other trial is there without a value (tried: never proposed again)
    assert {t.number: t.value for t in seen.trials if t.value is not None} == sampler.rungs.results_at(top)
    assert {t.number for t in seen.trials} == {t.number for t in study.history().trials}


def test_every_study_returns_its_metric_cost_pareto_front(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    cfg = sweep(scheduler={"type": "fifo"}, budget={"usd": 0.2}, resources__simulation__workload="simworkloads:varied",
                resources__simulation__max_steps=20)
    _spec, study, _status = run_sim(store, cfg)
    front = study.pareto_front()
    scored = [t for t in study.history().trials if t.value is not None and t.state.finished]
    assert front and len(front) <= len(scored)
    costs = [t.cost_micros for t in front]
    values = [t.value for t in front]
    assert costs == sorted(costs) and values == sorted(values, reverse=True)  # pay more only to do better
    for trial in scored:  # nothing off the front beats a front trial on both counts
        assert not any(t.cost_micros > trial.cost_micros and t.value > trial.value for t in front if t is not trial)


def test_a_trial_time_limit_is_exact_on_the_virtual_clock(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    cfg = sweep(scheduler={"type": "fifo"}, budget={"usd": 0.1, "trials": 3, "trial_seconds": 95},
                resources__simulation__startup_seconds=0)
    spec, study, _status = run_sim(store, cfg)
    check_books(store, spec, study)
    for trial in study.history().trials:
        (attempt,) = store.attempts(study.id, trial.number)
        assert (trial.state, attempt.exit_reason, attempt.billable_ms) == (TrialState.FAILED, "timeout", 95_000)
        assert trial.last_step == 8  # reports at 10 s, 20 s, ... 90 s: steps 0..8


@pytest.mark.parametrize(("change", "message"), [
    ({"resources__instance_type": "m5.huge"}, "resources.instance_type: no price for aws/us-east-1/m5.huge"),
    ({"resources__instance_type": {"type": "categorical", "choices": ["m5.large", "m5.large"]}},
     "resources.instance_type.choices: must not repeat a choice"),
    ({"resources__market": "preemptible"},
     "resources.market: must be one of on-demand, spot, cheapest-expected, got preemptible"),
    ({"resources__region": "mars-1"}, "resources.region: no prices for this region; known: "),
    ({"resources__simulation__workload": "nosuchmodule:f"}, "resources.simulation.workload: no module named"),
    ({"resources__simulation__max_steps": 0}, "resources.simulation.max_steps: must be an integer >= 1, got 0"),
    ({"resources__simulation__preemptions_per_hour": -1},
     "resources.simulation.preemptions_per_hour: must be a number >= 0, got -1"),
    ({"resources__usd_per_hour": 1}, "resources.usd_per_hour: a simulated instance is priced from the price table"),
    # max_usd is chosen from budget.usd when left out; without budget.usd it is required
    ({"scheduler": {"type": "asha", "min_usd": 0.01}, "budget": {"trials": 5}}, "scheduler.max_usd"),
    ({"scheduler": {"type": "hyperband", "min_usd": 0.1, "max_usd": 0.9, "eta": 3}, "budget": {"usd": 0.5}},
     "budget.usd: too small"),
    ({"space": {"x": {"type": "uniform", "low": 0, "high": 1},
                "instance_type": {"type": "categorical", "choices": ["a"]}},
      "resources__instance_type": {"type": "categorical", "choices": ["m5.large", "c5.xlarge"]}},
     "space.instance_type: is set by resources.instance_type"),
])
def test_bad_simulated_sweeps_name_the_field(change: dict[str, Any], message: str) -> None:
    from costtune.errors import SpecError

    with pytest.raises(SpecError) as caught:
        parse_sweep(sweep(**change))
    assert message in str(caught.value)


def test_costtune_spend_shows_each_scope_cap_spent_and_left(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from costtune.cli import main

    db = f"sqlite:///{tmp_path / 's.db'}"
    store = Store(db)
    spec, study, _status = run_sim(store, sweep(budget={"usd": 0.2}))
    total = check_books(store, spec, study)
    result = CliRunner().invoke(main, ["spend", "--db", db, "--format", "json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert row == {"scope": f"study:{study.id}", "name": "study sim", "cap_micros": 200_000, "spent_micros": total,
                   "reserved_micros": 0, "left_micros": 200_000 - total, "held_controller_gone_micros": 0,
                   "controller_gone_cost_micros": 0, "controllers_gone": []}


@pytest.mark.parametrize("example", sorted((Path(__file__).parent.parent / "examples").rglob("*.yaml")),
                         ids=lambda p: p.name)
def test_example_sweep_files_parse(example: Path) -> None:
    from costtune.spec import load_sweep

    if example.parent.name == "policies":  # spend-policy files, not sweeps
        from costtune.policies import load_policy_files

        assert load_policy_files([example])
        return
    assert load_sweep(example).name


def test_a_resumed_sweep_replays_every_rung_decision(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    spec, study, _status = run_sim(store, sweep(budget={"usd": 0.4}))
    first = SweepController(spec, study, make_provider("simulated", simulation=spec.resources.simulation,
                                                       metric=spec.metric), trial_events=False)
    # what the first run's scheduler held, rebuilt by a fresh controller from the store alone
    first._prepare()
    judged = {level: first.rungs.results_at(level) for level in first.rungs.levels()}
    assert sum(len(v) for v in judged.values()) > len(study.history().trials)  # every trial, promoted ones twice
    for trial in study.history().trials:
        if trial.state == TrialState.STOPPED:
            assert any(trial.number in results for results in judged.values())
    before = len(study.history().trials)
    spec2, study2, _ = run_sim(store, sweep(budget={"usd": 0.6}), change_cap=True)  # more money: the sweep goes on
    assert len(study2.history().trials) > before
    assert check_books(store, spec2, study2) <= 600_000


def test_dollar_rungs_refuse_unpriced_local_trials() -> None:
    from costtune.errors import SpecError

    cfg = {"name": "free", "objective": {"metric": "loss"}, "space": {"x": [1, 2]}, "command": ["true"],
           "scheduler": {"type": "asha", "min_usd": 0.01, "max_usd": 0.09}, "budget": {"trials": 2}}
    with pytest.raises(SpecError, match=r"^scheduler.type: asha judges trials by the dollars they spend"):
        parse_sweep(cfg)
    cfg["resources"] = {"usd_per_hour": 1.0}
    assert parse_sweep(cfg).scheduler["type"] == "asha"


def test_a_recorded_table_replays_as_a_workload(tmp_path: Path) -> None:
    table = tmp_path / "recorded.csv"
    lines = ["depth,booster,instance_type,step,value,seconds"]
    for depth in (2, 8):
        for itype, seconds in (("m5.large", 30.0), ("c5.xlarge", 15.0)):
            for step in range(6):
                lines.append(f"{depth},gbtree,{itype},{step},{1.0 / depth + 1.0 / (step + 1):.6f},{seconds * depth}")
    table.write_text("\n".join(lines) + "\n")
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    cfg = sweep(space={"depth": {"values": [2, 8]}, "booster": "gbtree"}, sampler={"type": "grid"},
                scheduler={"type": "fifo"}, budget={"usd": 1.0},
                resources__instance_type={"type": "categorical", "choices": ["m5.large", "c5.xlarge"]},
                resources__simulation__workload=str(table), resources__simulation__max_steps=8,
                resources__simulation__startup_seconds=0)
    spec, study, _status = run_sim(store, cfg)
    check_books(store, spec, study)
    trials = study.history().trials
    assert len(trials) == 4  # the grid over depth x instance type
    for trial in trials:
        (attempt,) = store.attempts(study.id, trial.number)
        per_step = (30.0 if trial.params["instance_type"] == "m5.large" else 15.0) * trial.params["depth"]
        assert attempt.billable_ms == round(8 * per_step * 1000)  # steps 6 and 7 repeat the last recorded one
        assert trial.value == pytest.approx(1.0 / trial.params["depth"] + 1.0 / 6, abs=1e-6)
    with pytest.raises(Exception, match="needs columns step, value, seconds; missing seconds"):
        bad = tmp_path / "bad.csv"
        bad.write_text("depth,step,value\n2,0,1.0\n")
        parse_sweep(sweep(resources__simulation__workload=str(bad)))


def test_a_spot_price_trace_prices_each_launch_at_its_moment(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    cfg = sweep(resources__market="spot", scheduler={"type": "fifo"}, budget={"usd": 0.25},
                resources__simulation__max_steps=30,
                resources__simulation__spot_prices={"m5.large": [[0, 0.05], [1800, 0.10]]})
    spec, study, _status = run_sim(store, cfg)
    check_books(store, spec, study)
    attempts = [a for _t, a in all_attempts(store, study)]
    assert {a.rate_micros_per_hour for a in attempts} == {50_000, 100_000}
    first_expensive = min(i for i, a in enumerate(attempts) if a.rate_micros_per_hour == 100_000)
    assert all(a.rate_micros_per_hour == 50_000 for a in attempts[:first_expensive])
    with pytest.raises(Exception, match=r"spot_prices.c5.xlarge: is not one of resources.instance_type"):
        parse_sweep(sweep(resources__simulation__spot_prices={"c5.xlarge": [[0, 0.05]]}))


def test_a_workload_that_raises_fails_its_trial_not_the_sweep(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    cfg = sweep(scheduler={"type": "fifo"}, budget={"trials": 8, "usd": 1.0},
                resources__simulation__workload="simworkloads:breaks_at_3", resources__simulation__max_steps=5)
    spec, study, _status = run_sim(store, cfg)
    check_books(store, spec, study)
    trials = study.history().trials
    assert len(trials) == 8
    for trial in trials:
        if trial.params["x"] > 0.5:
            assert trial.state == TrialState.FAILED
            assert "breaks_at_3 raised at step 3: RuntimeError: no curve recorded past step 2" in trial.error
            assert trial.last_step == 2  # what it reported before failing is kept
        else:
            assert trial.state == TrialState.COMPLETE


def test_hyperband_plans_another_iteration_while_the_budget_holds_one(tmp_path: Path) -> None:
    from costtune.schedulers import plan_brackets

    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    # Trials end after 10 steps (~$0.003 with their start-up), far below the top rung: each iteration costs a
    # fraction of its plan.
    cfg = sweep(scheduler={"type": "hyperband", "min_usd": 0.002, "max_usd": 0.018, "eta": 3},
                budget={"usd": 0.3}, resources__simulation__max_steps=10)
    spec, study, _status = run_sim(store, cfg)
    planned = plan_brackets("hyperband", 2_000, 18_000, 3, 300_000)
    trials = len(study.history().trials)
    assert trials > planned.total_trials  # the leftover money bought more iterations
    total = check_books(store, spec, study)
    assert total <= 300_000
    again_spec, again, _ = run_sim(store, cfg)  # resuming covers the added iterations; nothing breaks
    assert len(again.history().trials) >= trials
    assert check_books(store, again_spec, again) <= 300_000


def test_logs_of_a_simulated_trial_says_why_there_are_none(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from costtune.cli import main

    db = f"sqlite:///{tmp_path / 's.db'}"
    store = Store(db)
    try:
        run_sim(store, sweep(budget={"trials": 1}))
    finally:
        store.close()
    result = CliRunner().invoke(main, ["logs", BASE["name"], "0", "--db", db])
    assert result.exit_code == 2
    assert "a simulated trial runs as a workload on a virtual clock and writes no logs" in result.output
    assert "never started" not in result.output
