"""Command trials through `costtune run`: parameters in, reports out, failures, limits, money, samplers.

Every test runs the real CLI on a real SQLite store; trials are tiny Python scripts in tmp_path.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from proctools import wait_gone

from costtune.cli import main
from costtune.money import format_usd
from costtune.store import Store

RATE_USD_PER_HOUR = 36  # 10_000 micro-dollars a second: every billed second shows in the books
RATE_MICROS = RATE_USD_PER_HOUR * 1_000_000


# -- helpers ------------------------------------------------------------------------------------
def sweep(tmp_path: Path, name: str, script: str, *, args: tuple[str, ...] = (), **fields: Any) -> Path:
    """Write the trial script and a sweep file running it; returns the sweep file."""
    trial = tmp_path / f"{name}.py"
    trial.write_text(script)
    doc: dict[str, Any] = {"name": name, "objective": {"metric": "val_loss", "mode": "min"},
                           "space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 0.3}},
                           "command": ["python", str(trial), *args]}
    doc.update(fields)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def costtune(tmp_path: Path, *args: str, db: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["costtune", *args, "--db", db], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)


def run(tmp_path: Path, sweep_file: Path, db: str, *, quiet: bool = True,
        expect: int = 0) -> subprocess.CompletedProcess[str]:
    proc = costtune(tmp_path, "run", str(sweep_file), *(["--quiet"] if quiet else []), db=db)
    assert proc.returncode == expect, proc.stdout + proc.stderr
    return proc


def _in_process(tmp_path: Path, *args: str, db: str) -> subprocess.CompletedProcess[str]:
    """``costtune(...)`` through the CLI's own code in this process: its exit code, stdout and stderr."""
    result = CliRunner().invoke(main, [*args, "--db", db], catch_exceptions=False)
    return subprocess.CompletedProcess(["costtune", *args], result.exit_code, result.stdout, result.stderr)


