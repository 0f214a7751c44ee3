"""Leaderboard and report cost columns on a simulated spot sweep with preemptions."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from costtune.cli import main
from costtune.schedulers import rung_ladder
from costtune.store import Store
from costtune.store.reads import attempt_rows, trial_costs

STUDY = "sim-cost"


def write_sim_sweep(path: Path, name: str = STUDY) -> Path:
    """A small simulated ASHA sweep on two spot instance types, preempted often enough to waste money."""
    spec = {
        "name": name,
        "objective": {"metric": "loss", "mode": "min"},
        "space": {f"x{i}": {"type": "uniform", "low": 0, "high": 1} for i in range(1, 7)},
        "sampler": {"type": "random", "seed": 3},
        "scheduler": {"type": "asha", "min_usd": 0.002, "max_usd": 0.054, "eta": 3},
        "budget": {"usd": 0.5},
        "resources": {
            "provider": "simulated", "region": "us-east-1",
            "instance_type": {"type": "categorical", "choices": ["m5.large", "c5.xlarge"]},
            "market": "spot", "workers": 4,
            "simulation": {"workload": "costtune.demo.workloads:hartmann6", "max_steps": 20,
                           "startup_seconds": 30, "preemptions_per_hour": 2, "seed": 0},
        },
    }
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def run_sim_sweep(tmp: Path) -> str:
    """Run the sweep through the CLI; return the store URL."""
    url = f"sqlite:///{tmp / 'sim.db'}"
    result = CliRunner().invoke(main, ["run", str(write_sim_sweep(tmp / "sweep.yaml")), "--db", url, "--quiet"])
    assert result.exit_code == 0, result.output
    return url


@pytest.fixture(scope="module")
def sim_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return run_sim_sweep(tmp_path_factory.mktemp("sim"))


def _attempts(url: str) -> list:  # type: ignore[type-arg]
    store = Store(url)
    try:
        return attempt_rows(store, store.get_study(STUDY).id)
    finally:
        store.close()


def _cli_json(*args: str) -> dict:  # type: ignore[type-arg]
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_leaderboard_json_has_the_cost_columns_of_every_trial(sim_db: str) -> None:
    attempts = _attempts(sim_db)
    assert any(a.exit_reason == "preempted" for a in attempts), "the sweep should see preemptions"
    data = _cli_json("leaderboard", STUDY, "--db", sim_db, "--format", "json")
    ladder = rung_ladder(2_000, 54_000, 3)
    assert data["rung_levels_micros"] == list(ladder)
    preempted = Counter(a.trial for a in attempts if a.exit_reason == "preempted")
    waste = Counter()
    for a in attempts:
        waste[a.trial] += a.waste_micros
    last = {a.trial: a for a in attempts}  # attempt_rows is ordered, so the last one wins
    store = Store(sim_db)
    verdicts = {t.number: t.verdicts for t in store.history(store.get_study(STUDY).id).trials}
    store.close()
    for row in data["trials"]:
        n = row["trial"]
        assert {"rank", "state", "value", "params", "cost_usd", "cost_micros", "attempts", "last_step"} <= set(row)
        assert row["preemptions"] == preempted[n]
        assert row["waste_micros"] == waste[n] and row["waste_usd"] is not None
        if n not in last:  # queued when the budget ran out: never launched
            assert row["attempts"] == 0 and row["instance_type"] is None and row["preemptions"] == 0
            continue
        assert (row["instance_type"], row["market"]) == (last[n].instance_type, last[n].market)
        assert row["instance_type"] == row["params"]["instance_type"] and row["market"] == "spot"
        if verdicts[n]:  # the highest level it was judged at, as stored when judged (when its spend
            # reached the rung: a stopped one may end a billing granule below it)
            assert row["rung_micros"] in ladder and row["rung_micros"] == max(level for level, _v, _up in verdicts[n])
        else:
            assert row["cost_micros"] < ladder[0]
            assert row["rung_micros"] is None and row["rung_usd"] is None
    assert sum(r["preemptions"] for r in data["trials"]) == sum(preempted.values()) > 0
    assert sum(r["waste_micros"] for r in data["trials"]) == sum(a.waste_micros for a in attempts) > 0


def test_leaderboard_csv_and_table_carry_the_cost_columns(sim_db: str) -> None:
    result = CliRunner().invoke(main, ["leaderboard", STUDY, "--db", sim_db, "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    head = next(csv.reader(io.StringIO(result.output)))
    assert head[:9] == ["rank", "trial", "state", "value", "cost_usd", "cost_micros", "duration_s", "attempts",
                        "last_step"]  # the old columns keep their places
    assert head[-8:] == ["rung_usd", "rung_micros", "instance_type", "market", "preemptions", "waste_usd",
                         "waste_micros", "charged_s"]
    assert sum(int(r["preemptions"]) for r in rows) == sum(a.exit_reason == "preempted" for a in _attempts(sim_db))
    result = CliRunner().invoke(main, ["leaderboard", STUDY, "--db", sim_db, "--limit", "5"])
    assert result.exit_code == 0, result.output
    for column in ("$ at rung", "instance", "market", "preempt", "re-run $", "last step"):
        assert column in result.output


def test_report_json_waste_and_spend_by_instance_add_up(sim_db: str) -> None:
    attempts = _attempts(sim_db)
    data = _cli_json("report", STUDY, "--db", sim_db, "--format", "json")
    total = data["summary"]["total_micros"]
    p = data["preemption"]
    assert p["waste_micros"] == sum(a.waste_micros for a in attempts) > 0
    assert p["preemptions"] == sum(a.exit_reason == "preempted" for a in attempts)
    assert p["spend_micros"] == total and p["waste_pct_of_spend"] == round(100 * p["waste_micros"] / total, 2)
    assert sum(r["waste_micros"] for r in data["waste_by_trial"]) == p["waste_micros"]
    assert sum(r["preemptions"] for r in data["waste_by_trial"]) == p["preemptions"]
    spend = data["spend_by_placement"]
    assert sum(g["cost_micros"] for g in spend) == total
    assert {g["instance_type"] for g in spend} <= {"m5.large", "c5.xlarge"}
    classes = ("useful", "stopped", "failed", "rerun", "unfinished")
    assert all(sum(g[f"{k}_micros"] for k in classes) == g["cost_micros"] for g in spend)
    assert sum(g["rerun_micros"] for g in spend) == p["waste_micros"] == data["summary"]["classes"]["rerun"]["micros"]
    costs = trial_costs(attempts)
    steps = {r["instance_type"]: r for r in data["steps_per_dollar"]}
    assert set(steps) <= {"m5.large", "c5.xlarge"} and steps
    assert sum(r["trials"] for r in steps.values()) <= len(costs)
    assert all(r["median_steps_per_usd"] > 0 for r in steps.values())
    # the cost-per-improvement table, the best-vs-spend curve's data and the Pareto front are still there
    assert data["cost_per_improvement"] and data["pareto"]


@pytest.mark.parametrize("section", ["improvements", "waste", "spend", "steps"])
def test_report_csv_sections(sim_db: str, section: str) -> None:
    result = CliRunner().invoke(main, ["report", STUDY, "--db", sim_db, "--format", "csv", "--section", section])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert rows
    if section == "spend":
        total = _cli_json("report", STUDY, "--db", sim_db, "--format", "json")["summary"]["total_micros"]
        assert sum(int(r["cost_micros"]) for r in rows) == total


def test_report_table_shows_waste_spend_and_steps_per_dollar(sim_db: str) -> None:
    result = CliRunner().invoke(main, ["report", STUDY, "--db", sim_db])
    assert result.exit_code == 0, result.output
    for text in ("cost per improvement", "Pareto front", "preemptions:", "spend by instance type and market",
                 "steps per dollar", "re-run money by trial", "where the money went"):
        assert text in result.output


@pytest.mark.parametrize("command", ["leaderboard", "report"])
def test_unknown_study_exits_non_zero_naming_it(sim_db: str, command: str) -> None:
    result = CliRunner().invoke(main, [command, "no-such-sweep", "--db", sim_db, "--format", "json"])
    assert result.exit_code != 0 and "no-such-sweep" in result.output
