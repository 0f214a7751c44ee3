"""What a command trial's output and exit mean (issue 7): one rule for bad metric lines, failure
reasons, fail-fast, several controllers on one study. Real `costtune run` processes, real stores."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from costtune.providers.simulated import SimulatedProvider
from test_runner import costtune, leaderboard, run, sweep, trials

from costtune.errors import SpecError
from costtune.runner.controller import SweepController
from costtune.runner.session import open_sweep
from costtune.spec import parse_sweep
from costtune.store import Store


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def held(db: str, name: str) -> tuple[int, int]:
    """(spent, reserved) in the study's ledger scope."""
    store = Store(db)
    try:
        _cap, spent, reserved = store.balance(f"study:{store.get_study(name).id}")
        return spent, reserved
    finally:
        store.close()


NAN_LINE_TRIAL = """
import os
n = os.environ["COSTTUNE_TRIAL_NUMBER"]
print('costtune:report {"step": 0, "val_loss": 0.5}', flush=True)
if n == "0":
    print('costtune:report {"step": 1, "val_loss": NaN}', flush=True)
    print('costtune:report {"step": 2, "val_loss": 0.1}', flush=True)  # too late: it failed at step 1
else:
    print('costtune:report {"step": 1, "val_loss": 0.7, "grad_norm": Infinity}', flush=True)
"""

NAN_REPORT_TRIAL = """
import costtune
costtune.report(step=0, val_loss=0.5)
costtune.report(step=1, val_loss=float("nan"))
print("never here")
"""


@pytest.mark.parametrize("script", [NAN_LINE_TRIAL, NAN_REPORT_TRIAL], ids=["printed line", "costtune.report"])
def test_a_nan_objective_fails_the_trial_with_its_reason_on_every_path(tmp_path: Path, db: str, script: str) -> None:
    """Issue 7: `{"step": 1, "loss": NaN}` then exit 0 left the trial complete with 0.5, ranked best;
    `costtune.report(val_loss=nan)` showed only "exited with code 1"."""
    file = sweep(tmp_path, "nan", script, budget={"trials": 2})
    proc = run(tmp_path, file, db, expect=1 if script is NAN_REPORT_TRIAL else 0)
    rows = trials(tmp_path, "nan", db)
    assert rows[0]["state"] == "failed"
    assert rows[0]["error"].splitlines()[0] == "objective val_loss was NaN at step 1"
    assert [a["exit_reason"] for a in rows[0]["attempts"]] == ["failed"]
    assert "trial 0: objective val_loss was NaN at step 1" in proc.stdout  # the run's summary names it
    board = leaderboard(tmp_path, "nan", db)
    assert board["best_trial"] != 0
    if script is NAN_LINE_TRIAL:  # another metric's Infinity is dropped with a warning; the trial stands
        assert rows[1]["state"] == "complete" and rows[1]["value"] == 0.7
        assert rows[1]["warnings"] == ["dropped grad_norm=inf at step 1: not a finite number"]
        assert "warning: trial 1: dropped grad_norm=inf at step 1" in proc.stderr
    assert held(db, "nan")[1] == 0


HOSTILE_TRIAL = """
import costtune
print('costtune:report {"step": 9223372036854775808, "val_loss": 0.5}', flush=True)
print('costtune:report {"val_loss": ' + '[' * 100_000 + ']' * 100_000 + '}', flush=True)
print('costtune:report {"val_loss": ' + '[' * 30_000 + ']' * 30_000 + '}', flush=True)
print('costtune:report {"step": 1' + '0' * 5000 + ', "val_loss": 0.5}', flush=True)
costtune.report(step=3, val_loss=0.25)
"""


def test_lines_that_crashed_the_controller_are_ignored_with_stored_warnings(tmp_path: Path, store_url: str) -> None:
    """Issue 7: a 64-bit step or a 100,000-deep value crashed `costtune run` (OverflowError / DataError /
    RecursionError) on every resume, leaving money held. On SQLite and PostgreSQL alike."""
    file = sweep(tmp_path, "hostile", HOSTILE_TRIAL, budget={"trials": 1, "usd": 1},
                 resources={"usd_per_hour": 0.36})
    proc = run(tmp_path, file, store_url)
    [row] = trials(tmp_path, "hostile", store_url)
    assert (row["state"], row["value"], row["last_step"]) == ("complete", 0.25, 3)
    assert row["warning_count"] == 4
    assert row["warnings"][0] == ("ignored metric line: step must be an integer from 0 to 2147483647, "
                                  "got 9223372036854775808")
    assert row["warnings"][1].startswith("ignored metric line: longer than 100000 characters")
    assert row["warnings"][2].startswith("ignored metric line: nested too deeply")
    assert row["warnings"][3].startswith("ignored metric line: not a JSON object")
    assert proc.stderr.count("warning: trial 0: ignored metric line") == 4  # shown even with --quiet
    spent, reserved = held(store_url, "hostile")
    assert reserved == 0 and spent == row["cost_micros"]


