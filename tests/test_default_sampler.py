"""The sampler a sweep file gets when it names none: cost-aware Bayes under a dollar budget on priced
resources (what the benchmarks found cheapest to a target), random otherwise; a resumed study keeps
the sampler it was created with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from costtune.providers import make_provider

from costtune.cli import main
from costtune.errors import SpecError
from costtune.runner.controller import SweepController
from costtune.runner.session import open_sweep
from costtune.spec import parse_sweep
from costtune.store import Store


def sweep(**top: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": "defaults",
        "objective": {"metric": "loss", "mode": "min"},
        "space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
                  "width": {"type": "int", "low": 16, "high": 256}},
        "budget": {"usd": 0.5},
        "resources": {"provider": "simulated", "instance_type": "m5.large", "region": "us-east-1",
                      "simulation": {"workload": "costtune.demo.workloads:mlp_curve", "max_steps": 3,
                                     "preemptions_per_hour": 0}},
    }
    cfg.update(top)
    return {k: v for k, v in cfg.items() if v is not None}


def test_a_dollar_budget_on_priced_instances_gets_cost_aware_bayes() -> None:
    spec = parse_sweep(sweep())
    assert spec.sampler["type"] == "bayes" and spec.sampler["cost_aware"] is True
    assert spec.sampler["n_startup"] == 5


def test_a_section_without_type_keeps_its_seed_and_gets_the_default_type() -> None:
    spec = parse_sweep(sweep(sampler={"seed": 7}))
    assert (spec.sampler["type"], spec.sampler["seed"], spec.sampler["cost_aware"]) == ("bayes", 7, True)


def test_a_trial_budget_alone_gets_random_search() -> None:
    spec = parse_sweep(sweep(budget={"trials": 4}))
    assert spec.sampler["type"] == "random"


def test_a_named_sampler_is_honoured_as_written() -> None:
    spec = parse_sweep(sweep(sampler={"type": "random", "seed": 3}))
    assert spec.sampler == {"type": "random", "seed": 3, "configs": []}
    plain = parse_sweep(sweep(sampler={"type": "bayes", "seed": 3}))
    assert "cost_aware" not in plain.sampler and plain.sampler["n_startup"] == 10


def test_an_unpriced_local_sweep_gets_random_search() -> None:
    cfg = sweep(budget={"trials": 3, "usd": None}, command=["python", "train.py", "{lr}"],
                resources={"provider": "local"})
    assert parse_sweep(cfg).sampler["type"] == "random"


def test_a_bayes_only_field_without_type_is_checked_by_the_default_bayes() -> None:
    spec = parse_sweep(sweep(sampler={"n_startup": 3}))
    assert spec.sampler["n_startup"] == 3
    with pytest.raises(SpecError) as err:
        parse_sweep(sweep(sampler={"n_startup": 0}))
    assert err.value.path == "sampler.n_startup" and "0" in str(err.value)


def test_a_study_made_with_random_resumes_with_random_when_the_file_names_no_type(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        first = parse_sweep(sweep(sampler={"type": "random", "seed": 1}, budget={"usd": 0.5, "trials": 2}))
        study, resumed = open_sweep(store, first)
        assert not resumed
        provider = make_provider("simulated", simulation=first.resources.simulation, metric=first.metric)
        SweepController(first, study, provider, trial_events=False).run()
        again = parse_sweep(sweep(budget={"usd": 0.5, "trials": 4}))  # no sampler section: default is bayes
        study, resumed = open_sweep(store, again)
        assert resumed and study.info.sampler["type"] == "random" and study.info.sampler["seed"] == 1
        with pytest.raises(Exception, match=r"sampler\.type"):  # naming another type is still refused
            open_sweep(store, parse_sweep(sweep(sampler={"type": "bayes"}, budget={"usd": 0.5, "trials": 4})))
    finally:
        store.close()


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COSTTUNE_DB"} | {"COSTTUNE_HOME": str(tmp_path / "home")}
    return subprocess.run([sys.executable, "-m", "costtune.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)


def _cli_in_process(tmp_path: Path, *args: str) -> Result:
    """``_cli``'s command through the CLI's own code in this process, with the same store (COSTTUNE_HOME's)."""
    result = CliRunner().invoke(main, list(args), catch_exceptions=False,
                                env={"COSTTUNE_DB": None, "COSTTUNE_HOME": str(tmp_path / "home")})
    assert result.exit_code == 0, result.output
    return result


def test_run_plan_and_studies_name_the_sampler_and_a_resume_says_what_it_keeps(tmp_path: Path) -> None:
    first = sweep(sampler={"type": "random", "seed": 3}, budget={"usd": 0.5, "trials": 2})
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(first))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(sweep(sampler={"seed": 9}, budget={"usd": 0.5, "trials": 3})))
    made = _cli(tmp_path, "run", "a.yaml")
    assert made.returncode == 0, made.stderr
    assert "sampler random (seed 3), scheduler curve" in made.stderr
    # the read-only commands through the CLI's code in this process (a process start each was most of the time);
    # the runs themselves as real `costtune run` processes
    plan = _cli_in_process(tmp_path, "plan", str(tmp_path / "b.yaml"), "--no-forecast", "--format", "json")
    assert json.loads(plan.stdout)["sampler"]["type"] == "random"  # what run would resume with, not the file alone
    again = _cli(tmp_path, "run", "b.yaml")
    assert again.returncode == 0, again.stderr
    assert "warning: sampler.seed: study 'defaults' keeps 3 (the file says 9)" in again.stderr
    assert "sampler random (seed 3)" in again.stderr
    listed = json.loads(_cli_in_process(tmp_path, "studies", "--format", "json").stdout)
    assert [s["scheduler_detail"] for s in listed] == ["curve (95% confidence, 5 points, ratio 2)"]
    assert [(s["name"], s["sampler"], s["scheduler"], s["trials"]) for s in listed] == [
        ("defaults", "random (seed 3)", "curve", 3)]
