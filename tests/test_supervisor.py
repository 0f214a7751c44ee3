"""The local attempt's supervisor (costtune/agent/supervise.py) on real process trees."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from costtune.providers.local import SUPERVISOR
from proctools import gone, wait_gone

from costtune.agent.supervise import KILL_NOW

# Starts a child in a session of its own (escaping the process group) and writes both pids.
ESCAPER = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
with open(sys.argv[1] + ".tmp", "w") as handle:
    handle.write(f"{os.getpid()} {child.pid}")
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
if sys.argv[2] == "wait":
    time.sleep(60)
sys.exit(3)
"""


def supervise(tmp_path: Path, *command: str, grace: float = 5.0) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-I", SUPERVISOR, "--facts", str(tmp_path / "facts.json"),
                             "--grace", str(grace), "--", *command], stdin=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path, start_new_session=True)


def pids(path: Path) -> list[int]:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return [int(p) for p in path.read_text().split()]


def facts(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "facts.json").read_text())


def test_controller_death_takes_down_a_child_that_left_the_process_group(tmp_path: Path) -> None:
    (tmp_path / "escaper.py").write_text(ESCAPER)
    proc = supervise(tmp_path, sys.executable, "escaper.py", str(tmp_path / "pids"), "wait")
    tree = pids(tmp_path / "pids")
    assert facts(tmp_path)["ended_at"] is None
    proc.stdin.close()  # type: ignore[union-attr]  # what the controller's death looks like from here
    assert proc.wait(timeout=30) == -signal.SIGTERM  # it dies of what its command died of
    assert wait_gone(tree) == []
    record = facts(tmp_path)
    assert (record["how"], record["exit_code"]) == ("controller-died", -signal.SIGTERM)
    assert record["started_at"] <= record["ended_at"] <= time.time()


def test_what_a_command_leaves_behind_is_stopped_and_its_exit_code_kept(tmp_path: Path) -> None:
    (tmp_path / "escaper.py").write_text(ESCAPER)
    proc = supervise(tmp_path, sys.executable, "escaper.py", str(tmp_path / "pids"), "exit")
    tree = pids(tmp_path / "pids")
    assert proc.wait(timeout=30) == 3
    assert wait_gone(tree) == []  # the session-leader grandchild did not outlive the trial
    assert (facts(tmp_path)["how"], facts(tmp_path)["exit_code"]) == ("exited", 3)


def test_kill_now_skips_the_grace_period(tmp_path: Path) -> None:
    trap = "import signal, time; signal.signal(signal.SIGTERM, lambda *a: None); time.sleep(60)"
    proc = supervise(tmp_path, sys.executable, "-c", trap, grace=60)
    deadline = time.monotonic() + 30
    while (tmp_path / "facts.json").exists() is False or facts(tmp_path)["pid"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    child = facts(tmp_path)["pid"]
    time.sleep(0.3)  # its SIGTERM handler is in place
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert not gone(child)  # SIGTERM ignored; SIGKILL would come only after 60 s
    proc.send_signal(KILL_NOW)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert gone(child)
    assert (facts(tmp_path)["how"], facts(tmp_path)["exit_code"]) == ("stopped", -signal.SIGKILL)


def test_a_command_that_cannot_start_is_recorded_and_exits_127(tmp_path: Path) -> None:
    proc = supervise(tmp_path, "no-such-program-costtune")
    assert proc.wait(timeout=30) == 127
    assert b"cannot start 'no-such-program-costtune'" in proc.stderr.read()  # type: ignore[union-attr]
    record = facts(tmp_path)
    assert (record["how"], record["exit_code"]) == ("could-not-start", 127) and record["ended_at"]
