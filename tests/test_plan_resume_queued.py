"""`costtune plan` of a study holding queued trials: they are the next run's, not what the study already ran."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from plantools import cli as _cli

FIFO: dict[str, Any] = {  # the new-user test's fifo sweep: its $0.40 cap stops it with trial 3 queued
    "name": "fifo",
    "objective": {"metric": "loss", "mode": "min"},
    "space": {f"x{i}": {"type": "uniform", "low": 0, "high": 1} for i in range(1, 7)},
    "sampler": {"type": "random", "seed": 3},
    "scheduler": {"type": "fifo"},
    "budget": {"usd": 0.40},
    "resources": {
        "provider": "simulated", "region": "us-east-1", "market": "on-demand", "workers": 3,
        "instance_type": {"type": "categorical", "choices": ["t3.medium", "c6i.xlarge", "r5.xlarge"]},
        "simulation": {"workload": "costtune.demo.workloads:hartmann6", "max_steps": 300, "startup_seconds": 45,
                       "seed": 1},
    },
}


def _sweep(tmp_path: Path, file: str, budget: dict[str, Any]) -> Path:
    path = tmp_path / file
    path.write_text(yaml.safe_dump({**FIFO, "budget": budget}, sort_keys=False))
    return path


def _trials(db: Path) -> list[dict[str, Any]]:
    return json.loads(_cli("trials", "fifo", "--db", str(db), "--format", "json").stdout)


def _finished(db: Path) -> int:
    return sum(t["state"] in ("complete", "stopped", "failed") for t in _trials(db))


def test_queued_trials_are_part_of_what_the_next_run_adds(tmp_path: Path) -> None:
    """The study holds 4 trials, 3 finished and 1 queued: the plan says 3 already run, and this run adds the
    queued one with the 2 budget.trials still allows (the plan said 2 and $0.82; the run did 3 for $1.28)."""
    db = tmp_path / "user.db"
    assert _cli("run", str(_sweep(tmp_path, "capped.yaml", {"usd": 0.40})), "--db", str(db), "--quiet"
                ).exit_code == 0
    states = [t["state"] for t in _trials(db)]
    queued = states.count("queued")
    assert queued >= 1, states  # the cap stopped it with a trial queued
    done = _finished(db)
    spent = sum(t["cost_micros"] for t in _trials(db))
    six = _sweep(tmp_path, "six.yaml", {"trials": 6})
    args = ("plan", str(six), "--db", str(db), "--no-forecast", "--change-cap")
    out = json.loads(_cli(*args, "--format", "json").stdout)
    assert out["resumes"]["trials_finished"] == done and out["resumes"]["trials_queued"] == queued
    adds = out["this_run"]["trials"]
    assert adds == 6 - done == out["this_run"]["trials_left"]
    text = _cli(*args).output
    assert "already run (the study so far)" in text and f"{done} trials finished" in text, text
    assert "queued (this run runs them first)" in text
    assert _cli("run", str(six), "--db", str(db), "--quiet", "--change-cap").exit_code == 0
    assert _finished(db) - done == adds
    added = sum(t["cost_micros"] for t in _trials(db)) - spent
    assert abs(out["this_run"]["spend_micros"] - added) < 0.35 * added, (out["this_run"], added)
