"""Pause and stop from the dashboard reach a real controller: a paused sweep launches nothing until
resumed, and a running trial asked to stop is terminated and booked stopped with its charge."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml
from starlette.testclient import TestClient

from costtune.server.dashboard.app import routes
from costtune.server.dashboard.auth import Access
from costtune.server.run import _config
from costtune.store import Store

AUTH = {"Authorization": "Bearer t0ken"}
SLOW_TRIAL = """
import time, costtune
for step in range(600):
    costtune.report(step=step, loss=1.0 / (step + 1))
    time.sleep(0.1)
"""


def _wait(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    until = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < until, "timed out"
        time.sleep(0.1)


def test_pause_holds_launches_and_stop_ends_a_running_trial(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'store.db'}"
    (tmp_path / "slow.py").write_text(SLOW_TRIAL)
    doc = {"name": "slow", "objective": {"metric": "loss", "mode": "min"},
           "space": {"lr": {"type": "uniform", "low": 0.0, "high": 1.0}}, "sampler": {"type": "random", "seed": 0},
           "budget": {"trials": 2, "usd": 1}, "resources": {"usd_per_hour": 3.6, "workers": 1},
           "command": [sys.executable, "slow.py"]}
    (tmp_path / "slow.yaml").write_text(yaml.safe_dump(doc))
    store = Store(db)
    http = TestClient(_config(store, "127.0.0.1", 0, access_log=False, max_body=None,
                              routes=routes(store, Access("t0ken", open_read=True)), worker_api=False).app)
    run = subprocess.Popen(["costtune", "run", "slow.yaml", "--db", db, "--quiet"], cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def reported(number: int) -> bool:
        answer = http.get(f"/api/v1/studies/slow/trials/{number}")
        return answer.status_code == 200 and answer.json()["last_step"] is not None

    try:
        _wait(lambda: reported(0) or run.poll() is not None)
        [live] = http.get("/api/v1/running").json()["attempts"]  # what the Running now page shows
        assert (live["study"], live["trial"], live["attempt"]) == ("slow", 0, 1)
        assert live["rate_micros_per_hour"] == 3_600_000 and live["next_rung_micros"] is None  # $3.60/h, no rungs
        studies = http.get("/api/v1/studies").json()["studies"]
        assert studies[0]["state"] == "running" and studies[0]["burn_micros_per_hour"] == 3_600_000
        assert http.post("/api/v1/studies/slow/pause", headers=AUTH).json()["paused"] is True
        assert http.post("/api/v1/studies/slow/trials/0/stop", headers=AUTH).json()["state"] == "stopping"
        _wait(lambda: http.get("/api/v1/studies/slow/trials/0").json()["state"] == "stopped" or run.poll() is not None)
        time.sleep(2.5)  # two reads of the requests later: trial 1 is not launched while paused
        assert http.get("/api/v1/studies/slow/live").json()["trials"] == 1 and run.poll() is None
        assert http.post("/api/v1/studies/slow/resume", headers=AUTH).json()["changed"] is True
        _wait(lambda: reported(1) or run.poll() is not None)
        assert http.post("/api/v1/studies/slow/trials/1/stop", headers=AUTH).json()["state"] == "stopping"
        out, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    trial = http.get("/api/v1/studies/slow/trials/0").json()
    assert trial["state"] == "stopped", out
    assert trial["attempts"][0]["exit_reason"] == "stopped" and trial["cost_micros"] > 0
    assert trial["last_step"] < 590  # it did not run to its end
    assert http.get("/api/v1/studies/slow/trials/1").json()["state"] == "stopped"
    assert [e.action for e in store.audit_log(study_id=store.get_study("slow").id) if e.action.startswith(
        ("study.", "trial."))] == ["study.pause", "trial.stop", "study.resume", "trial.stop"]
    assert store.controls(store.get_study("slow").id).stop == frozenset()  # the request is settled


def test_requests_are_kept_per_study_and_settled_in_every_store(store: Store) -> None:
    from costtune.errors import StoreError
    from costtune.history import Mode, TrialState
    from costtune.store import Proposal

    info = store.create_study("ctl", metric="loss", mode=Mode.MIN, space={}, sampler={"type": "random"},
                              queued=[{}, {}])
    claimed = store.claim_next(info.id, lambda h, n, s: Proposal({}), owner="test")
    assert claimed is not None and claimed.number == 0
    assert store.set_paused(info.id, True, actor="me") is True and store.set_paused(info.id, True, actor="me") is False
    assert store.request_stop(info.id, 0, actor="me") == "stopping"
    assert store.request_stop(info.id, 0, actor="me") == "stopping"  # asked twice: one request
    assert store.request_stop(info.id, 1, actor="me") == "stopped"  # queued: out of the queue at once
    assert store.trial(info.id, 1).state == TrialState.STOPPED
    assert store.controls(info.id).paused and store.controls(info.id).stop == frozenset({claimed.id})
    store.finish_trial(claimed.id, TrialState.STOPPED)
    assert store.controls(info.id).stop == frozenset()
    try:
        store.request_stop(info.id, 0, actor="me")
        raise AssertionError("a finished trial was stopped again")
    except StoreError as exc:
        assert "already ended (stopped)" in str(exc)
    assert store.set_paused(info.id, False, actor="me") is True and not store.controls(info.id).paused
    assert [e.action for e in store.audit_log(study_id=info.id)] == [
        "study.pause", "trial.stop", "trial.stop", "trial.stop", "study.resume"]
    store.set_paused(info.id, True, actor="me")
    store.delete_study(info.id)
    assert store.paused_studies() == set()
