"""`costtune plan` of Hyperband sweeps counts the iterations `costtune run` adds at the plan's end (the controller's
rule: what is left of the cap holds another), for a new study and a resumed one, and its tables agree: the whole
study is what it holds and what the next run adds, with never fewer launches than trials."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from plantools import cli as _cli
from plantools import plan_json as _plan


def _sweep(tmp_path: Path, usd: float, file: str) -> Path:
    data: dict[str, Any] = {
        "name": "hb", "objective": {"metric": "loss", "mode": "min"},
        "space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 1.0},
                  "width": {"type": "int", "low": 16, "high": 512, "log": True}},
        "sampler": {"type": "random", "seed": 3}, "scheduler": {"type": "hyperband"}, "budget": {"usd": usd},
        "resources": {"provider": "simulated", "region": "us-east-1",
                      "instance_type": {"type": "categorical", "choices": ["m5.large", "c5.xlarge", "g4dn.xlarge"]},
                      "market": "spot", "workers": 3,
                      "simulation": {"workload": "costtune.demo.workloads:mlp_curve", "max_steps": 5,
                                     "startup_seconds": 90, "seed": 0, "preemptions_per_hour": 1.0}},
    }
    path = tmp_path / file
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _held(db: Path) -> tuple[int, int]:
    rows = json.loads(_cli("trials", "hb", "--db", str(db), "--format", "json").stdout)
    return len(rows), sum(r["cost_micros"] for r in rows)


def test_a_new_hyperband_plan_counts_the_iterations_the_run_adds(tmp_path: Path) -> None:
    path, db = _sweep(tmp_path, 0.50, "hb.yaml"), tmp_path / "s.db"
    plan = _plan(path, db)
    p = plan["plan"]
    assert _cli("run", str(path), "--db", str(db), "--quiet").exit_code == 0
    trials, spent = _held(db)
    assert p["iterations"] > 1 and p["trials"] == trials  # the cap held another iteration, as the run found
    assert plan["launches"] >= p["trials"]
    assert abs(p["total_micros"] - spent) < 0.25 * spent
    assert any("holds another" in n for n in plan["notes"])


def test_a_resumed_hyperband_plans_tables_agree(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    assert _cli("run", str(_sweep(tmp_path, 0.50, "hb.yaml")), "--db", str(db), "--quiet").exit_code == 0
    held, spent = _held(db)
    for usd in (0.50, 0.80):  # the same cap (nothing left to add) and a raised one
        plan = _plan(_sweep(tmp_path, usd, f"hb{usd}.yaml"), db, "--change-cap")
        p, run = plan["plan"], plan["this_run"]
        assert p["trials"] == held + run["trials"]
        assert plan["launches"] >= p["trials"]
        assert p["total_micros"] == spent + run["spend_micros"]
        assert p["total_micros"] <= round(usd * 1e6)
