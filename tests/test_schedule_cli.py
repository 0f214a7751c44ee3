"""`costtune schedule` / `scheduler` / `models` as a user types them: bad input exits 2 and stores nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from test_display import money_rule_violations
from test_scheduler import sweep

from costtune.cli import main
from costtune.store import Store


def write(tmp_path: Path, raw: dict[str, Any], name: str = "sweep.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return str(path)


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize(("args", "extra", "named"), [
    (["--cron", "0 25 * * *"], {}, "--cron"),
    (["--cron", "every night"], {}, "--cron"),
    (["--cron", "0 2 * * *", "--tz", "Europe/Atlantis"], {}, "--tz"),
    (["--every", "2 weeks"], {}, "--every"),
    (["--cron", "0 2 * * *"], {"colour": "red"}, "colour"),
    (["--cron", "0 2 * * *"], {"budget": {"trials": 0}}, "budget.trials"),
    (["--cron", "0 2 * * *", "--cap", "-3"], {}, "--cap"),
    (["--cron", "0 2 * * *", "--webhook", "ftp://x"], {}, "--webhook"),
    (["--cron", "0 2 * * *", "--misfire-grace", "soon"], {}, "--misfire-grace"),
    (["--cron", "0 2 * * *", "--artifact-root", "s3://"], {}, "--artifact-root"),
    (["--cron", "0 2 * * *", "--cap", "0.000001"], {}, "--cap"),
])
def test_bad_schedule_input_exits_2_names_the_field_and_stores_nothing(tmp_path: Path, args: list[str],
                                                                      extra: dict[str, Any], named: str) -> None:
    db = tmp_path / "s.db"
    Store(f"sqlite:///{db}").close()
    before = db.read_bytes()
    result = cli("schedule", "add", "nightly", write(tmp_path, {**sweep(), **extra}), "--db", str(db), *args)
    assert result.exit_code == 2, result.output
    assert named in result.output and "Traceback" not in result.output
    assert db.read_bytes() == before


def test_add_stores_the_file_content_and_later_edits_change_nothing(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    path = write(tmp_path, sweep(trials=3))
    assert cli("schedule", "add", "nightly", path, "--cron", "0 2 * * *", "--tz", "America/New_York",
               "--db", db).exit_code == 0
    Path(path).write_text(yaml.safe_dump(sweep(trials=9)), encoding="utf-8")
    again = cli("schedule", "add", "nightly", path, "--every", "6h", "--db", db)
    assert again.exit_code == 2 and "already exists" in again.output
    shown = json.loads(cli("schedule", "show", "nightly", "--json", "--db", db).output)
    assert shown["sweep"]["budget"]["trials"] == 3 and shown["trigger"]["tz"] == "America/New_York"
    assert cli("schedule", "update", "nightly", "--sweep", path, "--overlap", "queue", "--db", db).exit_code == 0
    shown = json.loads(cli("schedule", "show", "nightly", "--json", "--db", db).output)
    assert shown["sweep"]["budget"]["trials"] == 9 and shown["settings"]["overlap"] == "queue"
    assert cli("schedule", "pause", "nightly", "--db", db).exit_code == 0
    assert "paused" in cli("schedule", "list", "--db", db).output
    refused = cli("schedule", "remove", "nightly", "--db", db)  # no terminal to ask: --yes is needed
    assert refused.exit_code == 2 and "pass --yes" in refused.output
    assert cli("schedule", "remove", "nightly", "--yes", "--db", db).exit_code == 0
    assert cli("schedule", "show", "nightly", "--db", db).exit_code == 2


def test_run_now_in_a_real_process_then_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = str(tmp_path / "s.db")
    monkeypatch.setenv("COSTTUNE_DB", db)
    assert cli("schedule", "add", "nightly", write(tmp_path, sweep(trials=3)), "--every", "1d").exit_code == 0
    env = {**os.environ, "COSTTUNE_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "costtune.cli", "schedule", "run-now", "nightly"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "finished" in done.stdout and "Model nightly:1 promoted" in done.stderr
    listing = cli("models", "list")
    assert "nightly" in listing.output and "1 *" in listing.output
    assert money_rule_violations(listing.output) == []
    artifact = Path(cli("models", "path", "nightly:1").output.strip())
    assert json.loads((artifact / "model.json").read_text())["model"] == "nightly"
    assert cli("models", "path", "nightly:7").exit_code == 2
    assert cli("models", "promote", "nightly").exit_code == 2  # NAME:VERSION required
    once = cli("scheduler", "--once")
    assert once.exit_code == 0 and "0 runs" in once.output  # nothing due: the daily run is a day away


def test_sigterm_stops_a_run_which_the_next_scheduler_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM to a process running a scheduled sweep: exit 130, the run recorded interrupted; the next
    scheduler resumes the same study (its finished trials kept) rather than starting over."""
    import signal
    import time

    from costtune.schedules.daemon import SchedulerDaemon

    db = str(tmp_path / "s.db")
    raw = sweep(trials=400)  # far more than can run before the signal, however slow the machine
    raw["space"] = {"x": {"type": "uniform", "low": 0, "high": 1}}
    raw["resources"]["simulation"]["workload"] = "simworkloads:sluggish"
    raw["resources"]["workers"] = 1
    assert cli("schedule", "add", "slow", write(tmp_path, raw), "--every", "1d", "--db", db).exit_code == 0
    env = {**os.environ, "COSTTUNE_HOME": str(tmp_path / "home"), "COSTTUNE_DB": db,
           "COSTTUNE_TEST_STEP_SLEEP": "0.05", "PYTHONPATH": str(Path(__file__).parent)}
    proc = subprocess.Popen([sys.executable, "-m", "costtune.cli", "schedule", "run-now", "slow"], env=env,
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = Store(f"sqlite:///{db}")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until the sweep has finished a trial
            study = next(iter(store.list_studies()), None)
            if study is not None and any(t.state.finished for t in store.history(study.id).trials):
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        (run,) = store.schedule_runs(store.get_schedule("slow").id)
        assert run.state == "interrupted", run
        before = [t.number for t in store.history(store.get_study(run.study_name).id).trials if t.state.finished]
        assert 0 < len(before) < 400
        import simworkloads  # noqa: F401  (the workload the stored sweep names)

        monkeypatch.setenv("COSTTUNE_TEST_STEP_SLEEP", "0")
        resumed = SchedulerDaemon(store, owner="next", say=lambda _m: None).run_pending()
        assert [(r.id, r.state, r.study_name) for r in resumed] == [(run.id, "finished", run.study_name)]
        history = store.history(store.get_study(run.study_name).id)
        assert len(history.trials) == 400 and set(before) <= {t.number for t in history.trials if t.state.finished}
        assert len(store.list_studies()) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
        store.close()
