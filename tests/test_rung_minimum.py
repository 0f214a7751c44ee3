"""Rungs chosen for a tiny budget.usd can sit below the minimum charge of every placement (AWS bills 60 s at least):
`costtune plan` and `costtune run` warn, naming the rung, the cheapest placement's minimum charge and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from costtune.cli import main

SWEEP: dict[str, Any] = {
    "name": "tiny",
    "objective": {"metric": "loss", "mode": "min"},
    "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
    "sampler": {"type": "random", "seed": 5},
    "scheduler": {"type": "asha"},
    "budget": {"usd": 0.05},  # max_usd $0.0025, min_usd lowered to $0.000833; 60 s of m5.large is $0.0016
    "resources": {
        "provider": "simulated", "region": "us-east-1", "instance_type": "m5.large", "market": "on-demand",
        "workers": 2,
        "simulation": {"workload": "simworkloads:steady", "max_steps": 20, "startup_seconds": 30, "seed": 0,
                       "preemptions_per_hour": 0},
    },
}
WARNING = ("warning: scheduler.min_usd: the first rung, $0.000833 (chosen from budget.usd), is below the minimum "
           "charge of the cheapest placement, $0.0016 (60 s at $0.096/h on m5.large on-demand)")



def _file(tmp_path: Path, **changes: Any) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({**SWEEP, **changes}, sort_keys=False))
    return path


def _cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_plan_and_run_warn_when_the_chosen_first_rung_is_below_the_minimum_charge(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    path = str(_file(tmp_path))
    plan = _cli("plan", path, "--db", db, "--no-forecast")
    assert plan.exit_code == 0, plan.stderr
    said = " ".join(plan.stderr.split())
    assert WARNING in said
    assert "raise budget.usd to at least $0.096" in said and "give scheduler.min_usd of at least $0.0016" in said
    ran = _cli("run", path, "--db", db, "--quiet")
    assert ran.exit_code == 0, ran.output
    assert " ".join(ran.stderr.split()).startswith(WARNING)  # at the start, before anything ran
    again = " ".join(_cli("run", path, "--db", db, "--quiet").stderr.split())
    assert WARNING in again and "this study keeps its rungs; for a new study, raise budget.usd" in again
    # what it advises makes the warning go away
    for fixed in (_file(tmp_path, name="raised", budget={"usd": 0.096}),
                  _file(tmp_path, name="given", scheduler={"type": "asha", "min_usd": 0.0016})):
        assert "first rung" not in _cli("plan", str(fixed), "--db", db, "--no-forecast").stderr


def test_the_cheapest_placement_is_named(tmp_path: Path) -> None:
    resources = {**SWEEP["resources"], "instance_type": {"type": "categorical", "choices": ["c5.xlarge", "m5.large"]}}
    plan = _cli("plan", str(_file(tmp_path, resources=resources)), "--no-forecast", "--format", "json")
    assert plan.exit_code == 0, plan.stderr
    assert "minimum charge of the cheapest placement, $0.0016 (60 s at $0.096/h on m5.large on-demand)" in " ".join(
        plan.stderr.split())


def test_no_warning_for_a_first_rung_at_or_above_the_minimum_charge(tmp_path: Path) -> None:
    plan = _cli("plan", str(_file(tmp_path, budget={"usd": 0.1})), "--no-forecast")  # min_usd $0.00167
    assert plan.exit_code == 0, plan.stderr
    assert "first rung" not in plan.stderr
