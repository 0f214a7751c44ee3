"""A rung plan's notes and warnings say what its table shows: one figure for the rungs, the start-up and the money
in all, the expected rung money of trials whose start-up outlasts the top rung, and no minimum-charge warning when
the start-up already covers the minimum before the first report the rungs count from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from click.testing import Result
from plantools import cli as _cli

from costtune.money import format_usd

HBSMALL: dict[str, Any] = {  # the new-user test's small Hyperband sweep: rungs of $0.000833 and $0.0025
    "name": "hbsmall",
    "objective": {"metric": "loss", "mode": "min"},
    "space": {f"x{i}": {"type": "uniform", "low": 0, "high": 1} for i in range(1, 7)},
    "sampler": {"type": "random", "seed": 5},
    "scheduler": {"type": "hyperband", "eta": 3},
    "budget": {"usd": 0.05},
    "resources": {
        "provider": "simulated", "region": "us-east-1", "market": "on-demand", "workers": 2,
        "instance_type": {"type": "categorical", "choices": ["c5.xlarge", "g4dn.xlarge"]},
        "simulation": {"workload": "costtune.demo.workloads:hartmann6", "max_steps": 500, "startup_seconds": 90,
                       "preemptions_per_hour": 0.5, "seed": 2},
    },
}


def _sweep(tmp_path: Path, file: str, **changes: Any) -> Path:
    path = tmp_path / file
    path.write_text(yaml.safe_dump({**HBSMALL, **changes}, sort_keys=False))
    return path


def _plan(path: Path, db: Path, *flags: str) -> Result:
    result = _cli("plan", str(path), "--db", str(db), "--format", "json", "--no-forecast", *flags)
    assert result.exit_code == 0, result.output
    return result


def test_rung_money_is_expected_past_a_long_start_up_and_the_note_repeats_the_table(tmp_path: Path) -> None:
    """90 s of start-up is more than the $0.0025 top rung buys on c5.xlarge: the rungs still count the money
    after the first report, so the expected rung money is not $0 (it read $0 beside $0.0458 planned), the cap
    note names the table's figures, and the 60 s minimum, covered by the start-up, is not warned about."""
    result = _plan(_sweep(tmp_path, "hbsmall.yaml"), tmp_path / "none.db")
    out = json.loads(result.stdout)
    p = out["plan"]
    assert p["expected_micros"] > 0.5 * p["planned_micros"] > 0, p
    (note,) = [n for n in out["notes"] if "the plan's rungs (" in n]
    assert f"the plan's rungs ({format_usd(p['expected_micros'])}) with start-up " \
           f"({format_usd(out['overhead_micros'])})" in note and f"come to {format_usd(p['total_micros'])}" in note
    assert "minimum charge" not in result.stderr and "judge start-up" not in result.stderr
    short = _plan(_sweep(tmp_path, "short.yaml", resources={
        **HBSMALL["resources"], "simulation": {**HBSMALL["resources"]["simulation"], "startup_seconds": 20}}),
        tmp_path / "none.db")
    assert "below the minimum charge of the cheapest placement" in " ".join(short.stderr.split())


def test_a_resumes_plan_has_no_note_from_the_plan_from_zero(tmp_path: Path) -> None:
    """The study ran under $0.05; raised to $0.15 its plan is what it spent and what this run adds, fitted to the
    cap left: no note quotes the plan from zero's rungs and trials (it said $2.37 and 126 trials beside a table of
    $2.04 and 109)."""
    db = tmp_path / "user.db"
    assert _cli("run", str(_sweep(tmp_path, "first.yaml")), "--db", str(db), "--quiet").exit_code == 0
    out = json.loads(_plan(_sweep(tmp_path, "raised.yaml", budget={"usd": 0.15}), db, "--change-cap").stdout)
    p = out["plan"]
    for note in out["notes"]:
        if "the plan's rungs (" in note:
            assert format_usd(p["expected_micros"]) in note and format_usd(p["total_micros"]) in note, note
            assert f"of the plan's {p['trials']} trials" in note or "of the plan's" not in note, note
