"""A study whose rungs costtune chose from budget.usd, resumed with the cap removed: it keeps its stored rungs
(`costtune run FILE --change-cap` and `costtune plan`), and says so; what is still refused changes nothing."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from costtune.cli import main
from costtune.money import usd_to_micros
from costtune.store import Store

SWEEP: dict[str, Any] = {
    "name": "nocap",
    "objective": {"metric": "loss", "mode": "min"},
    "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
    "sampler": {"type": "random", "seed": 5},
    "scheduler": {"type": "asha"},  # min_usd / max_usd chosen from budget.usd
    "budget": {"usd": 0.05},
    "resources": {
        "provider": "simulated", "region": "us-east-1", "instance_type": "m5.large", "market": "on-demand",
        "workers": 2,
        "simulation": {"workload": "simworkloads:steady", "max_steps": 30, "startup_seconds": 30, "seed": 0,
                       "preemptions_per_hour": 0},
    },
}



def _file(tmp_path: Path, name: str, **changes: Any) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({**SWEEP, **changes}, sort_keys=False))
    return path


def _cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _rows(db: Path) -> list[Any]:
    """What a refusal must leave as it was: the study rows, trials and audit trail."""
    conn = sqlite3.connect(db)
    try:
        return [conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall() for table in ("study", "trial", "audit")]
    finally:
        conn.close()


def test_a_study_with_chosen_rungs_resumes_without_a_cap_keeping_them(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    first = _cli("run", str(_file(tmp_path, "capped.yaml")), "--db", str(db), "--quiet")
    assert first.exit_code == 0, first.output
    stored = Store(f"sqlite:///{db}").get_study("nocap").spec["scheduler"]
    chosen = (stored["min_usd"], stored["max_usd"])
    top = usd_to_micros(stored["max_usd"])
    assert top <= 2500 < top * 3 and "the highest rung within budget.usd $0.05 / 20 = $0.0025" in stored["chosen"]
    said_max = stored["chosen"].split("; ")[0]  # "max_usd $X = min_usd x 3^k, ..."
    held = Store(f"sqlite:///{db}").history(Store(f"sqlite:///{db}").get_study("nocap").id).trials
    uncapped = _file(tmp_path, "uncapped.yaml", budget={"trials": len(held) + 4})

    # without --change-cap: the cap refusal (exit 2), not "max_usd is required"; nothing written
    before = _rows(db)
    refused = _cli("run", str(uncapped), "--db", str(db), "--quiet")
    assert refused.exit_code == 2
    assert "budget.usd: study 'nocap' has a stored cap of $0.05; the file says no cap" in refused.stderr
    assert "--change-cap" in refused.stderr and "max_usd" not in refused.stderr
    assert _rows(db) == before

    # the plan describes that resume, with the stored rungs
    plan = _cli("plan", str(uncapped), "--db", str(db), "--no-forecast", "--format", "json", "--change-cap")
    assert plan.exit_code == 0, plan.stderr
    out = json.loads(plan.stdout)
    assert (out["scheduler"]["min_usd"], out["scheduler"]["max_usd"]) == chosen
    assert any("keeps the ones stored with it" in note for note in out["notes"])

    # --change-cap removes the cap; the study keeps the rungs it chose and the run says so
    ran = _cli("run", str(uncapped), "--db", str(db), "--quiet", "--change-cap")
    assert ran.exit_code == 0, ran.output
    said = "the file gives no budget.usd to choose rungs from; study 'nocap' keeps the ones stored with it"
    assert said in ran.stderr
    assert said_max in " ".join(ran.stderr.split())
    study = Store(f"sqlite:///{db}").get_study("nocap")
    assert study.budget_usd_micros is None
    assert (study.spec["scheduler"]["min_usd"], study.spec["scheduler"]["max_usd"]) == chosen
    trials = Store(f"sqlite:///{db}").history(study.id).trials
    assert len(trials) == len(held) + 4
    levels = {usd_to_micros(chosen[0]), usd_to_micros(chosen[1])}
    assert all(v[0] in levels for t in trials for v in t.verdicts)  # judged on the stored rungs only

    # and again, now that the stored cap is none too
    again = _cli("run", str(_file(tmp_path, "more.yaml", budget={"trials": len(held) + 6})), "--db", str(db),
                 "--quiet")
    assert again.exit_code == 0, again.output


def test_a_new_study_without_budget_usd_still_needs_max_usd(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    new = _cli("run", str(_file(tmp_path, "new.yaml", budget={"trials": 3})), "--db", str(db), "--quiet")
    assert new.exit_code == 2
    assert "scheduler.max_usd: is required without budget.usd" in new.stderr
    assert not db.exists()
    # the same for a file whose name is not the study's (--name picks the study that is looked up)
    assert _cli("run", str(_file(tmp_path, "capped.yaml")), "--db", str(db), "--quiet").exit_code == 0
    other = _cli("run", str(_file(tmp_path, "new.yaml", budget={"trials": 3})), "--db", str(db), "--quiet",
                 "--name", "another", "--change-cap")
    assert other.exit_code == 2 and "scheduler.max_usd: is required without budget.usd" in other.stderr
    assert Store(f"sqlite:///{db}").find_study("another") is None


@pytest.mark.parametrize(("scheduler", "field", "stored", "given"), [
    ({"type": "asha", "eta": 4}, "scheduler.eta", 3, 4),
    ({"type": "sh"}, "scheduler.type", "asha", "sh"),
])
def test_another_type_or_eta_without_a_cap_is_the_mismatch_not_max_usd(
        tmp_path: Path, scheduler: dict[str, Any], field: str, stored: Any, given: Any) -> None:
    db = tmp_path / "s.db"
    assert _cli("run", str(_file(tmp_path, "capped.yaml")), "--db", str(db), "--quiet").exit_code == 0
    before = _rows(db)
    changed = _file(tmp_path, "changed.yaml", scheduler=scheduler, budget={"trials": 50})
    said = f"{field}: study 'nocap' already exists with {field} {stored}, the file says {given}"
    for args in (["run", str(changed), "--quiet"], ["run", str(changed), "--quiet", "--change-cap"],
                 ["plan", str(changed), "--no-forecast"]):
        refused = _cli(*args, "--db", str(db))
        assert refused.exit_code == 2, refused.output
        assert said in refused.stderr and "max_usd" not in refused.stderr
    assert _rows(db) == before
    # the same words as for a file that gives budget.usd
    capped = _cli("run", str(_file(tmp_path, "c2.yaml", scheduler=scheduler)), "--db", str(db), "--quiet")
    assert capped.exit_code == 2 and said in capped.stderr


def test_audit_says_none_for_a_budget_trials_that_was_not_set(tmp_path: Path) -> None:
    # An acceptance run: `costtune audit` printed `budget.trials None -> 60`.
    db = tmp_path / "s.db"
    assert _cli("run", str(_file(tmp_path, "capped.yaml")), "--db", str(db), "--quiet").exit_code == 0
    held = len(Store(f"sqlite:///{db}").history(Store(f"sqlite:///{db}").get_study("nocap").id).trials)
    more = _file(tmp_path, "more.yaml", budget={"usd": 0.05, "trials": held + 60})
    assert _cli("run", str(more), "--db", str(db), "--quiet").exit_code == 0
    shown = subprocess.run([sys.executable, "-m", "costtune.cli", "audit", "nocap", "--db", str(db), "--action",
                            "trials.set"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "COLUMNS": "200"})  # the table's width is fixed when it starts
    assert shown.returncode == 0, shown.stderr
    said = " ".join(shown.stdout.split())
    assert f"budget.trials none -> {held + 60}" in said and "None" not in said
    [entry] = json.loads(_cli("audit", "nocap", "--db", str(db), "--action", "trials.set", "--format", "json").stdout)
    assert (entry["detail"]["from"], entry["detail"]["to"]) == (None, held + 60)  # JSON keeps null
