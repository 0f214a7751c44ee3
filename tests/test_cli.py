"""The `costtune` commands a user reads results with: studies, leaderboard, trials, logs, help, --db."""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from costtune.cli import main

TRIAL = """
import os, sys
import costtune

n = int(os.environ["COSTTUNE_TRIAL_NUMBER"])
p = costtune.params()
print(f"stdout-marker-{n}")
print(f"stderr-marker-{n}", file=sys.stderr)
costtune.report(step=0, val_loss=p["lr"] * 10, val_accuracy=0.5)
if n == 1:
    print("ValueError: boom", file=sys.stderr)
    sys.exit(3)
costtune.report(step=1, val_loss=p["lr"] * 10, val_accuracy=0.9)
"""
CONFIGS = [{"lr": 0.01, "act": "relu"}, {"lr": 0.1, "act": "tanh"}, {"lr": 0.001, "act": "relu"}]


@dataclass(frozen=True)
class Finished:
    """A store holding one finished sweep: trial 0 and 2 complete (2 best), trial 1 failed."""

    db: str
    env: dict[str, str]
    root: Path

    def run(self, *args: str, db: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        cmd = ["costtune", *args, *(["--db", self.db] if db else [])]
        return subprocess.run(cmd, cwd=self.root, env=env or self.env, capture_output=True, text=True, timeout=120)

    def ok(self, *args: str) -> str:
        proc = self.run(*args)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Finished]:
    root = tmp_path_factory.mktemp("cli")
    env = {k: v for k, v in os.environ.items() if k != "COSTTUNE_DB"}
    env["COSTTUNE_HOME"] = str(root / "home")
    (root / "trial.py").write_text(TRIAL)
    doc = {
        "name": "clistudy",
        "objective": {"metric": "val_loss", "mode": "min"},
        "space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 0.3},
                  "act": {"type": "categorical", "choices": ["relu", "tanh"]}},
        "sampler": {"type": "manual", "configs": CONFIGS},
        "resources": {"usd_per_hour": 3.6},
        "output_dir": str(root / "runs"),
        "command": ["python", "trial.py", "--lr", "{lr}", "--act", "{act}"],
    }
    (root / "sweep.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    store = Finished(db=f"sqlite:///{root / 'store.db'}", env=env, root=root)
    store.ok("run", "sweep.yaml", "--quiet")
    yield store


@pytest.fixture(scope="module")
def board(finished: Finished) -> dict[str, Any]:
    """`costtune leaderboard clistudy --format json`"""
    return json.loads(finished.ok("leaderboard", "clistudy", "--format", "json"))


@pytest.mark.parametrize("command", [None, *sorted(main.commands)])
def test_help_for_every_command_exits_0(command: str | None) -> None:
    args = ["costtune", *([command] if command else []), "--help"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: costtune")
    if command is None:
        assert all(name in proc.stdout for name in main.commands)
    elif command not in ("demo", "prices", "plan", "agent") and not isinstance(main.commands[command], click.Group):
        assert "--db URL" in proc.stdout  # prices, plan and agent never open a store; a group's commands say it


def test_studies_lists_each_study_with_trials_best_and_cost(finished: Finished, board: dict[str, Any]) -> None:
    [row] = json.loads(finished.ok("studies", "--format", "json"))
    total = sum(t["cost_micros"] for t in board["trials"])
    assert total > 0
    assert {k: row[k] for k in ("name", "metric", "mode", "trials", "finished", "best_value", "cost_micros")} == {
        "name": "clistudy", "metric": "val_loss", "mode": "min", "trials": 3, "finished": 3,
        "best_value": 0.01, "cost_micros": total}
    table = finished.ok("studies")
    assert "clistudy" in table and "val_loss (min)" in table
    assert "3 (2 with" in table and "1 failed)" in table  # the cell may wrap on 80 columns
    assert (row["with_result"], row["failed"], row["no_result"]) == (2, 1, 0)  # trial 1 failed: no result


def test_leaderboard_json_lists_every_trial_best_first(finished: Finished, board: dict[str, Any]) -> None:
    assert (board["study"], board["metric"], board["mode"], board["best_trial"]) == (
        "clistudy", "val_loss", "min", 2)
    rows = board["trials"]
    assert [(r["rank"], r["trial"], r["state"]) for r in rows] == [
        (1, 2, "complete"), (2, 0, "complete"), (None, 1, "failed")]
    by_number = {r["trial"]: r for r in rows}
    for number, config in enumerate(CONFIGS):
        r = by_number[number]
        assert r["params"] == config
        assert r["value"] == pytest.approx(config["lr"] * 10)
        assert r["metrics"]["val_loss"] == r["value"]
        assert r["cost_micros"] > 0 and r["attempts"] == 1
        assert str(Path(r["output_dir"]).parent) == str(finished.root / "runs" / "clistudy")  # its own directory
    assert by_number[0]["metrics"]["val_accuracy"] == 0.9 and by_number[0]["last_step"] == 1
    assert by_number[1]["metrics"]["val_accuracy"] == 0.5  # a failed trial keeps what it reported
    assert by_number[1]["error"] == "exited with code 3: ValueError: boom"  # the reason line


def test_leaderboard_csv_carries_the_json_rows(finished: Finished, board: dict[str, Any]) -> None:
    text = finished.ok("leaderboard", "clistudy", "--format", "csv")
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == ["rank", "trial", "state", "value", "cost_usd", "cost_micros", "duration_s",
                                 "attempts", "last_step", "param.act", "param.lr", "metric.val_accuracy",
                                 "metric.val_loss", "output_dir", "error", "rung_usd", "rung_micros",
                                 "instance_type", "market", "preemptions", "waste_usd", "waste_micros",
                                 "charged_s"]
    rows = list(reader)
    assert len(rows) == len(board["trials"]) == 3
    for csv_row, js in zip(rows, board["trials"], strict=True):
        assert int(csv_row["trial"]) == js["trial"]
        assert csv_row["state"] == js["state"]
        assert csv_row["rank"] == ("" if js["rank"] is None else str(js["rank"]))
        assert csv_row["value"] == ("" if js["value"] is None else repr(js["value"]))
        assert (csv_row["param.lr"], csv_row["param.act"]) == (repr(js["params"]["lr"]), js["params"]["act"])
        assert float(csv_row["metric.val_loss"]) == js["metrics"]["val_loss"]
        assert (csv_row["cost_usd"], int(csv_row["cost_micros"])) == (js["cost_usd"], js["cost_micros"])
        assert csv_row["output_dir"] == js["output_dir"]
        assert csv_row["error"] == (js["error"] or "")


def test_leaderboard_table_shows_every_trial(finished: Finished) -> None:
    table = finished.ok("leaderboard", "clistudy")
    assert "leaderboard: clistudy (val_loss, min)" in table
    assert table.count("complete") == 2 and table.count("failed") == 1
    for header in ("lr", "act", "cost", "val_loss"):
        assert header in table
    limited = finished.ok("leaderboard", "clistudy", "--limit", "1")
    assert "complete" in limited and "failed" not in limited


def test_trials_lists_attempts_and_errors_in_creation_order(finished: Finished) -> None:
    rows = json.loads(finished.ok("trials", "clistudy", "--format", "json"))
    assert [(r["trial"], r["state"], r["source"], r["params"]) for r in rows] == [
        (0, "complete", "manual", CONFIGS[0]), (1, "failed", "manual", CONFIGS[1]),
        (2, "complete", "manual", CONFIGS[2])]
    assert [[(a["number"], a["exit_reason"], a["exit_code"]) for a in r["attempts"]] for r in rows] == [
        [(1, "completed", 0)], [(1, "failed", 3)], [(1, "completed", 0)]]
    assert rows[1]["error"].startswith("exited with code 3: ValueError: boom\n")
    assert "stderr-marker-1" in rows[1]["error"] and rows[1]["error"].rstrip().endswith("ValueError: boom")
    table = finished.ok("trials", "clistudy")
    assert "trials: clistudy" in table and "exited with code 3" in table


def test_logs_prints_a_trials_stdout_or_stderr(finished: Finished) -> None:
    out = finished.ok("logs", "clistudy", "0")
    assert "stdout-marker-0" in out and 'costtune:report {"step":1,' in out
    assert "stderr-marker" not in out and "stdout-marker-2" not in out
    err = finished.ok("logs", "clistudy", "1", "--stderr")
    assert "stderr-marker-1" in err and "ValueError: boom" in err and "stdout-marker" not in err
    assert finished.ok("logs", "clistudy", "1", "--stderr", "--tail", "1") == "ValueError: boom\n"


@pytest.mark.parametrize("args", [
    ["leaderboard", "nosuch"], ["trials", "nosuch"],
    ["logs", "nosuch", "0"], ["enqueue", "nosuch", "lr=0.01"],
])
def test_unknown_study_exits_2_naming_it(finished: Finished, args: list[str]) -> None:
    proc = finished.run(*args)
    assert proc.returncode == 2
    # one line, also when piped: where it looked and what it holds
    assert f"error: study: no study named 'nosuch' in {finished.db}; known studies: clistudy\n" in proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr


def test_unknown_trial_number_exits_2(finished: Finished) -> None:
    proc = finished.run("logs", "clistudy", "99")
    assert proc.returncode == 2 and "99" in proc.stderr and "Traceback" not in proc.stderr


def test_costtune_db_env_works_like_db(finished: Finished) -> None:
    expected = finished.ok("leaderboard", "clistudy", "--format", "json")
    env = {**finished.env, "COSTTUNE_DB": finished.db}
    via_env = finished.run("leaderboard", "clistudy", "--format", "json", db=False, env=env)
    assert via_env.returncode == 0, via_env.stderr
    assert via_env.stdout == expected
    # without either, the default store under COSTTUNE_HOME: a different, empty one
    default = finished.run("studies", "--format", "json", db=False)
    assert default.returncode == 0 and json.loads(default.stdout) == []
    # an explicit --db wins over the environment
    elsewhere = {**finished.env, "COSTTUNE_DB": str(finished.root / "other.db")}
    assert finished.run("leaderboard", "clistudy", "--format", "json", env=elsewhere).stdout == expected


@pytest.mark.demo
@pytest.mark.timeout(240)
def test_demo_smoke(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    proc = subprocess.run(["costtune", "demo", "--trials", "3", "--quiet", "--db", db], cwd=tmp_path,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 trials" in proc.stdout and "best trial's output:" in proc.stdout
    [study] = json.loads(subprocess.run(["costtune", "studies", "--format", "json", "--db", db],
                                        capture_output=True, text=True, timeout=60).stdout)
    assert study["name"].startswith("digits-demo-") and (study["trials"], study["finished"]) == (3, 3)
    board = json.loads(subprocess.run(["costtune", "leaderboard", study["name"], "--format", "json", "--db", db],
                                      capture_output=True, text=True, timeout=60).stdout)
    assert {t["state"] for t in board["trials"]} == {"complete"}
    assert all(0 < t["metrics"]["val_accuracy"] <= 1 and t["cost_micros"] > 0 for t in board["trials"])
    best = next(t for t in board["trials"] if t["trial"] == board["best_trial"])
    with open(Path(best["output_dir"]) / "model.pkl", "rb") as handle:
        saved = pickle.load(handle)  # the trained model lands in the trial's own directory
    assert hasattr(saved["model"], "predict_proba") and hasattr(saved["scaler"], "transform")


def test_logs_and_trials_show_the_command_a_trial_really_ran(finished: Finished) -> None:
    header = finished.ok("logs", "clistudy", "0").splitlines()[0]
    assert header.startswith("=== costtune attempt 1 at ") and header.endswith(" trial.py --lr 0.01 --act relu")
    assert "{lr}" not in header
    rows = json.loads(finished.ok("trials", "clistudy", "--format", "json"))
    for row, config in zip(rows, CONFIGS, strict=True):
        [attempt] = row["attempts"]
        argv = attempt["argv"]
        assert Path(argv[0]).name.startswith("python") and Path(argv[0]).is_absolute()  # costtune's interpreter
        assert argv[1:] == ["trial.py", "--lr", str(config["lr"]), "--act", config["act"]]
    one = json.loads(finished.ok("trials", "clistudy", "1", "--format", "json"))
    assert one == rows[1]
    detail = finished.ok("trials", "clistudy", "1")
    assert "attempt 1 ran: " in detail and "trial.py --lr 0.1 --act tanh" in detail
    assert "ValueError: boom" in detail  # the whole error, not its first line
    assert finished.run("trials", "clistudy", "7").returncode == 2


def test_top_level_help_cuts_no_description(tmp_path: Path) -> None:
    for columns in ("80", "200"):
        env = {**os.environ, "COLUMNS": columns, "COSTTUNE_HOME": str(tmp_path / "home")}
        out = subprocess.run(["costtune", "--help"], capture_output=True, text=True, env=env, timeout=60).stdout
        commands = out.split("Commands:", 1)[1]
        assert "..." not in commands
        assert "Queue a configuration to run next." in commands  # not "Queue a configuration for STUDY, e.g."
        assert "every attempt in order" in " ".join(commands.split())


def test_db_help_names_the_real_default_store(tmp_path: Path) -> None:
    home = tmp_path / "elsewhere"
    env = {**os.environ, "COSTTUNE_HOME": str(home), "COLUMNS": "200"}
    for command in ("leaderboard", "studies", "report"):
        out = subprocess.run(["costtune", command, "--help"], capture_output=True, text=True, env=env, timeout=60)
        text = "".join(out.stdout.split())  # click wraps long help, a long path too
        assert f"default{home / 'costtune.db'}" in text and "~/.local/share" not in text
