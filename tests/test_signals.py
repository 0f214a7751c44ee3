"""Every interruption of the `costtune` command ends the same way: exit code 130, the one-line
resume hint, no traceback, and running trials stopped and re-queued.

Real `costtune` processes. "Right after start" means as soon as the process has a handler for
SIGTERM (its SigCgt mask in /proc), which is the first thing costtune's code does: before that the
interpreter itself is starting (some 20-60 ms) and nothing of costtune has run yet.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from proctools import wait_gone

from costtune.history import TrialState
from costtune.store import Store

HINT = "interrupted: running trials were stopped and re-queued; run the same command again to resume"
LAUNCHERS = {"console-script": ["costtune"], "python-m": [sys.executable, "-m", "costtune.cli"]}

TRIAL = """
import os, signal, time, costtune
if os.environ.get("TRAP"):
    signal.signal(signal.SIGTERM, lambda *a: None)
with open(os.path.join(os.environ["COSTTUNE_TRIAL_DIR"], "pid"), "w") as handle:
    handle.write(str(os.getpid()))
for step in range(600):
    costtune.report(step=step, val_loss=1.0 / (step + 1))
    time.sleep(0.1)
"""


def sweep(tmp_path: Path, *, trap: bool = False) -> Path:
    (tmp_path / "trial.py").write_text(TRIAL)
    doc = {"name": "sig", "objective": {"metric": "val_loss", "mode": "min"},
           "space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 0.3}}, "budget": {"trials": 4},
           "resources": {"usd_per_hour": 36, "workers": 2}, "env": {"TRAP": "1" if trap else ""},
           "command": ["python", "trial.py"]}
    path = tmp_path / "sig.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def start(tmp_path: Path, launcher: list[str], db: str, *args: str) -> subprocess.Popen[str]:
    # SIGINT as in a terminal, also when the tests run as a background job (which ignores SIGINT)
    return subprocess.Popen([*launcher, *args, "--db", db], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_handler(proc: subprocess.Popen[str]) -> None:
    """Until ``proc`` catches SIGTERM: the moment costtune's code first runs (it handles SIGINT and
    SIGTERM together; the interpreter catches SIGINT on its own from early on, so that says nothing)."""
    sig = signal.SIGTERM
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None and time.monotonic() < deadline
        status = Path(f"/proc/{proc.pid}/status").read_text()
        caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
        if caught & (1 << (sig - 1)):
            return
        time.sleep(0.0005)


def finish(proc: subprocess.Popen[str]) -> str:
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == HINT
    return err


def trial_states(db: str) -> list[tuple[TrialState, list[str | None]]]:
    store = Store(db)
    try:
        info = store.find_study("sig")
        if info is None:
            return []
        return [(t.state, [a.exit_reason for a in store.attempts(info.id, t.number)])
                for t in store.history(info.id).trials]
    finally:
        store.close()


def running_pids(tmp_path: Path) -> list[int]:
    return [int(p.read_text()) for p in tmp_path.glob("costtune-home/runs/sig/trial-*/pid") if p.read_text()]


def wait_running(tmp_path: Path, proc: subprocess.Popen[str], count: int) -> None:
    deadline = time.monotonic() + 120
    while len(running_pids(tmp_path)) < count:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)
    time.sleep(0.3)


def check_requeued(db: str) -> None:
    """Every trial that ran is queued again, its attempt booked as interrupted; nothing is left running."""
    states = trial_states(db)
    assert states and {s for s, _ in states} == {TrialState.QUEUED}
    assert all(reasons[-1] == "interrupted" for _, reasons in states if reasons)


@pytest.mark.parametrize("launcher", LAUNCHERS)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_right_after_start_exits_130_with_the_hint(tmp_path: Path, launcher: str, sig: int) -> None:
    """The signal lands while costtune is still importing: before, SIGTERM exited -15 and Ctrl-C
    printed a KeyboardInterrupt traceback."""
    db = f"sqlite:///{tmp_path / 'store.db'}"
    proc = start(tmp_path, LAUNCHERS[launcher], db, "run", str(sweep(tmp_path)), "--quiet")
    wait_for_handler(proc)
    proc.send_signal(sig)
    finish(proc)
    assert running_pids(tmp_path) == []  # it never got as far as launching a trial


@pytest.mark.parametrize("delay_s", [0.05, 0.15, 0.4, 0.8])
def test_sigterm_at_any_moment_of_start_up_exits_130(tmp_path: Path, delay_s: float) -> None:
    """Imports, reading the sweep file, opening the store, recovery: wherever SIGTERM lands."""
    db = f"sqlite:///{tmp_path / 'store.db'}"
    proc = start(tmp_path, LAUNCHERS["console-script"], db, "run", str(sweep(tmp_path)), "--quiet")
    wait_for_handler(proc)
    time.sleep(delay_s)
    proc.send_signal(signal.SIGTERM)
    finish(proc)
    assert wait_gone(running_pids(tmp_path)) == []
    assert all(s == TrialState.QUEUED for s, _ in trial_states(db))


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_ctrl_c_twice_during_a_run_exits_130_and_requeues_the_trials(tmp_path: Path, launcher: str) -> None:
    """Before, the second Ctrl-C exited -2. The trials trap SIGTERM, so the first Ctrl-C alone would
    wait out their 5 s grace period; the second kills them at once."""
    db = f"sqlite:///{tmp_path / 'store.db'}"
    proc = start(tmp_path, LAUNCHERS[launcher], db, "run", str(sweep(tmp_path, trap=True)), "--quiet")
    wait_running(tmp_path, proc, 2)
    pids = running_pids(tmp_path)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    finish(proc)
    assert wait_gone(pids) == []
    check_requeued(db)
    store = Store(db)
    try:
        info = store.get_study("sig")
        ends = [a.exit_code for t in store.history(info.id).trials for a in store.attempts(info.id, t.number)]
    finally:
        store.close()
    assert ends == [-9, -9]  # killed without waiting for the grace period


def test_sigterm_during_a_run_stops_and_requeues_like_ctrl_c(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'store.db'}"
    proc = start(tmp_path, LAUNCHERS["console-script"], db, "run", str(sweep(tmp_path)), "--quiet")
    wait_running(tmp_path, proc, 2)
    pids = running_pids(tmp_path)
    proc.send_signal(signal.SIGTERM)
    finish(proc)
    assert wait_gone(pids) == []
    check_requeued(db)


@pytest.mark.parametrize("command", ["studies", "plan"])
def test_ctrl_c_during_another_command_exits_130_without_a_traceback_or_resume_hint(tmp_path: Path,
                                                                                   command: str) -> None:
    """Read-only commands have nothing to resume: they said "run the same command again to resume" (issue 7)."""
    db = f"sqlite:///{tmp_path / 'store.db'}"
    args = [command, str(sweep(tmp_path))] if command == "plan" else [command]
    proc = start(tmp_path, LAUNCHERS["console-script"], db, *args)
    wait_for_handler(proc)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip() == "interrupted"
