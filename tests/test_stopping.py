"""Stopping a trial never blocks the controller: the overshoot bound of README "How far can spend
pass the cap?" holds with trials that ignore SIGTERM, and the local provider's stop returns at once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from costtune.providers.base import LaunchRequest
from costtune.providers.local import GRACE_S, LocalProvider, facts_path
from proctools import wait_gone

from costtune.runner.waking import POLL_S as _POLL_S
from costtune.store import Store

RATE_PER_S = 10_000  # micro-dollars a second at $36/hour

TRAP_TRIAL = """
import signal, time, costtune
signal.signal(signal.SIGTERM, lambda *a: None)  # stopping it takes the whole grace period
step = 0
while True:
    costtune.report(step=step, val_loss=1.0 / (step + 1))
    step += 1
    time.sleep(0.1)
"""


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def test_trials_that_trap_sigterm_keep_spend_within_the_documented_bound(tmp_path: Path, db: str) -> None:
    """ASHA, 3 workers, $36/h, cap $0.06. A stop that blocked the loop for its grace period let the
    other trials run past their deadlines unseen: $0.34-0.36 was spent against a bound of $0.24."""
    workers, cap = 3, 60_000
    (tmp_path / "trap.py").write_text(TRAP_TRIAL)
    doc = {"name": "trap", "objective": {"metric": "val_loss", "mode": "min"},
           "space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 0.3}},
           "sampler": {"type": "random", "seed": 0},
           "scheduler": {"type": "asha", "min_usd": 0.01, "max_usd": 0.09, "eta": 3},
           "budget": {"usd": 0.06}, "resources": {"usd_per_hour": 36, "workers": workers},
           "command": ["python", "trap.py"]}
    (tmp_path / "trap.yaml").write_text(yaml.safe_dump(doc))
    done = subprocess.run(["costtune", "run", "trap.yaml", "--db", db, "--quiet"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    store = Store(db)
    try:
        info = store.get_study("trap")
        trials = store.history(info.id).trials
        attempts = [a for t in trials for a in store.attempts(info.id, t.number)]
        spent = store.balance(f"study:{info.id}").spent_micros
    finally:
        store.close()
    assert spent == sum(t.cost_micros for t in trials) >= cap
    # Each trial running when the cap is reached passes its reservation by at most
    # rate x (1 billing second + one tick + the grace period): $0.2415 here.
    assert spent <= cap + workers * RATE_PER_S * (1 + _POLL_S + GRACE_S)
    stopped = [a for a in attempts if a.exit_reason in ("stopped", "budget")]
    assert stopped and all(a.exit_code == -9 for a in stopped)  # SIGTERM ignored; SIGKILL after the grace


def test_terminate_returns_at_once_and_the_supervisor_kills_after_the_grace(tmp_path: Path) -> None:
    (tmp_path / "trap.py").write_text(TRAP_TRIAL)
    provider = LocalProvider(terminate_grace_s=1.0)
    request = LaunchRequest(argv=(sys.executable, "trap.py"), workdir=str(tmp_path), output_dir=str(tmp_path),
                            env={"PATH": "/usr/bin:/bin"}, tags={"study": "t"})
    handle = provider.launch(request, "t-1-1")
    assert next(provider.output(handle, timeout=30)).startswith("costtune:report")  # it runs
    asked = time.monotonic()
    provider.terminate(handle)
    assert time.monotonic() - asked < 0.5  # no waiting for the grace period here
    assert provider.poll(handle).running  # it ignores SIGTERM
    while provider.poll(handle).running:
        provider.terminate(handle)  # what the controller does on each tick: cheap, idempotent
        assert time.monotonic() - asked < 30
        time.sleep(0.02)
    status = provider.poll(handle)
    assert status.exit_code == -9 and status.billable_ms >= 1000  # SIGKILL, after the 1 s grace
    facts = json.loads(facts_path(tmp_path, "t-1-1").read_text())
    assert (facts["how"], facts["exit_code"]) == ("stopped", -9)
    assert facts["ended_at"] - facts["started_at"] >= 1.0
    assert wait_gone([facts["pid"]]) == []
