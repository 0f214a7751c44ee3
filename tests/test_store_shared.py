"""One SQLite store shared by a long-lived process and sweeps in other processes.

A process that keeps a store open (the dashboard, `costtune serve`, the scheduler daemon, or a test running
commands in-process) and opens the same file again must keep its SQLite locks: the check of an existing file
used to read it through a file handle of its own, and closing that handle dropped every POSIX lock the process
held on the file. A `costtune run` in another process then took itself for the file's last user, checkpointed
and deleted the -wal and -shm files under the open store: what that store wrote next went to a log no other
process read, and reads there failed with "disk I/O error".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

from costtune.cli import main
from costtune.history import Mode
from costtune.store import Store

SWEEP = {
    "name": "shared",
    "objective": {"metric": "loss", "mode": "min"},
    "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
    "sampler": {"type": "random", "seed": 1},
    "budget": {"trials": 2},
    "resources": {"provider": "simulated", "region": "us-east-1", "instance_type": "m5.large", "workers": 1,
                  "simulation": {"workload": "simworkloads:steady", "max_steps": 3, "seed": 0}},
}


def _studies(db: str) -> dict[str, int]:
    """`costtune studies --format json` through the CLI's code in this process: trials per study."""
    result = CliRunner().invoke(main, ["studies", "--db", db, "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return {row["name"]: row["trials"] for row in json.loads(result.stdout)}


def test_a_long_lived_store_keeps_working_while_other_processes_run_sweeps_on_the_file(tmp_path: Path) -> None:
    db = str(tmp_path / "store.db")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump(SWEEP, sort_keys=False))
    held = Store(db)  # the dashboard's store: open for the whole test, its connection pooled
    held.create_study("local", metric="loss", mode=Mode.MIN, space=SWEEP["space"], sampler={"type": "random"})
    assert _studies(db) == {"local": 0}  # an in-process command opens the same file once more

    proc = _costtune(tmp_path, "run", str(sweep), "--quiet", "--db", db)  # a sweep in another process
    assert proc.returncode == 0, proc.stdout + proc.stderr

    # both the long-lived store and a new in-process read see the other process's sweep ...
    assert [s.name for s in held.list_studies()] == ["local", "shared"]
    assert _studies(db) == {"local": 0, "shared": 2}
    # ... and what the long-lived store writes now, another process reads
    held.create_study("later", metric="loss", mode=Mode.MIN, space=SWEEP["space"], sampler={"type": "random"})
    names = (f"import sqlite3; print([r[0] for r in sqlite3.connect({db!r})"
             ".execute('SELECT name FROM study ORDER BY id')])")
    read = subprocess.run([sys.executable, "-c", names], capture_output=True, text=True, timeout=60)
    assert read.stdout.strip() == "['local', 'shared', 'later']", read.stderr
    held.close()


def _costtune(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`costtune ARGS` as a process of its own; finds the tests' simulated workloads (simworkloads.py)."""
    path = os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "costtune.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env={**os.environ, "PYTHONPATH": path})
