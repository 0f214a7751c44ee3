"""`costtune studies` shows why each study's last run stopped: stored by the run as it ends (the reason its
summary printed), cleared as the next one starts; in the table and in `--format json`, on every backend."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner
from simworkloads import with_changes
from sqlalchemy import text
from test_budget_tail import TAIL

import costtune
from costtune.cli.app import main
from costtune.history import Mode
from costtune.store import Store


def _studies(db: str, *args: str) -> str:
    result = CliRunner().invoke(main, ["studies", "--db", db, *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_studies_lists_why_each_study_last_run_stopped(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    runs = {
        "broke": with_changes(TAIL, name="broke", budget={"usd": 0.005}),  # cannot carry a trial to a report
        "done": with_changes(TAIL, name="done", budget={"usd": 0.5, "trials": 2}),
    }
    for name, cfg in runs.items():
        sweep = tmp_path / f"{name}.yaml"
        sweep.write_text(yaml.safe_dump(cfg), encoding="utf-8")
        CliRunner().invoke(main, ["run", str(sweep), "--db", db, "--quiet"])
    listed = {row["name"]: row["last_stop"] for row in json.loads(_studies(db, "--format", "json"))}
    assert listed["broke"].startswith("budget: $0.005 left cannot carry a trial to its first report")
    assert listed["done"] == "all 2 trials run (budget.trials)"
    shown = _studies(db)
    # the last column, cell by cell: a wrapped cell reads on, line after line (other wrapped cells of the row,
    # the trials' outcomes, do not come between)
    last = " ".join(line.split("│")[-2] for line in shown.splitlines() if line.count("│") > 2)
    last = " ".join(last.split())
    assert any(line.startswith("┃") and "last stop" in line for line in shown.splitlines()), shown  # a column
    assert "all 2 trials run (budget.trials)" in last
    assert "budget: $0.005 left cannot carry a trial" in last


def test_an_in_process_optimize_records_why_it_ended(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = costtune.create_study(
        "inproc", storage=url, metric="loss", space={"x": {"type": "uniform", "low": 0, "high": 1}}
    )
    study.optimize(lambda trial: trial.params["x"], n_trials=2)
    (row,) = json.loads(_studies(url, "--format", "json"))
    assert row["last_stop"] == study.stop_reason == "2 trials run (n_trials)"


def test_last_stop_is_set_and_cleared_on_every_backend_and_added_to_older_stores(store_url: str) -> None:
    store = Store(store_url)
    info = store.create_study(
        "s", metric="loss", mode=Mode.MIN, space={"x": {"type": "int", "low": 0, "high": 9}}, sampler={"type": "grid"}
    )
    assert store.get_study("s").last_stop is None  # no run has ended yet
    store.set_last_stop(info.id, "interrupted")
    assert [s.last_stop for s in store.list_studies()] == ["interrupted"]
    store.set_last_stop(info.id, None)  # a run begins
    assert store.get_study("s").last_stop is None
    with store.engine.begin() as conn:  # a store made before the column existed
        conn.execute(text("ALTER TABLE study DROP COLUMN last_stop"))
    store.close()
    older = Store(store_url)  # opening it adds the column; the study is intact
    assert older.get_study("s").last_stop is None
    older.set_last_stop(info.id, "every grid combination has run")
    assert older.get_study("s").last_stop == "every grid combination has run"
    older.close()
