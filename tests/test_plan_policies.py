"""Spend policies in `costtune plan` and `costtune policy status`: a hard cap that applies to a sweep's tags caps
what the plan says a run spends (the store only read), and a hard cap's window forecast never passes the cap."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from costtune.policies import parse_policy, span
from costtune.policies.status import window_rows
from plantools import cli as _cli
from storetools import sqlite_rows

from costtune.store import Store

POLICY = {"name": "p5", "scope": {"tags": {"team": "x"}}, "window": {"period": "daily"}, "cap_usd": 0.05}


def _sweep(tmp_path: Path, tags: dict[str, str]) -> Path:
    path = tmp_path / f"sweep-{len(tags)}.yaml"
    path.write_text(yaml.safe_dump({
        "name": "pol", "tags": tags, "objective": {"metric": "loss", "mode": "min"},
        "space": {"x": {"type": "uniform", "low": 0, "high": 1}}, "scheduler": {"type": "fifo"},
        "command": [sys.executable, "-c", "pass"], "budget": {"trials": 40, "usd": 0.5, "trial_seconds": 10},
        "resources": {"provider": "local", "usd_per_hour": 36, "workers": 2}}, sort_keys=False))
    return path


def test_a_plan_is_capped_by_the_tightest_hard_policy_cap_on_its_tags(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(POLICY))
    assert _cli("policy", "apply", str(tmp_path / "p.yaml"), "--db", str(db)).exit_code == 0
    before = sqlite_rows(db)
    result = _cli("plan", str(_sweep(tmp_path, {"team": "x"})), "--db", str(db), "--format", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    cap = out["policy_cap"]
    assert cap["policy"] == "p5" and cap["binds"] and cap["spend_micros"] == 50_000 == cap["left_micros"]
    assert cap["trials"] is not None and cap["trials"] < out["plan"]["trials"]
    assert any(n.startswith("policy p5: its hard cap_usd $0.05") and "stops at the policy's cap" in n
               for n in out["notes"])
    table = _cli("plan", str(_sweep(tmp_path, {"team": "x"})), "--db", str(db)).output
    assert "policy p5: hard cap, left now" in table and "$0.05 of $0.05" in table
    assert sqlite_rows(db) == before  # only read
    other = json.loads(_cli("plan", str(_sweep(tmp_path, {})), "--db", str(db), "--format", "json").stdout)
    assert other["policy_cap"] is None  # another team's sweep: the policy does not apply


def test_a_hard_caps_window_forecast_stops_at_the_cap(tmp_path: Path) -> None:
    """$0.03 spent two hours into a daily window runs at a pace of $0.30 by its end; the $0.05 hard cap stops
    launches there, so the forecast is the cap (the pace stays in JSON)."""
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    policy = parse_policy(POLICY)
    store.apply_policies([policy])
    window = span(policy, datetime.now(UTC))
    assert window.start is not None
    now = window.start + timedelta(hours=2)
    scope = span(policy, now).scope
    store.reserve("k1", [scope], 30_000)
    store.charge("k1", 30_000)
    (row,) = window_rows(store, [policy], now)
    assert row["forecast_pace_micros"] > 50_000
    assert row["forecast_micros"] == 50_000 and row["forecast_at_cap"] is True


def test_a_simulated_plans_forecast_stops_at_a_tighter_policy_cap_as_the_run_does(tmp_path: Path) -> None:
    """The forecast's runs were simulated under budget.usd alone ($2, ~150 trials) while `costtune run` stops at
    the policy's $0.05: the forecast now runs under the money the policy leaves, and says so."""
    db = tmp_path / "s.db"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(POLICY))
    assert _cli("policy", "apply", str(tmp_path / "p.yaml"), "--db", str(db)).exit_code == 0
    sweep = tmp_path / "sim.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": "polsim", "tags": {"team": "x"}, "objective": {"metric": "loss", "mode": "min"},
        "space": {f"x{i}": {"type": "uniform", "low": 0, "high": 1} for i in range(1, 7)},
        "sampler": {"type": "random", "seed": 3}, "budget": {"usd": 2.0},
        "resources": {"provider": "simulated", "region": "us-east-1", "instance_type": "m5.large",
                      "market": "on-demand", "simulation": {"workload": "costtune.demo.workloads:hartmann6",
                                                            "max_steps": 20, "startup_seconds": 60}}}))
    before = sqlite_rows(db)
    result = _cli("plan", str(sweep), "--db", str(db), "--format", "json", "--runs", "3")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    spends = [run["spend_micros"] for run in out["forecast"]["samples"]]
    assert spends and max(spends) <= 50_000 < out["plan"]["planned_micros"]
    assert any(n.startswith("the forecast runs under policy p5's hard cap: $0.05 left") for n in out["notes"])
    assert not any("outside the analytic plan" in n for n in out["notes"])  # compared with the policy's count
    assert sqlite_rows(db) == before  # only read


def test_a_cap_as_large_as_a_local_plan_says_so_and_that_unmeasured_start_up_may_start_fewer(tmp_path: Path) -> None:
    """A tester's local sweep under a $0.0012 policy cap: the plan said the policy "has $0.0012 left now, more than
    the plan's $0.0012" and the run started 3 of the ~10 trials (a 2 s start-up each, not counted: none measured
    yet). Equal is "as much as", the cap binds, and the note says the uncounted start-up may start fewer trials."""
    db = tmp_path / "s.db"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"name": "t1-cap", "scope": {"tags": {"team": "t1"}},
                                                     "cap_usd": 0.0012}))
    assert _cli("policy", "apply", str(tmp_path / "p.yaml"), "--db", str(db)).exit_code == 0
    sweep = tmp_path / "l1.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": "nu4-pol", "tags": {"team": "t1"}, "objective": {"metric": "loss", "mode": "min"},
        "space": {"x": {"type": "uniform", "low": -3, "high": 3}, "n": {"type": "int", "low": 1, "high": 8}},
        "sampler": {"type": "random", "seed": 1},
        "scheduler": {"type": "asha", "min_usd": 0.00001, "max_usd": 0.00027, "eta": 3},
        "budget": {"trials": 10, "usd": 0.02, "trial_seconds": 60},
        "resources": {"provider": "local", "usd_per_hour": 0.36, "workers": 2},
        "command": [sys.executable, "-c", "pass"]}, sort_keys=False))
    out = json.loads(_cli("plan", str(sweep), "--db", str(db), "--format", "json").stdout)
    [note] = [n for n in out["notes"] if n.startswith("policy t1-cap:")]
    assert "has $0.0012 left now, as much as the plan's $0.0012: the cap binds" in note
    assert "more than the plan's" not in note
    assert "counts no start-up per launch (none measured yet), so `costtune run` may start fewer trials" in note
