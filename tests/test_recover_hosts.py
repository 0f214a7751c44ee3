"""A local attempt another host ran is not judged from this host: `costtune run` leaves it open with
its money, says so, runs the rest of the sweep and ends (it does not wait for a dead controller)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from proctools import silence_heartbeat

from costtune.history import TrialState
from costtune.store import Store


def test_run_leaves_another_hosts_open_attempt_alone_and_ends(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'store.db'}"
    (tmp_path / "trial.py").write_text('print(\'costtune:report {"loss": 1.0}\', flush=True)\n')
    doc = {"name": "hosts", "objective": {"metric": "loss", "mode": "min"},
           "space": {"x": {"type": "uniform", "low": 0, "high": 1}}, "budget": {"trials": 2},
           "resources": {"usd_per_hour": 36}, "command": ["python", "trial.py"]}
    file = tmp_path / "sweep.yaml"
    file.write_text(yaml.safe_dump(doc))
    store = Store(db)
    try:  # trial 0: run by a controller on another machine whose heartbeats stopped 10 minutes ago
        info = store.create_study("hosts", metric="loss", mode="min", space=doc["space"], sampler={"type": "random"},
                                  queued=[{"x": 0.5}], spec=doc)
        claimed = store.claim_next(info.id, None, owner="far.example:77:1")
        assert claimed is not None
        store.start_attempt(claimed.id, 1, idempotency_key=f"{info.id}-{claimed.id}-1", provider="local",
                            rate_micros_per_hour=36_000_000, host="far.example")
        store.reserve(f"{info.id}-{claimed.id}-1", [f"study:{info.id}"], 70_000)
        silence_heartbeat(store, claimed.id)
    finally:
        store.close()
    done = subprocess.run(["costtune", "run", str(file), "--db", db], cwd=tmp_path, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ran on host far.example, which this host cannot see" in done.stdout + done.stderr
    store = Store(db)
    try:
        trials = store.history(info.id).trials
        assert [t.state for t in trials] == [TrialState.RUNNING, TrialState.COMPLETE]
        [left] = store.attempts(info.id, 0)
        assert (left.ended_at, left.exit_reason) == (None, None)
        assert store.balance(f"study:{info.id}").reserved_micros == 70_000  # still held for far.example
    finally:
        store.close()
