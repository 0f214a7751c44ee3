"""After `kill -9` of `costtune run`, the resumed run bills each interrupted attempt for the time its
process tree really held the machine: from the supervisor's own record, not the last heartbeat.

Real `costtune run` processes, real trials; each test takes a few seconds.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from proctools import gone, wait_gone
from storetools import sqlite_rows

from costtune.money import charge_micros
from costtune.store import AttemptInfo, Store

RATE_USD_PER_HOUR = 36
RATE_MICROS = RATE_USD_PER_HOUR * 1_000_000

# The first attempt writes its pid and start (wall clock) and reports only at its end, 30 s later;
# the re-run attempt reports at once.
END_ONLY_TRIAL = """
import json, os, sys, time
if os.environ["COSTTUNE_ATTEMPT"] == "1":
    with open(os.environ["MARK"] + ".tmp", "w") as handle:
        json.dump({"pid": os.getpid(), "start": time.time()}, handle)
    os.replace(os.environ["MARK"] + ".tmp", os.environ["MARK"])
    time.sleep(30)
print('costtune:report {"val_loss": 1.0}', flush=True)
"""


def sweep(tmp_path: Path, name: str, command: list[str], **fields: Any) -> Path:
    doc: dict[str, Any] = {"name": name, "objective": {"metric": "val_loss", "mode": "min"},
                           "space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 0.3}},
                           "budget": {"trials": 1}, "resources": {"usd_per_hour": RATE_USD_PER_HOUR},
                           "env": {"MARK": str(tmp_path / "mark.json")}, "command": command}
    doc.update(fields)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def start(tmp_path: Path, file: Path, db: str) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start `costtune run` and wait until its trial wrote its mark; returns (controller, mark)."""
    proc = subprocess.Popen(["costtune", "run", str(file), "--db", db, "--quiet"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mark = tmp_path / "mark.json"
    deadline = time.monotonic() + 120
    while not mark.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the trial never started"
        time.sleep(0.02)
    return proc, json.loads(mark.read_text())


def kill_9_at(proc: subprocess.Popen[bytes], moment: float) -> float:
    """SIGKILL the controller at wall time ``moment``; returns when it was sent."""
    time.sleep(max(0.0, moment - time.time()))
    sent = time.time()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    return sent


def resume(tmp_path: Path, file: Path, db: str) -> None:
    done = subprocess.run(["costtune", "run", str(file), "--db", db, "--quiet"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr


def attempts(db: str, name: str) -> tuple[list[AttemptInfo], int, int]:
    """(attempts of trial 0, the trial's booked cost, the study's ledger spend)."""
    store = Store(db)
    try:
        info = store.get_study(name)
        [trial] = store.history(info.id).trials
        return store.attempts(info.id, 0), trial.cost_micros, store.balance(f"study:{info.id}").spent_micros
    finally:
        store.close()


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def check_billed(db: str, name: str, *, held_at_least_s: float, held_at_most_s: float) -> AttemptInfo:
    (first, second), trial_cost, spent = attempts(db, name)
    assert (first.exit_reason, second.exit_reason) == ("interrupted", "completed")
    assert held_at_least_s * 1000 <= first.billable_ms <= held_at_most_s * 1000, first
    # whole seconds up, at $36/hour: 10,000 micro-dollars a second
    assert first.cost_micros == charge_micros(first.billable_ms, RATE_MICROS) == \
        math.ceil(first.billable_ms / 1000) * 10_000
    assert first.note and "supervisor" in first.note
    assert trial_cost == first.cost_micros + second.cost_micros
    assert spent == trial_cost  # the ledger holds every charge too
    return first


@pytest.mark.parametrize("kill_after_s", [2.5, 6.0], ids=["before-any-heartbeat", "after-a-heartbeat"])
def test_kill_9_bills_a_trial_that_reports_only_at_its_end_for_its_real_run_time(
        tmp_path: Path, db: str, kill_after_s: float) -> None:
    """Before, the attempt was booked up to its last heartbeat (every 5 s): 0 ms when killed at
    2.5 s, about 5 s when killed at 6 s. Now: from its supervisor's start to its tree's end."""
    (tmp_path / "trial.py").write_text(END_ONLY_TRIAL)
    file = sweep(tmp_path, "end-only", ["python", "trial.py"])
    proc, mark = start(tmp_path, file, db)
    killed = kill_9_at(proc, mark["start"] + kill_after_s)
    assert wait_gone([mark["pid"]]) == []  # the trial died with its controller
    seen_gone = time.time()
    resume(tmp_path, file, db)
    check_billed(db, "end-only", held_at_least_s=killed - mark["start"],
                 held_at_most_s=seen_gone - mark["start"] + 3.0)


SLOW = """
import json, os, sys, time
if os.environ["COSTTUNE_ATTEMPT"] == "1":
    with open(os.environ["MARK"] + ".tmp", "w") as handle:
        json.dump({"pid": os.getpid(), "start": time.time()}, handle)
    os.replace(os.environ["MARK"] + ".tmp", os.environ["MARK"])
    time.sleep(float(sys.argv[1]))
print('costtune:report {"val_loss": 1.0}', flush=True)
"""


def test_kill_9_takes_the_grandchild_of_sh_c_down_and_bills_its_time(tmp_path: Path, db: str) -> None:
    """`sh -c "python3 slow.py 20; true"`: the python grandchild used to run on, unbilled."""
    (tmp_path / "slow.py").write_text(SLOW)
    file = sweep(tmp_path, "grandchild", ["sh", "-c", "python3 slow.py 20; true"])
    proc, mark = start(tmp_path, file, db)
    killed = kill_9_at(proc, mark["start"] + 1.5)
    try:
        assert wait_gone([mark["pid"]], within=15) == []  # gone with the controller, before any resume
    finally:
        if not gone(mark["pid"]):
            os.kill(mark["pid"], signal.SIGKILL)
    seen_gone = time.time()
    resume(tmp_path, file, db)
    check_billed(db, "grandchild", held_at_least_s=killed - mark["start"],
                 held_at_most_s=seen_gone - mark["start"] + 3.0)


def test_resume_stops_and_bills_a_tree_whose_supervisor_was_killed_too(tmp_path: Path, db: str) -> None:
    """With its supervisor gone as well, nothing recorded the end: the resumed run finds the trial by
    its tags, stops it and bills it up to the moment it was gone."""
    (tmp_path / "trial.py").write_text(END_ONLY_TRIAL)
    file = sweep(tmp_path, "orphaned", ["python", "trial.py"])
    proc, mark = start(tmp_path, file, db)
    [facts] = list((tmp_path / "costtune-home").glob("runs/orphaned/trial-0000/attempt-*.json"))
    proc.send_signal(signal.SIGSTOP)  # frozen, it cannot see its supervisor go
    os.kill(json.loads(facts.read_text())["supervisor_pid"], signal.SIGKILL)
    kill_9_at(proc, time.time())
    time.sleep(1.0)
    try:
        assert not gone(mark["pid"])  # nobody stops it now but the next run
        resumed_at = time.time()
        resume(tmp_path, file, db)
        assert gone(mark["pid"])
    finally:
        if not gone(mark["pid"]):
            os.kill(mark["pid"], signal.SIGKILL)
    first = check_billed(db, "orphaned", held_at_least_s=resumed_at - mark["start"],
                         held_at_most_s=time.time() - mark["start"] + 3.0)
    assert "recovery" in (first.note or "")


def test_a_tree_whose_supervisor_was_killed_is_watched_stopped_at_its_limit_and_billed(
        tmp_path: Path, db: str) -> None:
    """`kill -9` of the supervisor, the controller alive: the trial's processes used to run on,
    unstopped, while the attempt was booked as failed up to the supervisor's death. Now the controller
    watches the tree itself, stops it at its time limit and bills it until it is gone."""
    (tmp_path / "slow.py").write_text(SLOW)
    file = sweep(tmp_path, "lost-supervisor", ["sh", "-c", "python3 slow.py 60; true"],
                 budget={"trials": 1, "trial_seconds": 4})
    proc = subprocess.Popen(["costtune", "run", str(file), "--db", db, "--quiet"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        mark_file = tmp_path / "mark.json"
        deadline = time.monotonic() + 120
        while not mark_file.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the trial never started"
            time.sleep(0.02)
        mark = json.loads(mark_file.read_text())
        [facts] = list((tmp_path / "costtune-home").glob("runs/lost-supervisor/trial-0000/attempt-*.json"))
        os.kill(json.loads(facts.read_text())["supervisor_pid"], signal.SIGKILL)
        assert proc.wait(timeout=120) == 1  # its only trial failed (time limit)
        ended = time.time()
        assert gone(mark["pid"])  # stopped by the controller, not left running
    finally:
        if proc.poll() is None:
            proc.kill()
        if not gone(mark["pid"]):
            os.kill(mark["pid"], signal.SIGKILL)
    [attempt], trial_cost, spent = attempts(db, "lost-supervisor")
    assert attempt.exit_reason == "timeout"
    assert 4000 <= attempt.billable_ms <= (ended - mark["start"] + 1.0) * 1000
    assert attempt.cost_micros == charge_micros(attempt.billable_ms, RATE_MICROS) == trial_cost == spent
    assert json.loads(facts.read_text())["ended_at"] is not None  # the record is complete for a later recovery


def test_deleting_a_study_whose_controller_died_settles_it_first_like_a_run(tmp_path: Path, db: str) -> None:
    """`studies delete --yes` after the controller and the supervisor were killed: the tree used to run
    on and the held money was charged at what the last heartbeat had booked ($0 before the first).
    Now the tree is stopped and its attempt billed from its own start to its end, before deleting."""
    (tmp_path / "trial.py").write_text(END_ONLY_TRIAL)
    file = sweep(tmp_path, "doomed", ["python", "trial.py"])
    proc, mark = start(tmp_path, file, db)
    [facts] = list((tmp_path / "costtune-home").glob("runs/doomed/trial-0000/attempt-*.json"))
    proc.send_signal(signal.SIGSTOP)
    os.kill(json.loads(facts.read_text())["supervisor_pid"], signal.SIGKILL)
    kill_9_at(proc, time.time())
    try:
        asked = time.time()
        done = subprocess.run(["costtune", "studies", "delete", "doomed", "--yes", "--db", db], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert gone(mark["pid"])
    finally:
        if not gone(mark["pid"]):
            os.kill(mark["pid"], signal.SIGKILL)
    assert "terminating stray process group" in done.stderr
    spent = float(done.stdout.split(" of spend")[0].rsplit("$", 1)[1])
    held_s = asked - mark["start"]  # at the least: it ran until the delete stopped it
    assert spent >= math.ceil(held_s) * RATE_USD_PER_HOUR / 3600 - 1e-9, done.stdout


def test_read_only_views_show_a_dead_controllers_trials_and_money_as_such(tmp_path: Path, db: str) -> None:
    """After `kill -9` of `costtune run`, `studies`, `trials`, `leaderboard` and `spend` used to show the
    trial as running and its money as held like a live sweep's. Now they say the controller is gone,
    and reading writes nothing."""
    (tmp_path / "trial.py").write_text(END_ONLY_TRIAL)
    file = sweep(tmp_path, "ghost", ["python", "trial.py"], budget={"trials": 1, "usd": 1})
    proc, mark = start(tmp_path, file, db)
    kill_9_at(proc, time.time())
    assert wait_gone([mark["pid"]]) == []
    before = sqlite_rows(tmp_path / "store.db")
    outputs = {}
    for command in (["studies"], ["trials", "ghost"], ["leaderboard", "ghost"], ["spend"],
                    ["trials", "ghost", "--format", "json"], ["spend", "--format", "json"]):
        done = subprocess.run(["costtune", *command, "--db", db], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120, env={**os.environ, "COLUMNS": "200"})
        assert done.returncode == 0, done.stdout + done.stderr
        outputs[" ".join(command)] = done.stdout
    assert sqlite_rows(tmp_path / "store.db") == before  # read-only: nothing settled, nothing written
    assert "1 running (controller gone)" in outputs["studies"]
    for view in ("trials ghost", "leaderboard ghost"):
        assert "running (controller gone)" in outputs[view], outputs[view]
    assert "$1.00 held by a controller that is no longer running (pid" in outputs["spend"]
    assert "the next `costtune run` of study ghost settles it" in " ".join(outputs["spend"].split())
    [row] = json.loads(outputs["trials ghost --format json"])
    assert (row["state"], row["controller_gone"]) == ("running", True)
    [scope] = json.loads(outputs["spend --format json"])
    assert scope["held_controller_gone_micros"] == scope["reserved_micros"] == 1_000_000
