"""An in-process study whose Python process died (`kill -9`) is billed at recovery from its
attempt's own facts: start to its last sign of life, per millisecond like a live in-process trial."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import costtune
from costtune.store import Store
from costtune.study.books import IN_PROCESS_BILLING

RATE_MICROS = 36_000_000

CRASHING = """
import sys, time
import costtune
study = costtune.create_study("inproc", storage=sys.argv[1], metric="loss", mode="min",
                              space={"x": {"type": "uniform", "low": 0, "high": 1}}, usd_per_hour=36)
def objective(trial):
    trial.report(0, loss=0.5)
    time.sleep(2.3)
    trial.report(1, loss=0.4)
    print("reported", flush=True)
    time.sleep(120)
study.optimize(objective, n_trials=1)
"""


def test_a_crashed_in_process_attempt_is_billed_to_its_last_report_per_millisecond(tmp_path: Path) -> None:
    """Before, recovery billed it with the per-second rule of a machine (2.369 s -> $0.03) while a live
    in-process trial is billed per millisecond ($0.02369)."""
    db = f"sqlite:///{tmp_path / 'store.db'}"
    (tmp_path / "crash.py").write_text(CRASHING)
    proc = subprocess.Popen([sys.executable, "crash.py", db], cwd=tmp_path, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"reported\n"
    finally:
        proc.kill()
        proc.wait(timeout=60)
    study = costtune.create_study("inproc", storage=db, metric="loss", mode="min",
                                  space={"x": {"type": "uniform", "low": 0, "high": 1}}, usd_per_hour=36,
                                  load_if_exists=True)
    assert study.recover() == [0]
    store = Store(db)
    try:
        info = store.get_study("inproc")
        [attempt] = store.attempts(info.id, 0)
        spent = store.balance(f"study:{info.id}")
    finally:
        store.close()
    assert attempt.exit_reason == "interrupted"
    assert attempt.ended_at is not None and attempt.ended_at >= attempt.started_at
    assert 2_300 <= attempt.billable_ms < 10_000  # to its report at 2.3 s, not to the recovery
    assert attempt.cost_micros == IN_PROCESS_BILLING.charge(attempt.billable_ms, RATE_MICROS)
    assert (spent.spent_micros, spent.reserved_micros) == (attempt.cost_micros, 0)
