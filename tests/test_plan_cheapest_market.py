"""`costtune plan` of `market: cheapest-expected`: each configuration on the market the controller chooses at
launch (spot when its expected cost is lower), with that market's preemptions, not as on-demand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from costtune.cli import main

SWEEP: dict[str, Any] = {  # the new-user test's sweep: the run put every launch on spot (63 preemptions)
    "name": "cheapexp",
    "objective": {"metric": "loss", "mode": "min"},
    "space": {f"x{i}": {"type": "uniform", "low": 0, "high": 1} for i in range(1, 7)},
    "sampler": {"type": "random", "seed": 3},
    "scheduler": {"type": "fifo"},
    "budget": {"usd": 0.80, "trials": 8},
    "resources": {
        "provider": "simulated", "region": "us-east-1", "market": "cheapest-expected", "workers": 3,
        "instance_type": {"type": "categorical", "choices": ["t3.medium", "c6i.xlarge", "r5.xlarge"]},
        "simulation": {"workload": "costtune.demo.workloads:hartmann6", "max_steps": 300, "startup_seconds": 45,
                       "preemptions_per_hour": 3, "seed": 1},
    },
}


def _plan(tmp_path: Path, per_hour: float) -> dict[str, Any]:
    data = json.loads(json.dumps(SWEEP))
    data["resources"]["simulation"]["preemptions_per_hour"] = per_hour
    path = tmp_path / f"sweep{per_hour}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result: Result = CliRunner().invoke(main, ["plan", str(path), "--db", str(tmp_path / "none.db"), "--format",
                                               "json", "--no-forecast"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cheapest_expected_is_planned_on_the_market_the_controller_chooses(tmp_path: Path) -> None:
    """At 3 preemptions/h spot is cheaper for every configuration: the plan expects preemptions (the run had 63;
    the plan said 0.0 and "on-demand instances are not preempted"); at 200/h spot never pays and it plans
    on-demand. The per-launch table lists the markets launches run on, not the reservation rate."""
    out = _plan(tmp_path, 3)
    assert out["preemption"]["expected"] > 20, out["preemption"]
    assert not any("not preempted" in n for n in out["notes"])
    assert any("market cheapest-expected: spot for 48 of the 48" in n for n in out["notes"]), out["notes"]
    assert {o["market"] for o in out["overheads"]} == {"spot", "on-demand"}
    never = _plan(tmp_path, 200)
    assert never["preemption"]["expected"] == 0
    assert any("market cheapest-expected: spot for 0 of the 48" in n for n in never["notes"]), never["notes"]
