"""`costtune studies delete` and `costtune studies rename`, on SQLite and PostgreSQL; "did you mean" for names."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import func
from sqlmodel import Session, select

from costtune.cli import main
from costtune.errors import StoreError
from costtune.runner.simulate import run_simulated
from costtune.spec import parse_sweep
from costtune.store import Store
from costtune.store.admin import StudyBusy, study_scope
from costtune.store.ledger_models import ReservationRow, ScopeBalanceRow, ScopeCapRow
from costtune.store.models import AttemptRow, ReportRow, StudyRow, TrialRow
from costtune.store.owner import controller_id


def sim_spec(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "objective": {"metric": "loss", "mode": "min"},
            "space": {"x": {"type": "uniform", "low": 0, "high": 1}}, "sampler": {"type": "random", "seed": 2},
            "budget": {"trials": 4, "usd": 0.05},
            "resources": {"provider": "simulated", "region": "us-east-1", "instance_type": "m5.large",
                          "workers": 2, "simulation": {"workload": "simworkloads:steady", "max_steps": 5}}, **extra}


def counts(store: Store) -> dict[str, int]:
    with Session(store.engine) as s:
        return {t.__tablename__: s.exec(select(func.count()).select_from(t)).one()  # type: ignore[attr-defined]
                for t in (StudyRow, TrialRow, AttemptRow, ReportRow, ReservationRow, ScopeBalanceRow, ScopeCapRow)}


def test_delete_removes_the_study_and_its_own_scope_and_keeps_other_scopes_books(store_url: str) -> None:
    store = Store(store_url)
    try:
        run_simulated(parse_sweep(sim_spec("keep")), store)
        before_keep = counts(store)
        run_simulated(parse_sweep(sim_spec("oops")), store)
        oops = store.get_study("oops")
        scope = study_scope(oops.id)
        assert store.balance(scope).spent_micros > 0
        # money of this study that also counted against a team: charged, and one still held by a dead controller
        trial_ids = [t for t in _trial_ids(store, oops.id)]
        store.reserve("team-charged", [scope, "team:vision"], 300)
        store.charge("team-charged", 250)
        store.reserve(f"ct-{oops.id}-{trial_ids[0]}-9", [scope, "team:vision"], 400)  # held, no attempt booked
        team = store.balance("team:vision")
        assert (team.spent_micros, team.reserved_micros) == (250, 400)

        done = store.delete_study(oops.id)
        assert (done.name, done.trials) == ("oops", 4) and done.attempts >= 4 and done.reports > 0
        assert done.reservations_kept == 2  # both counted against the team: its history
        after = counts(store)
        assert after["study"] == before_keep["study"] and after["trial"] == before_keep["trial"]
        assert after["attempt"] == before_keep["attempt"] and after["report"] == before_keep["report"]
        assert store.find_study("oops") is None and store.get_study("keep")
        assert scope not in store.balances()  # the study's own scope is closed
        team = store.balance("team:vision")
        assert (team.spent_micros, team.reserved_micros) == (250, 0)  # spent stays, the held one was released
        kept = {r.state: r for r in _reservations(store) if "team:vision" in json.loads(r.scopes_json)}
        assert set(kept) == {"charged", "released"}
        for r in kept.values():
            assert json.loads(r.scopes_json) == ["team:vision"] and r.attempt_id is None
            assert "@deleted-oops-" in r.key
        assert kept["charged"].charged_micros == 250
        assert not any(study_scope(oops.id) in r.scopes_json for r in _reservations(store))
        # the name is free again, and a new study under it starts from nothing
        run_simulated(parse_sweep(sim_spec("oops")), store)
        assert len(store.history(store.get_study("oops").id).trials) == 4
    finally:
        store.close()


def _trial_ids(store: Store, study_id: int) -> list[int]:
    with Session(store.engine) as s:
        return list(s.exec(select(TrialRow.id).where(TrialRow.study_id == study_id)).all())  # type: ignore[arg-type]


def _reservations(store: Store) -> list[ReservationRow]:
    with Session(store.engine) as s:
        return list(s.exec(select(ReservationRow)).all())


def test_delete_refuses_while_a_live_controller_runs_a_trial(store_url: str) -> None:
    store = Store(store_url)
    try:
        run_simulated(parse_sweep(sim_spec("busy")), store)
        info = store.get_study("busy")
        store.enqueue(info.id, {"x": 0.5})
        claimed = store.claim_next(info.id, None, owner=controller_id())  # this process: alive
        assert claimed is not None
        before = counts(store)
        with pytest.raises(StudyBusy, match="live controller"):
            store.delete_study(info.id)
        assert counts(store) == before
        result = CliRunner().invoke(main, ["studies", "delete", "busy", "--yes", "--db", store_url])
        assert result.exit_code == 1 and "live controller" in result.output and "Traceback" not in result.output
        assert counts(store) == before
        # a rename is refused the same way: the live controller knows the study by its name
        with pytest.raises(StudyBusy, match="live controller"):
            store.rename_study(info.id, "busy2")
        result = CliRunner().invoke(main, ["studies", "rename", "busy", "busy2", "--db", store_url])
        assert result.exit_code == 1 and "live controller" in result.output and "Traceback" not in result.output
        assert store.find_study("busy2") is None
        # once its controller is gone (a dead owner), the study can go
        done = store.delete_study(info.id, is_alive=lambda owner, heartbeat: False)
        assert done.trials == 5 and store.find_study("busy") is None
    finally:
        store.close()


def test_cli_delete_asks_or_needs_yes_and_can_remove_output(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'store.db'}"
    trial = tmp_path / "trial.py"
    trial.write_text("import costtune\ncosttune.report(step=0, loss=1.0)\n")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"name": "local", "objective": {"metric": "loss", "mode": "min"},
                                     "space": {"lr": {"type": "uniform", "low": 0, "high": 1}},
                                     "budget": {"trials": 2}, "output_dir": str(tmp_path / "runs"),
                                     "command": ["python", str(trial), "--lr", "{lr}"]}))
    runner = CliRunner()
    assert runner.invoke(main, ["run", str(sweep), "--db", db, "--quiet"]).exit_code == 0
    board = json.loads(runner.invoke(main, ["leaderboard", "local", "--db", db, "--format", "json"]).output)
    dirs = sorted(Path(t["output_dir"]) for t in board["trials"])
    assert [d.name for d in dirs] == ["trial-0000", "trial-0001"] and all(d.is_dir() for d in dirs)

    no_tty = runner.invoke(main, ["studies", "delete", "local", "--db", db])  # nobody to ask
    assert no_tty.exit_code == 1 and "--yes" in no_tty.output
    declined = _with_terminal(["costtune", "studies", "delete", "local", "--db", db], "n\n", tmp_path)
    assert declined[0] == 1 and "nothing deleted" in declined[1]
    assert json.loads(runner.invoke(main, ["studies", "--db", db, "--format", "json"]).output)[0]["name"] == "local"

    agreed = _with_terminal(["costtune", "studies", "delete", "local", "--db", db, "--delete-output"], "y\n", tmp_path)
    assert agreed[0] == 0, agreed[1]
    assert "deleted study 'local': 2 trials" in agreed[1] and "removed 2 trial output directories" in agreed[1]
    assert not any(d.exists() for d in dirs) and not dirs[0].parent.exists()  # the emptied folder goes too
    assert json.loads(runner.invoke(main, ["studies", "--format", "json", "--db", db]).output) == []
    assert runner.invoke(main, ["studies", "delete", "local", "--yes", "--db", db]).exit_code == 2  # gone


def _with_terminal(args: list[str], answer: str, cwd: Path) -> tuple[int, str]:
    """Run a command whose stdin is a terminal (so it asks), type ``answer``; (exit code, all output)."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COSTTUNE_HOME": str(cwd / "home")}
    proc = subprocess.Popen(args, stdin=follower, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd, env=env)
    os.close(follower)
    os.write(leader, answer.encode())
    out, _ = proc.communicate(timeout=60)
    os.close(leader)
    return proc.returncode, out.decode()