def _read_json(*args: str) -> Any:
    """A read-only command's JSON, through the CLI's own code in this process (test_cli runs them as
    subprocesses); sweeps themselves always run as real `costtune run` processes."""
    result = CliRunner().invoke(main, [*args, "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def trials(tmp_path: Path, study: str, db: str) -> list[dict[str, Any]]:
    """`costtune trials STUDY --format json`"""
    return _read_json("trials", study, "--db", db)


def leaderboard(tmp_path: Path, study: str, db: str) -> dict[str, Any]:
    """`costtune leaderboard STUDY --format json`"""
    return _read_json("leaderboard", study, "--db", db)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


# -- parameters in, outputs out ---------------------------------------------------------------
PARAMS_TRIAL = """
import json, os, sys
import costtune

names = ["lr", "hidden", "act", "flag"]
seen = {
    "argv": dict(zip(names, sys.argv[1:], strict=True)),
    "env": {n: os.environ["COSTTUNE_PARAM_" + n.upper()] for n in names},
    "file": json.load(open(os.environ["COSTTUNE_PARAMS_FILE"])),
    "api": costtune.params(),
    "trial_dir": os.environ["COSTTUNE_TRIAL_DIR"],
    "trial_number": os.environ["COSTTUNE_TRIAL_NUMBER"],
    "study": os.environ["COSTTUNE_STUDY"],
    "attempt": os.environ["COSTTUNE_ATTEMPT"],
    "cwd": os.getcwd(),
}
with open(os.path.join(seen["trial_dir"], "seen.json"), "w") as handle:
    json.dump(seen, handle)
print("stdout of trial", seen["trial_number"])
print("stderr of trial", seen["trial_number"], file=sys.stderr)
p = seen["api"]
costtune.report(step=0, val_loss=p["lr"] * p["hidden"] + (p["act"] == "tanh") + p["flag"])
"""


def test_params_arrive_identically_via_argv_env_and_file(tmp_path: Path, db: str) -> None:
    space = {"lr": {"type": "loguniform", "low": 1e-4, "high": 0.3},
             "hidden": {"type": "int", "low": 16, "high": 256},
             "act": {"type": "categorical", "choices": ["relu", "tanh"]},
             "flag": {"values": [True, False]}}
    file = sweep(tmp_path, "params", PARAMS_TRIAL, args=("{lr}", "{hidden}", "{act}", "{flag}"), space=space,
                 sampler={"type": "random", "seed": 0}, budget={"trials": 4}, resources={"workers": 2})
    proc = run(tmp_path, file, db)

    rows = trials(tmp_path, "params", db)
    assert [r["trial"] for r in rows] == [0, 1, 2, 3]
    assert {r["state"] for r in rows} == {"complete"}
    dirs = [r["output_dir"] for r in rows]
    assert len(set(dirs)) == 4  # each trial its own directory
    for r in rows:
        out = Path(r["output_dir"])
        seen = json.loads((out / "seen.json").read_text())
        params = r["params"]
        assert seen["file"] == seen["api"] == params
        assert type(params["hidden"]) is int and type(params["flag"]) is bool and type(params["lr"]) is float
        # argv and env carry the same text, the one that reads back as the very value in the file
        assert seen["argv"] == seen["env"] == {k: str(v) for k, v in params.items()}
        assert float(seen["argv"]["lr"]) == params["lr"]  # full precision, no rounding on the way
        assert int(seen["argv"]["hidden"]) == params["hidden"]
        assert (seen["trial_dir"], seen["trial_number"], seen["study"], seen["attempt"]) == (
            r["output_dir"], str(r["trial"]), "params", "1")
        assert Path(seen["cwd"]) == tmp_path  # trials run where `costtune run` was started
        stdout, stderr = (out / "stdout.log").read_text(), (out / "stderr.log").read_text()
        assert f"stdout of trial {r['trial']}\n" in stdout and "costtune:report {" in stdout
        assert f"stderr of trial {r['trial']}\n" in stderr and "stdout of" not in stderr
        assert f"stdout of trial {r['trial']}\n" not in stderr

    board = leaderboard(tmp_path, "params", db)
    best = next(t for t in board["trials"] if t["trial"] == board["best_trial"])
    assert best["rank"] == 1
    assert f"best trial's output: {best['output_dir']}\n" in proc.stdout
    assert "leaderboard: params" in proc.stdout


def test_relative_workdir_and_output_dir_are_taken_from_where_run_starts(tmp_path: Path, db: str) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text(
        "import os, costtune\n"
        "with open(os.path.join(os.environ['COSTTUNE_TRIAL_DIR'], 'model.txt'), 'w') as handle:\n"
        "    handle.write('weights')\n"
        "costtune.report(val_loss=1.0)\n")
    file = sweep(tmp_path, "relative", "", budget={"trials": 1}, workdir="code", output_dir="runs")
    doc = yaml.safe_load(file.read_text())
    file.write_text(yaml.safe_dump({**doc, "command": ["python", "train.py"]}, sort_keys=False))
    run(tmp_path, file, db)
    [row] = trials(tmp_path, "relative", db)
    assert row["state"] == "complete"
    # output_dir is the root: the study has its own directory inside it
    assert row["output_dir"] == str(tmp_path / "runs" / "relative" / "trial-0000")
    assert (tmp_path / "runs" / "relative" / "trial-0000" / "model.txt").read_text() == "weights"
    elsewhere = subprocess.run(["costtune", "logs", "relative", "0", "--db", db], cwd=tmp_path / "code",
                               capture_output=True, text=True, timeout=60)
    assert elsewhere.returncode == 0 and "costtune:report" in elsewhere.stdout


@pytest.mark.parametrize(("fields", "message"), [
    ({"command": ["no-such-program-costtune"]}, "command[0]: no such program 'no-such-program-costtune'"),
    # a missing workdir is refused before the store opens: tests/test_bad_input.py "missing workdir"
])
def test_trial_that_cannot_start_is_failed_naming_why(tmp_path: Path, db: str, fields: dict[str, Any],
                                                      message: str) -> None:
    file = sweep(tmp_path, "nostart", "", budget={"trials": 2})
    doc = yaml.safe_load(file.read_text())
    file.write_text(yaml.safe_dump({**doc, **fields}, sort_keys=False))
    run(tmp_path, file, db, expect=1)
    rows = trials(tmp_path, "nostart", db)
    assert [r["state"] for r in rows] == ["failed", "failed"]
    assert all(r["error"].startswith(message) for r in rows)


# -- failures ---------------------------------------------------------------------------------
CRASH_TRIAL = """
import os, sys
import costtune

n = int(os.environ["COSTTUNE_TRIAL_NUMBER"])
if n == 1:
    sys.stderr.write("early noise that falls out of the tail\\n" + "x" * 6000 + "\\n")
    sys.stderr.write("ValueError: boom in trial 1\\n")
    sys.exit(3)
costtune.report(val_loss=float(n))
"""


def test_crashing_trial_is_failed_with_its_stderr_tail_and_the_sweep_goes_on(tmp_path: Path, db: str) -> None:
    file = sweep(tmp_path, "crash", CRASH_TRIAL, budget={"trials": 3})
    run(tmp_path, file, db)
    rows = trials(tmp_path, "crash", db)
    assert [r["state"] for r in rows] == ["complete", "failed", "complete"]
    crashed = rows[1]
    # no traceback: the reason line is the exit code and stderr's last line, then stderr's last lines
    assert crashed["error"].startswith("exited with code 3: ValueError: boom in trial 1\n")
    assert crashed["error"].rstrip().endswith("ValueError: boom in trial 1")
    assert "early noise" not in crashed["error"]  # a tail, not the whole log
    assert len(crashed["error"]) < 4200
    assert [(a["exit_reason"], a["exit_code"]) for a in crashed["attempts"]] == [("failed", 3)]
    assert crashed["value"] is None
    board = leaderboard(tmp_path, "crash", db)
    assert board["best_trial"] == 0
    failed = next(t for t in board["trials"] if t["trial"] == 1)
    assert (failed["rank"], failed["error"]) == (None, "exited with code 3: ValueError: boom in trial 1")


HUNG_TRIAL = """
import os, subprocess, sys, time
import costtune

n = os.environ["COSTTUNE_TRIAL_NUMBER"]
if n == "0":  # hangs silently, with a child of its own
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(os.path.join(os.environ["COSTTUNE_TRIAL_DIR"], "pids"), "w") as handle:
        handle.write(f"{os.getpid()} {child.pid}")
    costtune.report(val_loss=0.5)  # a value does not save a trial that overruns its limit
    time.sleep(600)
if n == "1":  # never stops printing
    costtune.report(val_loss=0.5)
    while True:
        print("still going", flush=True)
costtune.report(val_loss=1.0)
"""


def test_hung_trials_are_killed_at_trial_seconds_with_their_children(tmp_path: Path, db: str) -> None:
    file = sweep(tmp_path, "hung", HUNG_TRIAL, budget={"trials": 3, "trial_seconds": 1},
                 resources={"workers": 2})
    run(tmp_path, file, db)
    rows = trials(tmp_path, "hung", db)
    assert [r["state"] for r in rows] == ["failed", "failed", "complete"]
    for hung in rows[:2]:
        assert hung["error"].startswith("killed at its time limit of 1 s (budget.trial_seconds)")
        [attempt] = hung["attempts"]
        assert attempt["exit_reason"] == "timeout"
        assert attempt["billable_ms"] >= 1000  # not before its limit
    pids = [int(p) for p in (Path(rows[0]["output_dir"]) / "pids").read_text().split()]
    assert wait_gone(pids) == []  # the trial and the child it started
    assert leaderboard(tmp_path, "hung", db)["best_trial"] == 2


MALFORMED_TRIAL = """
print('costtune:report {"step": 0, "val_loss": 0.9', flush=True)
print('costtune:report {"step": 1, "val_loss": "high"}', flush=True)
print('costtune:report {"step": 1, "val_acc": 1' + '0' * 400 + '}', flush=True)
print('costtune:report {"step": -1, "val_loss": 0.5}', flush=True)
print('costtune:report {"step": 1, "val_loss": NaN, "val_loss": 0.1}', flush=True)
print('costtune:reporting finished', flush=True)
print('costtune:report {"step": 2, "val_loss": 0.25, "val_accuracy": 0.75}', flush=True)
"""


def test_malformed_report_lines_are_ignored_with_a_warning(tmp_path: Path, db: str) -> None:
    file = sweep(tmp_path, "malformed", MALFORMED_TRIAL, budget={"trials": 1})
    proc = run(tmp_path, file, db, quiet=True)  # warnings are shown even with --quiet
    expected = ["ignored metric line: not a JSON object (Expecting ',' delimiter), "
                "got '{\"step\": 0, \"val_loss\": 0.9'",
                "ignored metric line: val_loss must be a finite number, got \"high\"",
                "dropped val_acc=1e400 (an integer beyond float range) at step 1: not a finite number",
                "ignored metric line: step must be an integer from 0 to 2147483647, got -1",
                # duplicate keys: not the last value (0.1 would rank best), a bad line (issue 7)
                "ignored metric line: key \"val_loss\" is given twice; each key must appear once"]
    for message in expected:
        assert f"trial 0: {message}" in proc.stderr
    assert "reporting finished" not in proc.stderr  # ordinary output, no warning
    [row] = trials(tmp_path, "malformed", db)
    assert (row["state"], row["value"], row["last_step"]) == ("complete", 0.25, 2)
    assert (row["warnings"], row["warning_count"]) == (expected, 5)  # stored with the trial
    detail = costtune(tmp_path, "trials", "malformed", "0", db=db)  # and shown by the one-trial view
    assert detail.returncode == 0 and "warnings about its output:" in detail.stdout
    assert 'key "val_loss" is given twice' in detail.stdout
    store = Store(db)
    try:
        reports = store.reports(store.get_study("malformed").id, 0)
    finally:
        store.close()
    assert [(step, metrics) for step, metrics, _ in reports] == [(2, {"val_loss": 0.25, "val_accuracy": 0.75})]


@pytest.mark.parametrize(("metric", "hint"), [("val_los", "; did you mean 'val_loss'?"),
                                            ("val-loss", "; did you mean 'val_loss'?"), ("auc", ".")])
def test_an_objective_no_trial_reports_stops_the_sweep_after_the_first_trial(tmp_path: Path, db: str, metric: str,
                                                                             hint: str) -> None:
    """A misspelt objective.metric would burn every trial: the first trial that ends reporting other
    metrics stops the sweep, naming what it reported and the closest name (issue 7)."""
    script = "import time, costtune\ncosttune.report(step=0, val_loss=0.3, val_accuracy=0.9)\ntime.sleep(0.5)\n"
    file = sweep(tmp_path, "typo", script, objective={"metric": metric, "mode": "min"}, budget={"trials": 20},
                 resources={"workers": 2})
    proc = run(tmp_path, file, db, expect=2)
    # Two trials start together; under load either may be the first to end.
    last = proc.stderr.strip().splitlines()[-1]
    first = int(last.split(": trial ", 1)[1].split()[0])
    assert first in (0, 1)
    assert last == (
        f"error: objective.metric: no trial reports {metric!r}: trial {first} reported val_accuracy, val_loss{hint} "
        "Nothing more was launched; fix objective.metric in the sweep file and run it under a new name (--name)")
    rows = trials(tmp_path, "typo", db)
    assert len(rows) <= 3  # the first trial, the one running beside it, at most one claimed meanwhile
    assert rows[first]["state"] == "failed"
    assert rows[first]["error"].startswith(f"exited 0 but never reported metric {metric!r} "
                                           "(it reported val_accuracy, val_loss)")
    assert all(r["state"] in ("failed", "queued") for r in rows)  # the other was stopped and re-queued


# -- money ------------------------------------------------------------------------------------
def billed(billable_ms: int, rate_micros_per_hour: int) -> int:
    """The billing rule, written out independently: whole seconds up, then micro-dollars up."""
    seconds = -(-billable_ms // 1000)
    return -(-seconds * 1000 * rate_micros_per_hour // 3_600_000)


def test_usd_per_hour_charges_every_attempt_and_sums_per_trial(tmp_path: Path, db: str) -> None:
    file = sweep(tmp_path, "priced", "import time, costtune\ntime.sleep(0.3)\ncosttune.report(val_loss=1.0)\n",
                 budget={"trials": 3}, resources={"usd_per_hour": RATE_USD_PER_HOUR, "workers": 2})
    proc = run(tmp_path, file, db)
    rows = trials(tmp_path, "priced", db)
    store = Store(db)
    try:
        study_id = store.get_study("priced").id
        rates = {a.rate_micros_per_hour for r in rows for a in store.attempts(study_id, r["trial"])}
    finally:
        store.close()
    assert rates == {RATE_MICROS}  # snapshotted on each attempt
    total = 0
    for r in rows:
        for a in r["attempts"]:
            assert a["billable_ms"] >= 300
            assert a["cost_micros"] == billed(a["billable_ms"], RATE_MICROS) > 0
        assert r["cost_micros"] == sum(a["cost_micros"] for a in r["attempts"])
        assert Decimal(r["cost_usd"]) * 1_000_000 == r["cost_micros"]
        total += r["cost_micros"]
    board = {t["trial"]: t for t in leaderboard(tmp_path, "priced", db)["trials"]}
    assert {n: t["cost_micros"] for n, t in board.items()} == {r["trial"]: r["cost_micros"] for r in rows}
    assert all(Decimal(t["cost_usd"]) * 1_000_000 == t["cost_micros"] for t in board.values())
    spent = re.search(r"study total \(all runs\): 3 trials \(3 with a result\), \$([0-9.]+) spent", proc.stdout)
    assert spent is not None and Decimal(spent.group(1)) * 1_000_000 == total


def test_price_as_charges_a_local_trial_like_the_cloud_instance(tmp_path: Path, db: str) -> None:
    from costtune.prices import PriceTable

    spot = PriceTable.bundled().rate("aws", "us-east-1", "m5.large", "spot")
    file = sweep(tmp_path, "priced-as", "import costtune\ncosttune.report(val_loss=1.0)\n", budget={"trials": 2},
                 resources={"price_as": "aws/us-east-1/m5.large", "market": "spot", "workers": 2})
    run(tmp_path, file, db)
    store = Store(db)
    try:
        study_id = store.get_study("priced-as").id
        attempts = [a for n in (0, 1) for a in store.attempts(study_id, n)]
    finally:
        store.close()
    assert len(attempts) == 2
    for a in attempts:
        assert (a.instance_type, a.market, a.rate_micros_per_hour) == ("m5.large", "spot", spot.usd_per_hour_micros)
        assert a.billable_ms < 60_000  # a short trial still pays AWS's one-minute minimum
        assert a.cost_micros == -(-60 * 1000 * spot.usd_per_hour_micros // 3_600_000)


BUDGET_TRIAL = "import time, costtune\ncosttune.report(val_loss=1.0)\ntime.sleep(120)\n"


def test_budget_usd_stops_the_sweep_near_the_cap(tmp_path: Path, db: str) -> None:
    cap = 30_000  # $0.03: three worker-seconds at $36/hour
    workers = 2
    file = sweep(tmp_path, "capped", BUDGET_TRIAL, budget={"trials": 10, "usd": 0.03},
                 resources={"usd_per_hour": RATE_USD_PER_HOUR, "workers": workers})
    proc = run(tmp_path, file, db)
    rows = trials(tmp_path, "capped", db)
    spent = sum(r["cost_micros"] for r in rows)
    assert f"stopped: budget.usd reached: {format_usd(spent)} of {format_usd(cap)} spent; " \
           "1 queued trial waits for more budget" in proc.stdout
    # The workers share the binding cap (each launch reserves an equal share of what is left), so the
    # first two trials run at once until their shares run out; later trials get what is left; the last
    # trial claimed finds no money: it waits in the queue with no attempt, and the stop reason says so.
    assert len(rows) >= workers + 1
    assert [r["state"] for r in rows] == ["stopped"] * (len(rows) - 1) + ["queued"]
    assert {a["exit_reason"] for r in rows for a in r["attempts"]} == {"budget"}
    assert len(rows[-1]["attempts"]) == 0
    first, second = (r["attempts"][0] for r in rows[:2])
    assert second["started_at"] < first["ended_at"] and first["started_at"] < second["ended_at"]  # at once
    assert spent >= cap
    # The overshoot bound (README, "How far can spend pass the cap?"). Each launch reserved money first,
    # so the running trials together hold at most the cap; each is stopped at the deadline where its
    # charge reaches its reservation, noticed within one 0.05 s tick, then terminated: SIGTERM, and
    # SIGKILL after the grace period G (5 s), though these trials die at SIGTERM. Billed in whole
    # seconds, each of the W running trials can pass its reservation by at most rate x (1 s + ceil(G)):
    #     spent <= cap + W x rate x (1 + 5) <= cap + 2 x 10_000 x 6 (the old bound, with room, still holds).
    # A sweep that ignored the cap would run both trials for 120 s: 2_400_000.
    rate_per_s = RATE_MICROS // 3600
    assert spent <= cap + workers * rate_per_s * (1 + 6)

    again = run(tmp_path, file, db)  # resuming a spent sweep launches nothing
    assert "stopped: budget.usd reached" in again.stdout
    store = Store(db)
    try:
        after = store.history(store.get_study("capped").id).trials
    finally:
        store.close()
    assert [(t.number, t.cost_micros) for t in after] == [(r["trial"], r["cost_micros"]) for r in rows]


# -- samplers ---------------------------------------------------------------------------------
ORDER_TRIAL = """
import json, os, costtune
p = costtune.params()
with open(os.environ["ORDER_FILE"], "a") as handle:
    handle.write(json.dumps(p) + "\\n")
costtune.report(val_loss=p["lr"])
"""

GRID_SPACE = {"opt": {"type": "categorical", "choices": ["adam", "sgd", "rmsprop"]},
              "n": {"type": "int", "low": 1, "high": 4},
              "flag": {"values": [True, False]}}


def test_grid_tries_every_combination_exactly_once_with_parallel_workers(tmp_path: Path, db: str) -> None:
    script = "import costtune\np = costtune.params()\ncosttune.report(val_loss=p['n'] + p['flag'])\n"
    file = sweep(tmp_path, "grid", script, space=GRID_SPACE, sampler={"type": "grid"},
                 resources={"workers": 3})
    proc = run(tmp_path, file, db)
    assert "study total (all runs): 24 trials (24 with a result), $0 spent; stopped: every grid combination has run" \
        in proc.stdout
    board = leaderboard(tmp_path, "grid", db)["trials"]
    assert len(board) == 24
    assert {t["state"] for t in board} == {"complete"}
    combos = [(t["params"]["opt"], t["params"]["n"], t["params"]["flag"]) for t in board]
    assert sorted(combos) == sorted(itertools.product(["adam", "sgd", "rmsprop"], [1, 2, 3, 4], [True, False]))


def test_manual_sampler_runs_exactly_its_configs_in_order(tmp_path: Path, db: str) -> None:
    configs = [{"lr": 0.1, "hidden": 32}, {"lr": 0.001, "hidden": 128}, {"lr": 0.01, "hidden": 64}]
    order = tmp_path / "order.jsonl"
    file = sweep(tmp_path, "manual", ORDER_TRIAL, space={
        "lr": {"type": "loguniform", "low": 1e-4, "high": 0.3}, "hidden": {"type": "int", "low": 16, "high": 256}},
        sampler={"type": "manual", "configs": configs}, env={"ORDER_FILE": str(order)})
    run(tmp_path, file, db)
    assert [json.loads(line) for line in order.read_text().splitlines()] == configs
    rows = trials(tmp_path, "manual", db)
    assert [(r["trial"], r["params"], r["source"], r["state"]) for r in rows] == [
        (i, c, "manual", "complete") for i, c in enumerate(configs)]


def test_configs_added_to_a_manual_sweep_run_once_on_resume(tmp_path: Path, db: str) -> None:
    space = {"lr": {"type": "loguniform", "low": 1e-4, "high": 0.3}, "hidden": {"type": "int", "low": 16, "high": 256}}
    first = [{"lr": 0.1, "hidden": 32}]
    order = tmp_path / "order.jsonl"
    fields: dict[str, Any] = {"space": space, "env": {"ORDER_FILE": str(order)}}
    run(tmp_path, sweep(tmp_path, "grow", ORDER_TRIAL, sampler={"type": "manual", "configs": first}, **fields), db)
    more = [*first, {"lr": 0.001, "hidden": 128}]
    grown = sweep(tmp_path, "grow", ORDER_TRIAL, sampler={"type": "manual", "configs": more}, **fields)
    run(tmp_path, grown, db)
    run(tmp_path, grown, db)  # a third run finds nothing new to do
    assert [json.loads(line) for line in order.read_text().splitlines()] == more
    assert [r["params"] for r in trials(tmp_path, "grow", db)] == more


def test_enqueued_configs_count_toward_budget_trials_and_run_when_the_sweep_resumes(tmp_path: Path, db: str) -> None:
    """`costtune enqueue` adds a trial to the study: it counts toward budget.trials (issue 7: 41 of 40),
    so past it the enqueue is refused (exit 2, naming budget.trials) and `costtune studies` never shows
    more trials than the budget allows."""
    order = tmp_path / "order.jsonl"
    space = {"lr": {"type": "loguniform", "low": 1e-4, "high": 0.3}, "hidden": {"type": "int", "low": 16, "high": 256}}
    first = [{"lr": 0.1, "hidden": 16}, {"lr": 0.2, "hidden": 32}]
    fields: dict[str, Any] = {"space": space, "sampler": {"type": "manual", "configs": first},
                              "env": {"ORDER_FILE": str(order)}}
    file = sweep(tmp_path, "queued", ORDER_TRIAL, budget={"trials": 4}, **fields)
    run(tmp_path, file, db)

    # the first `costtune enqueue` as a user runs it, a real process; the others through the same command's code in
    # this process (a process start each was most of this test's time); the sweeps run as real `costtune run`s
    enqueue = costtune
    for number, assignments in ((2, ("lr=0.01", "hidden=64")), (3, ("lr=0.02", "hidden=65"))):
        proc = enqueue(tmp_path, "enqueue", "queued", *assignments, db=db)
        assert proc.returncode == 0, proc.stderr
        assert f"queued trial {number} for study queued" in proc.stdout
        enqueue = _in_process
    refused = enqueue(tmp_path, "enqueue", "queued", "lr=0.03", "hidden=66", db=db)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: budget.trials: study 'queued' holds 4 trials and budget.trials "
                                     "allows 4; an enqueued trial counts toward it, so nothing was queued: pass "
                                     "--raise-trials 5 (or more)")
    assert "Traceback" not in refused.stderr
    queued = trials(tmp_path, "queued", db)
    assert [(r["state"], r["source"]) for r in queued[2:]] == [("queued", "manual")] * 2

    run(tmp_path, file, db)
    ran = [json.loads(line) for line in order.read_text().splitlines()]
    assert ran == [*first, {"lr": 0.01, "hidden": 64}, {"lr": 0.02, "hidden": 65}]
    [row] = _read_json("studies", "--db", db)
    assert (row["finished"], row["trials"]) == (4, 4)

    # --raise-trials N raises the stored budget.trials on purpose, recorded like a cap change
    low = enqueue(tmp_path, "enqueue", "queued", "lr=0.03", "hidden=66", "--raise-trials", "4", db=db)
    assert low.returncode == 2 and low.stderr.startswith(
        "error: --raise-trials: must be more than budget.trials (4) and than the 4 trials study 'queued' holds, got 4")
    raised = enqueue(tmp_path, "enqueue", "queued", "lr=0.03", "hidden=66", "--raise-trials", "5", db=db)
    assert raised.returncode == 0, raised.stderr
    assert "queued trial 4 for study queued" in raised.stdout and "raised from 4 to 5" in raised.stdout
    entries = [e for e in _read_json("audit", "queued", "--db", db) if e["action"] == "trials.set"]
    assert [(e["detail"]["from"], e["detail"]["to"]) for e in entries] == [(4, 5)]
    # the file still says 4: its run records that, runs the queued trial, and the stop reason says so
    proc = run(tmp_path, file, db)
    assert "stopped: the study holds 5 trials, more than budget.trials (4): all have run" in proc.stdout
    [row] = _read_json("studies", "--db", db)
    assert (row["finished"], row["trials"]) == (5, 5)


@pytest.mark.parametrize(("assignments", "named"), [
    (["lr=0.01", "hidden=64", "dropout=0.5"], "config.dropout: unknown parameter; allowed: lr, hidden"),
    (["lr=5", "hidden=64"], "config.lr: must be a number in [0.0001, 0.3], got '5'"),
    (["lr=abc", "hidden=64"], "config.lr: must be a number in [0.0001, 0.3], got abc"),
    (["lr=0.01", "hidden=6.5"], "config.hidden: must be an integer in [16, 256] step 1, got '6.5'"),
    (["lr=0.01"], "config.hidden: missing"),
])
def test_bad_enqueue_exits_2_naming_it_and_adds_nothing(tmp_path: Path, db: str, assignments: list[str],
                                                         named: str) -> None:
    store = Store(db)
    try:
        info = store.create_study("bad-enqueue", metric="val_loss", mode="min",
                                  sampler={"type": "random", "seed": 0},
                                  space={"lr": {"type": "loguniform", "low": 1e-4, "high": 0.3},
                                         "hidden": {"type": "int", "low": 16, "high": 256}})
        proc = costtune(tmp_path, "enqueue", "bad-enqueue", *assignments, db=db)
        assert proc.returncode == 2
        assert named in proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""
        assert store.history(info.id).trials == ()
    finally:
        store.close()
