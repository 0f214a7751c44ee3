"""Spend policies' launch rules in `costtune plan`: the plan prices the placements `costtune run` admits (the store
only read). From a new user's report: a spot-only policy denied every placement of an on-demand sweep, yet the plan
forecast $0.412; under an amending policy the run spent $0.198 where the plan said median $0.326 (p10 $0.276)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from plantools import cli as _cli
from storetools import sqlite_rows

from costtune.store import Store

SPOT_ONLY = {"name": "am", "scope": {"tags": {"team": "nlp"}}, "rules": {"allowed_markets": ["spot"], "amend": True}}


def _sweep(tmp_path: Path, market: Any) -> Path:
    """The reported sweep (searched instance types, ASHA in dollars, simulated), made smaller."""
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({
        "name": "fin-a", "tags": {"team": "nlp", "cost_centre": "cc-100"},
        "objective": {"metric": "loss", "mode": "min"},
        "space": {"lr": {"type": "loguniform", "low": 0.0001, "high": 0.1},
                  "width": {"type": "int", "low": 16, "high": 1024, "log": True},
                  "layers": {"type": "int", "low": 1, "high": 4},
                  "batch": {"type": "categorical", "choices": [32, 64, 128, 256]}},
        "sampler": {"type": "random", "seed": 3}, "scheduler": {"type": "asha", "min_usd": 0.0072, "max_usd": 0.05,
                                                                 "eta": 3},
        "budget": {"usd": 2.0, "trials": 12},
        "resources": {"provider": "simulated", "region": "us-east-1",
                      "instance_type": {"type": "categorical", "choices": ["m5.large", "c5.xlarge", "g4dn.xlarge"]},
                      "market": market, "workers": 3,
                      "simulation": {"workload": "costtune.demo.bench_workloads:mlp_tabular", "max_steps": 9,
                                     "startup_seconds": 60, "preemptions_per_hour": 0.5, "seed": 1}}},
        sort_keys=False))
    return path


def _store(tmp_path: Path, name: str, policy: dict[str, Any]) -> Path:
    db = tmp_path / name
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(policy))
    assert _cli("policy", "apply", str(tmp_path / "p.yaml"), "--db", str(db)).exit_code == 0
    return db


def test_a_plan_says_no_trial_starts_when_a_policy_denies_every_placement(tmp_path: Path) -> None:
    """`policy explain` denied every placement and `costtune run` started nothing, yet the plan forecast money."""
    db, sweep = _store(tmp_path, "s.db", SPOT_ONLY), _sweep(tmp_path, "on-demand")
    before = sqlite_rows(db)
    result = _cli("plan", str(sweep), "--db", str(db), "--format", "json", "--runs", "2", "--jobs", "1")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["forecast"] is None  # skipped: nothing would run
    assert out["plan"]["trials"] == 0 and out["plan"]["planned_micros"] == 0 == out["plan"]["total_micros"]
    assert out["launch_rules"]["all_denied"] is True
    assert {p["verdict"] for p in out["launch_rules"]["placements"]} == {"deny"}
    assert out["notes"][0].startswith("`costtune run` starts no trial: policy am denies every placement of the "
                                      "sweep (m5.large on-demand, c5.xlarge on-demand, g4dn.xlarge on-demand): "
                                      "rules.allowed_markets: market on-demand is not one of spot")
    table = _cli("plan", str(sweep), "--db", str(db), "--no-forecast").output
    assert "deny every placement: no trial starts" in table and "forecast" not in table.split("note:")[0]
    assert sqlite_rows(db) == before  # only read
    run = _cli("run", str(sweep), "--db", str(_store(tmp_path, "run.db", SPOT_ONLY)), "--quiet")
    assert run.exit_code == 1 and "a spend policy blocked every launch" in run.output  # as the plan says


def test_an_amending_policy_is_planned_and_forecast_where_the_run_launches(tmp_path: Path) -> None:
    """The amend moves on-demand trials to spot: the forecast's runs admit launches as the run does, so the run
    with the forecast's first seeds spends exactly what that forecast run spent; the analytic plan prices the
    spot placements only."""
    market = {"type": "categorical", "choices": ["on-demand", "spot"]}
    db, sweep = _store(tmp_path, "s.db", SPOT_ONLY), _sweep(tmp_path, market)
    before = sqlite_rows(db)
    result = _cli("plan", str(sweep), "--db", str(db), "--format", "json", "--runs", "1", "--jobs", "1")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    run_db = _store(tmp_path, "run.db", SPOT_ONLY)
    assert _cli("run", str(sweep), "--db", str(run_db), "--quiet").exit_code == 0
    store = Store(f"sqlite:///{run_db}")
    try:
        (study,) = store.list_studies()
        spent = store.balance(f"study:{study.id}").spent_micros
    finally:
        store.close()
    assert out["forecast"]["samples"][0]["spend_micros"] == spent  # the run's seeds: the same launches, the same $
    rules = out["launch_rules"]
    assert rules["all_denied"] is False
    assert {(p["instance_type"], p["market"]): p["verdict"] for p in rules["placements"]} == {
        (t, m): "allow" if m == "spot" else "amend" for t in ("m5.large", "c5.xlarge", "g4dn.xlarge")
        for m in ("on-demand", "spot")}
    assert {o["market"] for o in out["overheads"]} == {"spot"}  # where the run launches
    assert any(n.startswith("spend policies' launch rules: `costtune run` launches m5.large on-demand as m5.large "
                            "spot") for n in out["notes"])
    assert sqlite_rows(db) == before  # only read