def test_rename_checks_the_new_name_and_keeps_everything_else(store_url: str) -> None:
    store = Store(store_url)
    try:
        run_simulated(parse_sweep(sim_spec("first")), store)
        run_simulated(parse_sweep(sim_spec("other")), store)
        board = _board(store_url, "first")
    finally:
        store.close()
    runner = CliRunner()
    for bad, code, text in (("no spaces", 2, "NEW: must be letters, digits"), ("other", 2, "already exists"),
                            ("", 2, "NEW:")):
        result = runner.invoke(main, ["studies", "rename", "first", bad, "--db", store_url])
        assert result.exit_code == code and text in result.output, result.output
    result = runner.invoke(main, ["studies", "--db", store_url, "rename", "first", "second"])  # group's --db
    assert result.exit_code == 0, result.output
    assert _board(store_url, "second") == {**board, "study": "second"}
    missing = runner.invoke(main, ["leaderboard", "first", "--db", store_url])
    assert missing.exit_code == 2 and "no study named 'first'" in missing.output
    store = Store(store_url)
    try:
        assert store.get_study("second").spec["name"] == "second"
        with pytest.raises(StoreError, match="already exists"):
            store.rename_study(store.get_study("second").id, "other")
        resumed = run_simulated(parse_sweep(sim_spec("second", budget={"trials": 6, "usd": 0.05})), store)
        assert resumed.launched == 2  # the renamed study resumes under its new name: two more trials
        assert len(store.history(store.get_study("second").id).trials) == 6
    finally:
        store.close()


def _board(url: str, name: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["leaderboard", name, "--db", url, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_a_missing_study_suggests_close_names(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(db)
    try:
        for name in ("digits-mlp", "sim-hyperband"):
            run_simulated(parse_sweep(sim_spec(name)), store)
    finally:
        store.close()
    for typo, hint in (("digits-mpl", "did you mean 'digits-mlp'?"), ("Sim-Hyperband", "did you mean 'sim-hyperband'?"),
                       ("zzz", "known studies: digits-mlp, sim-hyperband")):
        for command in (["leaderboard", typo], ["report", typo], ["trials", typo], ["studies", "delete", typo]):
            result = CliRunner().invoke(main, [*command, "--db", db])
            assert result.exit_code == 2 and hint in result.output, (command, result.output)
