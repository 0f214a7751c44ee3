"""Crash safety through the real CLI: kill -9 or Ctrl-C mid-sweep, run the same command again.

Also: a bad sweep file is refused before the store is opened, and a resumed study keeps its space.
"""

from __future__ import annotations

import hashlib
import itertools
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
from click.testing import CliRunner
from proctools import gone, wait_gone

from costtune.cli import main
from costtune.history import History, TrialState
from costtune.store import Store

MARKED_TRIAL = """
import os, sys, time
import costtune

n, attempt = os.environ["COSTTUNE_TRIAL_NUMBER"], os.environ["COSTTUNE_ATTEMPT"]
marks = os.environ["MARKS"]
with open(os.path.join(marks, f"start-{n}-{attempt}"), "x") as handle:  # "x": a repeat would crash
    handle.write(str(os.getpid()))
time.sleep(float(os.environ["TRIAL_SECONDS"]))
costtune.report(val_loss=float(n))
open(os.path.join(marks, f"done-{n}-{attempt}"), "x").close()
"""

GRID_SPACE = {"opt": {"type": "categorical", "choices": ["adam", "sgd", "rmsprop"]},
              "n": {"type": "int", "low": 1, "high": 4},
              "flag": {"values": [True, False]}}


# -- helpers ------------------------------------------------------------------------------------
def write_sweep(tmp_path: Path, name: str, script: str, **fields: Any) -> Path:
    trial = tmp_path / f"{name}.py"
    trial.write_text(script)
    doc: dict[str, Any] = {"name": name, "objective": {"metric": "val_loss", "mode": "min"},
                           "space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 0.3}},
                           "command": ["python", str(trial)]}
    doc.update(fields)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def marked_sweep(tmp_path: Path, name: str, seconds: float, **fields: Any) -> tuple[Path, Path]:
    marks = tmp_path / "marks"
    marks.mkdir()
    file = write_sweep(tmp_path, name, MARKED_TRIAL, env={"MARKS": str(marks), "TRIAL_SECONDS": seconds},
                       **fields)
    return file, marks


def run_args(file: Path, db: str) -> list[str]:
    return ["costtune", "run", str(file), "--db", db, "--quiet"]