CRASHING_TRIAL = """
import costtune
p = costtune.params()
def train(lr):
    raise ValueError(f"learning rate {lr:.3g} is not supported by this model")
train(p["lr"])
"""


@pytest.mark.parametrize(("max_failures", "expected"), [(None, 5), (2, 2), (0, 7)])
def test_fail_fast_stops_after_max_failures_in_a_row_and_shows_the_last_error(
        tmp_path: Path, db: str, max_failures: int | None, expected: int) -> None:
    """Issue 7: a crashing script billed 25 of 25 trials. Now the sweep stops after budget.max_failures
    (default 5) failed trials in a row, exit 1, with the last error (0: never stop)."""
    budget: dict[str, Any] = {"trials": 25 if max_failures != 0 else 7}
    if max_failures is not None:
        budget["max_failures"] = max_failures
    file = sweep(tmp_path, "crashing", CRASHING_TRIAL, budget=budget, resources={"workers": 1})
    proc = run(tmp_path, file, db, expect=1)
    rows = trials(tmp_path, "crashing", db)
    assert len(rows) == expected and {r["state"] for r in rows} == {"failed"}
    reason = rows[-1]["error"].splitlines()[0]
    assert reason.startswith("ValueError: learning rate ") and reason.endswith(
        " is not supported by this model (exited with code 1)")
    assert f"trial {expected - 1}: {reason}" in proc.stdout  # the summary lists failed trials' reasons
    if max_failures == 0:
        assert "no trial produced a value" in proc.stderr
        return
    error = proc.stderr[proc.stderr.index("failed: "):]
    assert error.startswith(f"failed: stopped after {expected} failed trials in a row (budget.max_failures: "
                            f"{expected}; 0 never stops); the last, trial {expected - 1}:\n{reason}\n")
    assert "Traceback" in error  # then the traceback's last lines
    table = costtune(tmp_path, "trials", "crashing", db=db)
    assert "ValueError:" in table.stdout  # the table's error column shows the reason line (wrapped to fit)
    if max_failures == 2:  # on a 60-column terminal the reason outranks the parameters (an acceptance run)
        narrow = subprocess.run(["costtune", "trials", "crashing", "--db", db], cwd=tmp_path, capture_output=True,
                                text=True, timeout=120, env={**os.environ, "COLUMNS": "60"})
        assert "ValueError:" in narrow.stdout and "error" not in narrow.stdout.split("not shown:")[-1]


def test_the_fail_fast_count_is_the_failed_trials_the_store_shows_across_a_resume(tmp_path: Path, db: str) -> None:
    """Issue 7: with 2 workers the stop message said 3 failed while `trials` showed 4 (the one still
    running failed too), and a resume started counting from 0. The count is the store's streak."""
    file = sweep(tmp_path, "crashing2", CRASHING_TRIAL, budget={"trials": 20, "max_failures": 3},
                 resources={"workers": 2})
    first = run(tmp_path, file, db, expect=1)
    failed = [r for r in trials(tmp_path, "crashing2", db) if r["state"] == "failed"]
    assert len(failed) >= 3
    assert f"failed: stopped after {len(failed)} failed trials in a row (budget.max_failures: 3" in first.stderr
    assert f"stopped: {len(failed)} trials failed in a row (budget.max_failures)" in first.stdout
    second = run(tmp_path, file, db, expect=1)  # a resume: the streak goes on from the earlier failures
    total = [r for r in trials(tmp_path, "crashing2", db) if r["state"] == "failed"]
    assert len(failed) < len(total) <= len(failed) + 2  # it stops at its first failures (2 were running)
    assert (f"failed: stopped after {len(total)} failed trials in a row, {len(failed)} of them in an earlier run "
            f"(budget.max_failures: 3") in second.stderr


@pytest.mark.parametrize("value", [-1, 1.5, "five", True])
def test_a_bad_max_failures_names_the_field(value: Any) -> None:
    raw = {"name": "x", "objective": {"metric": "loss"}, "space": {"a": {"type": "uniform", "low": 0, "high": 1}},
           "budget": {"trials": 3, "max_failures": value}, "command": ["true"]}
    with pytest.raises(SpecError, match=r"^budget\.max_failures: must be an integer >= 0, got "):
        parse_sweep(raw)


def started(db: str, name: str) -> bool:
    if not Path(db.removeprefix("sqlite:///")).exists():
        return False
    store = Store(db)
    try:
        info = store.find_study(name)
        return info is not None and any(t.state == "running" for t in store.history(info.id).trials)
    finally:
        store.close()


