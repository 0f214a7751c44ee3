"""`costtune plan`: the dollar plan of a sweep and its simulated spend forecast, with nothing stored."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from costtune.cli import main
from costtune.money import usd_to_micros
from costtune.schedulers import plan_brackets, rung_ladder

SWEEP: dict[str, Any] = {
    "name": "plan-hb",
    "objective": {"metric": "loss", "mode": "min"},
    "space": {f"x{i}": {"type": "uniform", "low": 0, "high": 1} for i in range(1, 7)},
    "sampler": {"type": "random", "seed": 1},
    "scheduler": {"type": "hyperband", "min_usd": 0.002, "max_usd": 0.054, "eta": 3},
    "budget": {"usd": 1},
    "resources": {
        "provider": "simulated", "region": "us-east-1", "market": "spot", "workers": 8,
        "instance_type": {"type": "categorical", "choices": ["m5.large", "c5.xlarge", "g4dn.xlarge"]},
        "simulation": {"workload": "costtune.demo.workloads:hartmann6", "max_steps": 50, "startup_seconds": 60,
                       "preemptions_per_hour": 0.5, "seed": 0},
    },
}


@pytest.fixture(autouse=True)
def _no_user_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point every default location into tmp_path, so a test can see that plan created nothing there."""
    monkeypatch.setenv("COSTTUNE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COSTTUNE_DB", str(tmp_path / "home" / "user.db"))


def _sweep(tmp_path: Path, file: str = "sweep.yaml", **changes: Any) -> Path:
    data = json.loads(json.dumps(SWEEP))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = data
        for key in parents:
            node = node[key]
        node[leaf] = value
    path = tmp_path / file
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _plan_json(path: Path, runs: int) -> dict[str, Any]:
    result = _cli("plan", str(path), "--runs", str(runs), "--format", "json", "--quiet")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_hyperband_brackets_match_plan_brackets(tmp_path: Path) -> None:
    path = _sweep(tmp_path)
    out = _plan_json(path, 1)
    expected = plan_brackets("hyperband", 2000, 54000, 3, usd_to_micros(1))
    brackets = out["plan"]["brackets"]
    assert [b["trials_per_rung"] for b in brackets] == [list(b.trials_per_rung) for b in expected.brackets]
    assert [b["rungs_micros"] for b in brackets] == [list(b.rungs) for b in expected.brackets]
    assert [b["cost_micros"] for b in brackets] == [b.cost_micros for b in expected.brackets]
    assert out["plan"]["iterations"] == expected.iterations
    assert out["plan"]["trials"] == expected.total_trials
    assert out["plan"]["planned_micros"] == expected.total_cost_micros
    # the table shows the same brackets, in dollars
    table = _cli("plan", str(path), "--runs", "1", "--quiet").stdout
    assert "hyperband brackets" in table and "27 9 3 1" in table and "$0.054" in table
    assert not (tmp_path / "home").exists()  # plan never opens (or creates) the user's store


def test_forecast_is_close_to_actual_runs_with_other_seeds(tmp_path: Path) -> None:
    forecast = _plan_json(_sweep(tmp_path), 5)["forecast"]
    assert forecast["runs"] == 5
    spends = []
    for k in range(5):
        path = _sweep(tmp_path, f"actual-{k}.yaml", name=f"actual-{k}", sampler__seed=100 + k,
                      resources__simulation__seed=100 + k)
        db = tmp_path / f"actual-{k}.db"
        result = _cli("run", str(path), "--db", str(db), "--quiet")
        assert result.exit_code == 0, result.output
        board = json.loads(_cli("leaderboard", f"actual-{k}", "--db", str(db), "--format", "json").stdout)
        spends.append(sum(t["cost_micros"] for t in board["trials"]))
    actual = statistics.median(spends)
    predicted = forecast["spend_median_micros"]
    assert abs(predicted - actual) <= 0.15 * actual, (predicted, spends)
    assert forecast["spend_p10_micros"] <= predicted <= forecast["spend_p90_micros"]
    assert forecast["best_median"] is not None