def run_to_end(tmp_path: Path, file: Path, db: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(run_args(file, db), cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def history(db: str, name: str) -> History:
    store = Store(db)
    try:
        return store.history(store.get_study(name).id)
    finally:
        store.close()


def attempt_reasons(db: str, name: str) -> dict[int, list[str | None]]:
    store = Store(db)
    try:
        info = store.get_study(name)
        return {t.number: [a.exit_reason for a in store.attempts(info.id, t.number)]
                for t in store.history(info.id).trials}
    finally:
        store.close()


def start_mid_sweep(tmp_path: Path, file: Path, db: str, name: str, finished: int) -> subprocess.Popen[bytes]:
    """Start `costtune run` and return once ``finished`` trials are done and another one is running.

    Callers leave enough trials after that point that the sweep cannot end before it is interrupted.
    """
    log = (tmp_path / "first-run.log").open("wb")
    # SIGINT as in a terminal, also when these tests run as a background job (which ignores SIGINT).
    proc = subprocess.Popen(run_args(file, db), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log.close()
    deadline = time.monotonic() + 120
    store = Store(db)
    try:
        while True:
            assert proc.poll() is None, (tmp_path / "first-run.log").read_text()
            assert time.monotonic() < deadline, "the sweep made no progress"
            info = store.find_study(name)
            if info is not None:
                trials = store.history(info.id).trials
                done = sum(t.state.finished for t in trials)
                if done >= finished and any(t.state == TrialState.RUNNING and t.attempts for t in trials):
                    return proc
            time.sleep(0.05)
    finally:
        store.close()


def started_pids(marks: Path) -> list[int]:
    return [int(p.read_text()) for p in marks.glob("start-*") if p.read_text()]


def markers(marks: Path, number: int) -> set[str]:
    return {p.name for p in marks.iterdir() if p.name.split("-")[1] == str(number)}


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


# -- kill -9 ------------------------------------------------------------------------------------
def kill_and_resume(tmp_path: Path, file: Path, marks: Path, db: str, name: str,
                    finished: int) -> tuple[set[int], set[int]]:
    """SIGKILL the controller mid-sweep, check its trials die, resume; returns (finished, interrupted)."""
    proc = start_mid_sweep(tmp_path, file, db, name, finished)
    proc.send_signal(signal.SIGKILL)  # the controller only; its trials are on their own now
    proc.wait(timeout=60)
    before = history(db, name)
    done = {t.number for t in before.trials if t.state.finished}
    interrupted = {t.number for t in before.trials if t.state == TrialState.RUNNING and t.attempts}
    assert len(done) >= finished and interrupted
    # The trials die with their controller (their supervisors see it go), before anyone resumes anything.
    assert wait_gone(started_pids(marks)) == []

    run_to_end(tmp_path, file, db)
    after = history(db, name)
    reasons = attempt_reasons(db, name)
    assert [t.number for t in after.trials] == list(range(len(after.trials)))  # no trial row lost
    assert {t.state for t in after.trials} == {TrialState.COMPLETE}
    for number in done:  # nothing that had finished ran again
        assert reasons[number] == ["completed"]
        assert markers(marks, number) == {f"start-{number}-1", f"done-{number}-1"}
    for number in interrupted:
        assert reasons[number] == ["interrupted", "completed"]
        assert {f"start-{number}-2", f"done-{number}-2"} <= markers(marks, number)  # -1 if it got that far
    for t in after.trials:  # every trial's final attempt ran to its end exactly once
        assert f"done-{t.number}-{len(reasons[t.number])}" in markers(marks, t.number)
        assert len(reasons[t.number]) <= 2
    return done, interrupted


def test_kill_9_mid_sweep_then_resume_loses_nothing_and_repeats_nothing(tmp_path: Path, db: str) -> None:
    file, marks = marked_sweep(tmp_path, "killed", 0.6, sampler={"type": "random", "seed": 0},
                               budget={"trials": 8}, resources={"workers": 2})
    kill_and_resume(tmp_path, file, marks, db, "killed", finished=3)
    assert len(history(db, "killed").trials) == 8  # exactly budget.trials


def test_kill_9_mid_grid_then_resume_tries_each_combination_once(tmp_path: Path, db: str) -> None:
    file, marks = marked_sweep(tmp_path, "killed-grid", 0.2, space=GRID_SPACE, sampler={"type": "grid"},
                               resources={"workers": 3})
    kill_and_resume(tmp_path, file, marks, db, "killed-grid", finished=6)
    proc = subprocess.run(["costtune", "leaderboard", "killed-grid", "--format", "json", "--db", db],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    board = json.loads(proc.stdout)["trials"]
    combos = [(t["params"]["opt"], t["params"]["n"], t["params"]["flag"]) for t in board]
    assert len(combos) == 24
    assert sorted(combos) == sorted(itertools.product(["adam", "sgd", "rmsprop"], [1, 2, 3, 4], [True, False]))


GRANDCHILD_TRIAL = """
import os, subprocess, sys, time
import costtune

if os.environ["COSTTUNE_ATTEMPT"] == "1":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(os.environ["PIDS"], "w") as handle:
        handle.write(f"{os.getpid()} {child.pid}")
    time.sleep(600)
costtune.report(val_loss=1.0)
"""


def test_a_trials_children_die_with_its_controller(tmp_path: Path, db: str) -> None:
    """The supervisor stops the whole tree when its controller dies, not only the trial itself."""
    pids_file = tmp_path / "pids"
    file = write_sweep(tmp_path, "orphans", GRANDCHILD_TRIAL, budget={"trials": 1}, env={"PIDS": str(pids_file)})
    proc = subprocess.Popen(run_args(file, db), cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not pids_file.exists() or not pids_file.read_text():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    trial_pid, child_pid = (int(p) for p in pids_file.read_text().split())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    try:
        assert wait_gone([trial_pid, child_pid]) == []  # before any resume
    finally:
        if not gone(child_pid):
            os.kill(child_pid, signal.SIGKILL)
    run_to_end(tmp_path, file, db)
    assert attempt_reasons(db, "orphans") == {0: ["interrupted", "completed"]}


# -- Ctrl-C -------------------------------------------------------------------------------------
def test_ctrl_c_requeues_running_trials_and_exits_130(tmp_path: Path, db: str) -> None:
    file, marks = marked_sweep(tmp_path, "ctrlc", 0.6, sampler={"type": "random", "seed": 0},
                               budget={"trials": 6}, resources={"workers": 2, "usd_per_hour": 36})
    proc = start_mid_sweep(tmp_path, file, db, "ctrlc", finished=1)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=60)
    output = (tmp_path / "first-run.log").read_text()
    assert code == 130, output
    assert "interrupted" in output and "run the same command again to resume" in output
    assert "Traceback" not in output
    assert wait_gone(started_pids(marks)) == []

    before = history(db, "ctrlc")
    reasons = attempt_reasons(db, "ctrlc")
    requeued = {t.number for t in before.trials if t.state == TrialState.QUEUED}
    assert requeued  # the running ones, stopped and queued again: not failed, not left running
    assert {t.state for t in before.trials} <= {TrialState.COMPLETE, TrialState.QUEUED}
    for number in requeued:
        assert reasons[number][-1] == "interrupted"
    done = {t.number for t in before.trials if t.state == TrialState.COMPLETE}

    run_to_end(tmp_path, file, db)
    after = history(db, "ctrlc")
    reasons = attempt_reasons(db, "ctrlc")
    assert [(t.number, t.state) for t in after.trials] == [(n, TrialState.COMPLETE) for n in range(6)]
    for number in done:
        assert reasons[number] == ["completed"]
    for number in requeued:
        assert reasons[number][-2:] == ["interrupted", "completed"]
    # The interrupted attempt held its machine too: it is charged, and a trial costs all its attempts.
    store = Store(db)
    try:
        study_id = store.get_study("ctrlc").id
        for t in store.history(study_id).trials:
            attempts = store.attempts(study_id, t.number)
            assert t.cost_micros == sum(a.cost_micros for a in attempts)
            for a in attempts:  # whole seconds up, then micro-dollars up, at $36/hour
                seconds = math.ceil(a.billable_ms / 1000)
                assert a.rate_micros_per_hour == 36_000_000
                assert a.cost_micros == math.ceil(seconds * 1000 * 36_000_000 / 3_600_000) > 0
    finally:
        store.close()


# -- refusing bad input -------------------------------------------------------------------------
VALID = {
    "name": "checked",
    "objective": {"metric": "val_loss", "mode": "min"},
    "space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 0.3}},
    "budget": {"trials": 2},
    "command": ["python", "train.py", "{lr}"],
}


def _with(path: tuple[str, ...], value: Any) -> str:
    doc = json.loads(json.dumps(VALID))
    node = doc
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return yaml.safe_dump(doc, sort_keys=False)


BAD_FILES = {
    "unknown top-level key": (_with(("colour",), "blue"),
                              "colour: unknown field; allowed: name, objective, space"),
    "loguniform low below 0": (_with(("space", "lr", "low"), -1),
                               "space.lr.low: must be > 0 for loguniform, got -1"),
    "bad sampler type": (_with(("sampler",), {"type": "annealing"}),
                         "sampler.type: must be one of grid, random, manual, bayes, got annealing"),
    "workers 0": (_with(("resources", "workers"), 0), "resources.workers: must be an integer >= 1, got 0"),
    "unknown placeholder": (_with(("command",), ["python", "train.py", "{learning_rate}"]),
                            "command[2]: unknown placeholder {learning_rate}"),
    "invalid YAML": ("name: checked\nspace: {lr: [1, 2\n", "not valid YAML at line"),
    "missing file": (None, "sweep file: no such file"),
}


def _bad_run(tmp_path: Path, case: str, db: str) -> subprocess.CompletedProcess[str]:
    text, _ = BAD_FILES[case]
    file = tmp_path / "sweep.yaml"
    if text is not None:
        file.write_text(text)
    return subprocess.run(run_args(file, db), cwd=tmp_path, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_sweep_file_exits_2_naming_the_field_and_creates_no_store(tmp_path: Path, case: str) -> None:
    new_db = tmp_path / "new" / "store.db"
    proc = _bad_run(tmp_path, case, f"sqlite:///{new_db}")
    assert proc.returncode == 2
    assert BAD_FILES[case][1] in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not new_db.exists() and not new_db.parent.exists()
    assert not (tmp_path / "costtune-home").exists()  # no default store or run directory either


def _snapshot(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.mark.parametrize("case", ["loguniform low below 0", "unknown placeholder", "invalid YAML"])
def test_bad_sweep_file_leaves_an_existing_store_byte_for_byte(tmp_path: Path, case: str) -> None:
    store_dir = tmp_path / "stores"
    store_dir.mkdir()
    db = f"sqlite:///{store_dir / 'store.db'}"
    store = Store(db)
    info = store.create_study("checked", metric="val_loss", mode="min", space=VALID["space"],
                              sampler={"type": "random", "seed": 0}, queued=[{"lr": 0.01}])
    store.close()
    before = _snapshot(store_dir)
    proc = _bad_run(tmp_path, case, db)
    assert proc.returncode == 2 and BAD_FILES[case][1] in proc.stderr
    assert _snapshot(store_dir) == before
    store = Store(db)
    try:
        assert [t.params for t in store.history(info.id).trials] == [{"lr": 0.01}]
    finally:
        store.close()


def test_resume_with_a_changed_definition_exits_2_and_changes_nothing(tmp_path: Path, db: str) -> None:
    trial = "import costtune\ncosttune.report(val_loss=1.0)\n"
    fields: dict[str, Any] = {"sampler": {"type": "random", "seed": 0}, "budget": {"trials": 1}}
    run_to_end(tmp_path, write_sweep(tmp_path, "fixed", trial, **fields), db)
    store = Store(db)
    try:
        info = store.get_study("fixed")
        before = (info, store.history(info.id), store.attempts(info.id, 0))
    finally:
        store.close()

    changes = [
        ({"space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 0.5}}}, "space:", "(changed: lr)"),
        ({"objective": {"metric": "val_loss", "mode": "max"}}, "objective.mode:",
         "objective.mode min, the file says max"),
        ({"objective": {"metric": "loss"}}, "objective.metric:", "objective.metric val_loss, the file says loss"),
        ({"sampler": {"type": "bayes"}}, "sampler.type:", "sampler.type random, the file says bayes"),
        ({"scheduler": {"type": "asha", "min_usd": 0.001, "max_usd": 0.009}, "resources": {"usd_per_hour": 3.6}},
         "scheduler.type:", "scheduler.type fifo, the file says asha"),
    ]
    for k, (change, field, detail) in enumerate(changes):
        file = write_sweep(tmp_path, "fixed", trial, **{**fields, "budget": {"trials": 5}, **change})
        if k == 0:  # the first as a user runs it, a real `costtune` process
            proc = subprocess.run(run_args(file, db), cwd=tmp_path, capture_output=True, text=True, timeout=60)
            code, stderr = proc.returncode, proc.stderr
        else:  # the others through the same command's code in this process (a process start each is most of the time)
            result = CliRunner().invoke(main, run_args(file, db)[1:], catch_exceptions=False)
            code, stderr = result.exit_code, result.stderr
        assert code == 2, stderr
        message = " ".join(stderr.split())
        assert f"error: {field} study 'fixed' already exists" in message and detail in message
        assert "--name" in stderr  # how to start a new study instead

    store = Store(db)
    try:
        info = store.get_study("fixed")
        assert (info, store.history(info.id), store.attempts(info.id, 0)) == before  # budget not updated
    finally:
        store.close()