SLOW_TRIAL = "import time, costtune\ntime.sleep(3)\ncosttune.report(val_loss=0.5)\n"


def test_a_second_controller_waits_for_the_first_instead_of_failing(tmp_path: Path, db: str) -> None:
    """Issue 7: extra `costtune run` processes on one study exited 1 "no trial produced a value" while
    another ran its trials. Now one whose own work is done waits for the others' trials."""
    file = sweep(tmp_path, "shared", SLOW_TRIAL, budget={"trials": 1})
    args = ["costtune", "run", str(file), "--quiet", "--db", db]
    first = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not started(db, "shared"):
            assert time.monotonic() < deadline and first.poll() is None, "the first run never started its trial"
            time.sleep(0.1)
        second = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        out, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, out + err
    assert second.returncode == 0, second.stdout + second.stderr
    assert "stopped: 1 trial run (budget.trials)" in second.stdout  # one plural rule (issue 7)
    [row] = trials(tmp_path, "shared", db)
    assert row["state"] == "complete" and len(row["attempts"]) == 1


class FlakyOutput(SimulatedProvider):
    """The real simulated provider, whose output stream for trial 1 breaks like a dropped log stream."""

    def output(self, handle: Any, timeout: float | None = None) -> Any:
        if handle.tags.get("trial") == "1" and handle.step >= 3:
            raise OSError("log stream reset by peer")
        return super().output(handle, timeout)

    def take_reports(self, handle: Any) -> Any:  # the controller's fast path for simulated reports
        if handle.tags.get("trial") == "1" and handle.step >= 3:
            raise OSError("log stream reset by peer")
        return super().take_reports(handle)


def test_an_error_handling_one_attempt_fails_that_trial_not_the_sweep(tmp_path: Path) -> None:
    raw = {"name": "flaky", "objective": {"metric": "loss"}, "space": {"x": {"type": "uniform", "low": 0, "high": 1}},
           "sampler": {"type": "random", "seed": 0}, "budget": {"trials": 4, "usd": 0.5},
           "scheduler": {"type": "fifo"},
           "resources": {"provider": "simulated", "region": "us-east-1", "instance_type": "m5.large",
                         "workers": 2, "simulation": {"workload": "simworkloads:steady", "max_steps": 20}}}
    spec = parse_sweep(raw)
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    study, _ = open_sweep(store, spec)
    from costtune.providers.simulated import load_workload

    from costtune.clock import VirtualClock

    provider = FlakyOutput(VirtualClock(), load_workload("simworkloads:steady"), metric="loss", max_steps=20)
    status = SweepController(spec, study, provider, trial_events=False).run()
    states = [t.state for t in study.history().trials]
    assert states == ["complete", "failed", "complete", "complete"]
    failed = study.history().trials[1]
    assert failed.error == "costtune could not handle this trial: OSError: log stream reset by peer"
    assert status.stop_reason == "all 4 trials run (budget.trials)"
    _cap, spent, reserved = store.balance(f"study:{study.id}")
    assert reserved == 0 and spent == status.spend_micros == study.history().spent_micros


def test_a_simulated_sweep_that_stops_on_failures_with_trials_running_ends_and_keeps_its_count(
        tmp_path: Path) -> None:
    """A simulated sweep whose failures stopped launching while other trials still ran never ended: the loop spun
    at a deadline already past (the clock was aimed at it and never moved). And once those trials finished, the
    reason said "stopped after 0 failed trials in a row". Run as a real process, so a hang fails the test."""
    sweep_file = tmp_path / "mf.yaml"
    sweep_file.write_text(
        "name: mf\nobjective: {metric: loss, mode: min}\n"
        "space:\n" + "".join(f"  x{i}: {{type: uniform, low: 0, high: 1}}\n" for i in range(1, 6)) +
        "  x6: {type: categorical, choices: [0.5, 0.7, oops]}\n"
        "sampler: {type: random, seed: 1}\nscheduler: {type: fifo}\nbudget: {usd: 1.0, max_failures: 2}\n"
        "resources: {provider: simulated, region: us-east-1, instance_type: m5.large, market: on-demand, workers: 4,\n"
        "  simulation: {workload: 'costtune.demo.workloads:hartmann6', max_steps: 200, startup_seconds: 30,\n"
        "    seed: 0}}\n")
    env = {**os.environ, "COSTTUNE_HOME": str(tmp_path / "home")}
    proc = subprocess.run(["costtune", "run", str(sweep_file), "--quiet"], capture_output=True, text=True,
                          timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "failed: stopped after 2 failed trials in a row (budget.max_failures: 2" in proc.stderr