def test_small_asha_budget_is_always_reached(tmp_path: Path) -> None:
    path = _sweep(tmp_path, scheduler={"type": "asha", "min_usd": 0.002, "max_usd": 0.054, "eta": 3},
                  budget={"usd": 0.2})
    out = _plan_json(path, 3)
    assert out["forecast"]["p_reach_cap"] == 1.0
    assert out["plan"]["ladder_micros"] == list(rung_ladder(2000, 54000, 3))
    assert out["plan"]["trials_estimated"] is True and out["plan"]["trials"] > 0


def test_json_holds_every_section(tmp_path: Path) -> None:
    out = _plan_json(_sweep(tmp_path), 2)
    assert {"name", "provider", "scheduler", "budget", "plan", "overheads", "launches", "overhead_micros",
            "preemption", "forecast", "notes"} <= out.keys()
    assert {"spend_median_usd", "spend_p10_usd", "spend_p90_usd", "p_reach_cap", "best_median",
            "samples"} <= out["forecast"].keys()
    assert len(out["forecast"]["samples"]) == 2
    assert {o["instance_type"] for o in out["overheads"]} == {"m5.large", "c5.xlarge", "g4dn.xlarge"}
    g4 = next(o for o in out["overheads"] if o["instance_type"] == "g4dn.xlarge")
    assert g4["minimum_seconds"] == 60 and g4["startup_micros"] == g4["minimum_micros"] > 0  # 60 s either way
    assert out["preemption"]["expected"] > 0 and out["preemption"]["per_hour"] == 0.5


def test_on_demand_has_no_preemption_waste(tmp_path: Path) -> None:
    out = _plan_json(_sweep(tmp_path, resources__market="on-demand"), 1)
    assert out["preemption"]["expected"] == 0 and out["preemption"]["waste_micros"] == 0
    assert out["forecast"]["samples"][0]["preemptions"] == 0


def test_local_sweep_gets_the_analytic_plan_only(tmp_path: Path) -> None:
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump({
        "name": "loc", "objective": {"metric": "loss"}, "space": {"lr": {"type": "loguniform", "low": 1e-4,
                                                                         "high": 0.1}},
        "command": ["python", "train.py", "--lr", "{lr}"],
        "scheduler": {"type": "sh", "min_usd": 0.01, "max_usd": 0.09}, "budget": {"usd": 2},
        "resources": {"provider": "local", "price_as": "aws/us-east-1/g4dn.xlarge"},
    }))
    out = _plan_json(path, 20)
    assert out["forecast"] is None
    assert out["plan"]["planned_micros"] == plan_brackets("sh", 10000, 90000, 3, 2_000_000).total_cost_micros
    assert any("workload model" in note for note in out["notes"])


@pytest.mark.parametrize(("changes", "field"), [
    ({"resources__workers": 0}, "resources.workers"),
    ({"budget": {"usd": 0.01}}, "budget.usd"),  # below the smallest hyperband plan, as `costtune run` says
    ({"scheduler": {"type": "hyperband", "min_usd": 0.01}}, "scheduler.max_usd"),
])
def test_bad_sweep_exits_2_naming_the_field(tmp_path: Path, changes: dict[str, Any], field: str) -> None:
    result = _cli("plan", str(_sweep(tmp_path, **changes)), "--quiet")
    assert result.exit_code == 2
    assert field in result.stderr
    assert not (tmp_path / "home").exists()


def test_missing_file_and_bad_runs_exit_2(tmp_path: Path) -> None:
    missing = _cli("plan", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    for runs in ("0", "-3"):
        result = _cli("plan", str(_sweep(tmp_path)), "--runs", runs)
        assert result.exit_code == 2 and "--runs" in result.stderr
