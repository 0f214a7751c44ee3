"""What the CLI shows a user is what the store holds: values a user copies back work, listings say why."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from costtune.cli import main


@pytest.fixture(autouse=True)
def _own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSTTUNE_HOME", str(tmp_path / "home"))


def _cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


REPORT = "print('costtune:report {{\"step\": 0, \"loss\": 1.0}}')"  # braces doubled: not placeholders


def test_rungs_costtune_chose_are_shown_exactly_and_a_file_giving_them_resumes(tmp_path: Path) -> None:
    # $0.05/h: 120 s is $0.0016666..., stored as 1,667 micro-dollars; shown rounded ($0.00167) a user who
    # copied it into the file was refused on resume ("already exists with scheduler.min_usd 0.001667").
    db = str(tmp_path / "store.db")
    sweep: dict[str, Any] = {
        "name": "chosen", "objective": {"metric": "loss", "mode": "min"},
        "space": {"x": {"type": "uniform", "low": 0, "high": 1}},
        "sampler": {"type": "random", "seed": 0}, "scheduler": {"type": "asha"},
        "budget": {"usd": 1, "trials": 1},
        "resources": {"provider": "local", "usd_per_hour": 0.05, "workers": 1},
        "command": [sys.executable, "-c", REPORT],
    }
    path = _write(tmp_path / "sweep.yaml", sweep)
    assert _cli("run", str(path), "--db", db, "--quiet").exit_code == 0
    plan = " ".join(_cli("plan", str(path), "--db", db, "--no-forecast").stdout.split())
    shown_min = re.search(r"min_usd \$([0-9.]+) = 120 s", plan)
    assert shown_min is not None, plan
    assert shown_min.group(1) == "0.001667"  # every micro-dollar of what is stored
    [study] = json.loads(_cli("studies", "--db", db, "--format", "json").stdout)
    listed = re.fullmatch(r"asha \(\$([0-9.]+) to \$([0-9.]+), eta 3\)", study["scheduler_detail"])
    assert listed is not None and listed.group(1) == shown_min.group(1)
    assert f"rung ladder (eta 3): ${shown_min.group(1)} ->" in plan
    # the user writes what was shown into the file: the study resumes with it
    sweep["scheduler"] = {"type": "asha", "min_usd": float(shown_min.group(1)), "max_usd": float(listed.group(2))}
    sweep["budget"]["trials"] = 2
    again = _cli("run", str(_write(path, sweep)), "--db", db, "--quiet")
    assert again.exit_code == 0, again.output


def _simulated(name: str, scheduler: dict[str, Any], **budget: Any) -> dict[str, Any]:
    return {
        "name": name, "objective": {"metric": "loss", "mode": "min"},
        "space": {f"x{i}": {"type": "uniform", "low": 0, "high": 1} for i in range(1, 7)},
        "sampler": {"type": "random", "seed": 0}, "scheduler": scheduler, "budget": budget or {"usd": 0.05},
        "resources": {"provider": "simulated", "region": "us-east-1", "instance_type": "m5.large",
                      "market": "on-demand", "workers": 2,
                      "simulation": {"workload": "costtune.demo.workloads:hartmann6", "max_steps": 200,
                                     "startup_seconds": 10, "seed": 0}},
    }


def test_a_bohb_study_is_listed_with_the_model_that_proposes_not_its_random_sampler_section(tmp_path: Path) -> None:
    # BOHB replaces a non-bayes sampler with a default Bayes model fitted on rung results (controller.py,
    # study.py): 6 parameters -> 8 results at a rung, and that model's 10 start-up results, random before.
    db = str(tmp_path / "store.db")
    path = _write(tmp_path / "bohb.yaml", _simulated("bohb-sim", {"type": "bohb", "eta": 3}))
    said = ("bohb model (bayes fitted on the highest rung with 8+ results once it has 10, random until then; "
            "seed 0; not the sampler section's random)")
    plan = " ".join(_cli("plan", str(path), "--db", db, "--no-forecast").stdout.split())
    assert f"sampler {said}, scheduler bohb" in plan
    assert _cli("run", str(path), "--db", db, "--quiet").exit_code == 0
    listed = json.loads(_cli("studies", "--db", db, "--format", "json").stdout)
    assert [(s["name"], s["sampler"], s["scheduler"]) for s in listed] == [("bohb-sim", said, "bohb")]
    # the same section under another scheduler is what proposes, and is listed as itself
    asha = _write(tmp_path / "asha.yaml", _simulated("asha-sim", {"type": "asha", "eta": 3}))
    shown = " ".join(_cli("plan", str(asha), "--no-forecast").stdout.split())
    assert "sampler random (seed 0), scheduler asha" in shown


def test_a_trial_the_budget_stopped_says_so_with_the_money(tmp_path: Path) -> None:
    # Scheduler-stopped trials show their verdict; one the study's cap stopped showed no reason at all.
    db = str(tmp_path / "store.db")
    data = _simulated("fifo-sim", {"type": "fifo"}, usd=0.01)
    data["resources"]["simulation"]["max_steps"] = 2000  # longer than $0.01 can pay for
    assert _cli("run", str(_write(tmp_path / "fifo.yaml", data)), "--db", db, "--quiet").exit_code == 0
    rows = json.loads(_cli("trials", "fifo-sim", "--db", db, "--format", "json").stdout)
    budget = [r["trial"] for r in rows if r["attempts"] and r["attempts"][-1]["exit_reason"] == "budget"]
    assert budget and all(r["state"] == "stopped" for r in rows if r["trial"] in budget)
    for number in budget:
        detail = " ".join(_cli("trials", "fifo-sim", str(number), "--db", db).stdout.split())
        assert re.search(r"stopped: by the budget: budget\.usd reached, (it used up the \$[0-9.]+ it held, )?with "
                         r"\$[0-9.]+ spent and \$[0-9.]+ held by running trials( \(its own included\))? of the "
                         r"\$0\.01 cap", detail), detail
        assert "attempt 1: stopped by the budget" not in detail  # said once, as the trial's reason


def test_an_in_process_trial_the_budget_stopped_says_so_too(tmp_path: Path) -> None:
    import costtune
    from costtune.history import TrialState

    db = str(tmp_path / "inproc.db")
    study = costtune.create_study("inproc", storage=db, metric="loss",
                                  space={"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
                                  budget_usd="0.05", usd_per_hour="360")  # 10 cents a second

    def tenths(trial: costtune.Trial) -> float:
        for step in range(8):
            time.sleep(0.1)
            trial.report(step, loss=trial.params["x"])
            if trial.should_stop():
                raise costtune.StopTrial()
        return trial.params["x"]

    study.optimize(tenths, n_trials=20)
    stopped = [t.number for t in study.trials if t.state == TrialState.STOPPED]
    assert stopped
    detail = " ".join(_cli("trials", "inproc", str(stopped[0]), "--db", db).stdout.split())
    assert re.search(r"stopped: by the budget: budget_usd reached: its reservation of \$[0-9.]+ is used up",
                     detail), detail


def _exit_cells(db: str, study: str, number: int) -> list[tuple[str, str]]:
    """(ended, exit) of each attempt row of `costtune trials STUDY N`."""
    # its own process: the table's width is read when the CLI starts (COLUMNS), and every column must fit
    text = subprocess.run([sys.executable, "-m", "costtune.cli", "trials", study, str(number), "--db", db],
                          capture_output=True, text=True, timeout=120, check=True,
                          env={**os.environ, "COLUMNS": "200"}).stdout
    return re.findall(r"│ (completed|stopped|budget|failed|preempted|interrupted) +│ +(\S+) │", text)


def test_a_completed_attempt_shows_no_signal_as_its_exit_code(tmp_path: Path) -> None:
    # An attempt costtune ended at max_usd completes; the simulator (like a local process) records the
    # SIGTERM it was stopped with, -15, which `costtune trials STUDY N` showed as if the trial had died.
    db = str(tmp_path / "store.db")
    path = _write(tmp_path / "asha.yaml", _simulated("asha-sim", {"type": "asha", "eta": 3}))
    assert _cli("run", str(path), "--db", db, "--quiet").exit_code == 0
    rows = json.loads(_cli("trials", "asha-sim", "--db", db, "--format", "json").stdout)
    at_top = [r["trial"] for r in rows if r["attempts"] and r["attempts"][-1]["exit_reason"] == "completed"]
    assert at_top and all(r["attempts"][-1]["exit_code"] == -15 for r in rows if r["trial"] in at_top)  # as stored
    for number in at_top[:2]:
        assert _exit_cells(db, "asha-sim", number) == [("completed", "-")]
    stopped = next(r["trial"] for r in rows if r["state"] == "stopped")
    assert _exit_cells(db, "asha-sim", stopped) == [("stopped", "-15")]  # stopped: it was, as a local one says
    # a trial that runs out of steps exits 0 and shows it
    short = _simulated("short-sim", {"type": "fifo"}, trials=2, usd=1)
    short["resources"]["simulation"]["max_steps"] = 3
    assert _cli("run", str(_write(tmp_path / "short.yaml", short)), "--db", db, "--quiet").exit_code == 0
    assert _exit_cells(db, "short-sim", 0) == [("completed", "0")]


def _manual_bohb(name: str) -> dict[str, Any]:
    data = _simulated(name, {"type": "bohb", "eta": 3})
    data["sampler"] = {"type": "manual", "configs": [{f"x{i}": v for i in range(1, 7)} for v in (0.1, 0.5, 0.9)]}
    return data


def test_a_manual_sampler_under_bohb_is_refused_naming_both_fields(tmp_path: Path) -> None:
    # It ran its configurations and nothing else, while plan, run and studies said BOHB's model proposed.
    db = tmp_path / "store.db"
    path = _write(tmp_path / "manual.yaml", _manual_bohb("manual-bohb"))
    for command in ("plan", "run"):
        refused = CliRunner().invoke(main, [command, str(path), "--db", str(db)])
        assert refused.exit_code == 2, refused.output
        said = " ".join(refused.output.split())
        assert "sampler.type: a manual sampler runs only its configs" in said and "scheduler.type bohb" in said
        assert "scheduler.type hyperband" in said and "got manual" in said
    assert not db.exists()  # nothing created
    ran = _write(tmp_path / "hb.yaml", {**_manual_bohb("manual-hb"), "scheduler": {"type": "hyperband", "eta": 3}})
    assert _cli("run", str(ran), "--db", str(db), "--quiet").exit_code == 0  # the way out the message names
    listed = json.loads(_cli("studies", "--db", str(db), "--format", "json").stdout)
    assert [(s["name"], s["sampler"]) for s in listed] == [("manual-hb", "manual")]


def test_an_in_process_manual_bohb_study_is_refused_and_the_store_left_alone(tmp_path: Path) -> None:
    import costtune
    from costtune.errors import SpecError

    db = tmp_path / "inproc.db"
    with pytest.raises(SpecError, match=r"^sampler: a manual sampler .* scheduler bohb .*got manual"):
        costtune.create_study("inproc", storage=f"sqlite:///{db}", metric="loss",
                              space={"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
                              sampler={"type": "manual", "configs": [{"x": 0.5}]},
                              scheduler={"type": "bohb", "min_usd": 0.001, "max_usd": 0.009},
                              budget_usd="1", usd_per_hour="3.6")
    assert not db.exists()


def test_a_manual_bohb_study_stored_before_is_described_as_what_runs(tmp_path: Path) -> None:
    from costtune.history import Mode
    from costtune.schedulers import scheduler_config
    from costtune.store import Store

    db = tmp_path / "old.db"
    store = Store(f"sqlite:///{db}")
    bohb = scheduler_config({"type": "bohb", "min_usd": 0.001, "max_usd": 0.009})
    store.create_study("old-manual", metric="loss", mode=Mode.MIN,
                       space={"x": {"type": "uniform", "low": 0, "high": 1}},
                       sampler={"type": "manual", "configs": [{"x": 0.5}]}, spec={"scheduler": bohb},
                       queued=[{"x": 0.5}])
    store.close()
    [study] = json.loads(_cli("studies", "--db", str(db), "--format", "json").stdout)
    assert study["sampler"] == "manual (only its sampler.configs run; bohb's model proposes none)"
    assert study["scheduler"] == "bohb"
    import costtune

    loaded = costtune.load_study("old-manual", storage=f"sqlite:///{db}", usd_per_hour="3.6")
    loaded.optimize(lambda trial: trial.params["x"], n_trials=4)  # in-process too: its configs, nothing more
    assert [t.params for t in loaded.trials] == [{"x": 0.5}]


def test_a_grid_sampler_under_bohb_is_refused_like_manual(tmp_path: Path) -> None:
    import costtune
    from costtune.errors import SpecError

    # An acceptance run: grid + bohb was accepted and the grid silently unused (BOHB's model proposed instead).
    db = tmp_path / "store.db"
    data = {**_manual_bohb("grid-bohb"), "sampler": {"type": "grid", "points": 2}}
    path = _write(tmp_path / "grid.yaml", data)
    for command in ("plan", "run"):
        refused = CliRunner().invoke(main, [command, str(path), "--db", str(db)])
        assert refused.exit_code == 2, refused.output
        said = " ".join(refused.output.split())
        assert "sampler.type: a grid sampler proposes its grid's points, but scheduler.type bohb" in said
        assert "with its own model (so the grid's points would never run)" in said
        assert "scheduler.type bohb" in said and "got grid" in said
        assert "scheduler.type hyperband to judge the same grid on the same rungs" in said
        assert "sampler.type bayes (or random)" in said
    assert not db.exists()  # nothing created
    ran = _write(tmp_path / "hb.yaml", {**data, "name": "grid-hb", "scheduler": {"type": "hyperband", "eta": 3}})
    assert _cli("run", str(ran), "--db", str(db), "--quiet").exit_code == 0  # the way out the message names
    with pytest.raises(SpecError, match=r"^sampler: a grid sampler .* scheduler bohb .*got grid"):
        costtune.create_study("inproc", storage=f"sqlite:///{db}", metric="loss",
                              space={"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
                              sampler={"type": "grid", "points": 3},
                              scheduler={"type": "bohb", "min_usd": 0.001, "max_usd": 0.009},
                              budget_usd="1", usd_per_hour="3.6")
    assert [s["name"] for s in json.loads(_cli("studies", "--db", str(db), "--format", "json").stdout)] == ["grid-hb"]
