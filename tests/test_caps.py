"""A study has one dollar cap, stored; changing it is an explicit act that is recorded.

The CLI runs as real `costtune run` processes on the simulated provider (seconds of wall time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

import costtune
from costtune.cli import main
from costtune.errors import InputError, StopTrial
from costtune.store import Store

TESTS = Path(__file__).parent


def _sweep(tmp_path: Path, usd: str | None) -> Path:
    doc: dict[str, Any] = {
        "name": "capped", "objective": {"metric": "loss", "mode": "min"},
        "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}}, "sampler": {"type": "random", "seed": 0},
        "budget": {"trials": 400} if usd is None else {"usd": usd},
        "resources": {"provider": "simulated", "region": "us-east-1", "instance_type": "g4dn.xlarge", "workers": 2,
                      "simulation": {"workload": "simworkloads:steady", "max_steps": 30}},
    }
    path = tmp_path / f"sweep-{usd}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _costtune(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "costtune.cli", *args, "--db", str(tmp_path / "store.db")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def _read(tmp_path: Path, *args: str) -> str:
    """A read-only command through the CLI's own code in this process."""
    result = CliRunner().invoke(main, [*args, "--db", str(tmp_path / "store.db")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def _books(tmp_path: Path) -> tuple[Any, Any, int]:
    store = Store(str(tmp_path / "store.db"))
    info = store.get_study("capped")
    return info, store.balance(f"study:{info.id}"), len(store.history(info.id).trials)


def test_a_resume_with_another_budget_is_refused_until_change_cap(tmp_path: Path) -> None:
    first = _costtune(tmp_path, "run", str(_sweep(tmp_path, "0.30")), "--quiet")
    assert first.returncode == 0, first.stderr
    info, balance, trials = _books(tmp_path)
    assert info.budget_usd_micros == 300_000 and balance.cap_micros == 300_000 and balance.spent_micros <= 300_000

    refused = _costtune(tmp_path, "run", str(_sweep(tmp_path, "0.61")), "--quiet")
    assert refused.returncode == 2
    message = " ".join(refused.stderr.split())
    assert "budget.usd: study 'capped' has a stored cap of $0.30; the file says $0.61" in message
    assert "--change-cap" in message and "Traceback" not in refused.stderr
    assert _books(tmp_path) == (info, balance, trials)  # nothing changed

    changed = _costtune(tmp_path, "run", str(_sweep(tmp_path, "0.61")), "--quiet", "--change-cap")
    assert changed.returncode == 0, changed.stderr
    info2, balance2, trials2 = _books(tmp_path)
    assert info2.budget_usd_micros == 610_000 and balance2.cap_micros == 610_000
    assert 300_000 < balance2.spent_micros <= 610_000 and trials2 > trials  # it ran on, to the new cap

    again = _costtune(tmp_path, "run", str(_sweep(tmp_path, "0.61")), "--quiet")  # the same cap: no flag needed
    assert again.returncode == 0, again.stderr
    audit = json.loads(_read(tmp_path, "audit", "capped", "--format", "json"))
    assert [(a["action"], a["detail"]["from_micros"], a["detail"]["to_micros"]) for a in audit] == [
        ("cap.set", None, 300_000), ("cap.set", 300_000, 610_000)]
    assert audit[1]["detail"]["reason"] == "costtune run --change-cap" and "@" in audit[1]["actor"]
    assert "$0.30 -> $0.61" in _read(tmp_path, "audit")


def test_a_cap_below_what_is_spent_is_refused(tmp_path: Path) -> None:
    assert _costtune(tmp_path, "run", str(_sweep(tmp_path, "0.30")), "--quiet").returncode == 0
    before = _books(tmp_path)
    low = _costtune(tmp_path, "run", str(_sweep(tmp_path, "0.01")), "--quiet", "--change-cap")
    assert low.returncode == 2
    assert "budget.usd: $0.01 is below what study 'capped' has already spent" in " ".join(low.stderr.split())
    assert _books(tmp_path) == before
    removed = _costtune(tmp_path, "run", str(_sweep(tmp_path, None)), "--quiet")  # no budget.usd: also a change
    assert removed.returncode == 2 and "the file says no cap" in " ".join(removed.stderr.split())


def test_in_process_cap_changes_are_explicit_and_recorded(tmp_path: Path) -> None:
    url = str(tmp_path / "s.db")
    study = costtune.create_study("inproc", storage=url, budget_usd="0.30")
    with pytest.raises(InputError, match=r"budget_usd: study 'inproc' has a stored cap of \$0\.30; asked for "
                                         r"\$0\.61\. A study has one cap: pass change_cap=True"):
        costtune.create_study("inproc", storage=url, budget_usd="0.61", load_if_exists=True)
    assert costtune.load_study("inproc", storage=url).budget_usd == costtune.load_study(
        "inproc", storage=url).budget_usd == study.budget_usd
    same = costtune.create_study("inproc", storage=url, budget_usd="0.30", load_if_exists=True)  # no change
    assert str(same.budget_usd) == "0.3"
    raised = costtune.create_study("inproc", storage=url, budget_usd="0.61", load_if_exists=True, change_cap=True)
    assert str(raised.budget_usd) == "0.61"
    raised.set_cap("1.25", reason="more data")
    assert str(costtune.load_study("inproc", storage=url).budget_usd) == "1.25"
    log = Store(url).audit_log(study_id=study.id)
    assert [(e.detail["to_micros"], e.detail["reason"]) for e in log] == [
        (300_000, "study created"), (610_000, "create_study(change_cap=True)"), (1_250_000, "more data")]
    assert Store(url).balance(f"study:{study.id}").cap_micros == 1_250_000


def test_a_running_optimize_picks_up_a_raised_cap(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = costtune.create_study("live", storage=url, budget_usd="0.05", usd_per_hour="360")  # 10 cents/s

    def reports(trial: costtune.Trial) -> float:
        for step in range(3):
            time.sleep(0.05)
            trial.report(step, loss=1.0)
            if trial.should_stop():
                raise StopTrial()
        return 1.0

    def raise_it() -> None:
        time.sleep(0.3)  # another process, through its own connection, while trials run
        Store(url).change_study_cap(study.id, 150_000, reason="test")

    changer = threading.Thread(target=raise_it)
    changer.start()
    study.optimize(reports, n_trials=200)
    changer.join()
    spent = study.spend_micros()
    assert spent > 60_000  # past the old cap and the most it could overshoot it
    assert study.stop_reason is not None and study.stop_reason.startswith("budget_usd $0.15 ")
    assert study.store.balance(f"study:{study.id}") == (150_000, spent, 0)
