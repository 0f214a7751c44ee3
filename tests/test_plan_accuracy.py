"""`costtune plan` forecasts what `costtune run` will do: a resume's next run, curve stopping, cloud start-up."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from plantools import plan_json as _plan

from costtune.cli import main
from costtune.money import charge_micros, usd_to_micros
from costtune.plan.startup import CLOUD_STARTUP_S

CURVE: dict[str, Any] = {  # a benchmark workload whose trials curve stopping often stops (README vs_optuna)
    "name": "curvy",
    "objective": {"metric": "loss", "mode": "min"},
    "space": {"lr": {"type": "loguniform", "low": 0.0001, "high": 0.1},
              "width": {"type": "int", "low": 16, "high": 1024, "log": True},
              "layers": {"type": "int", "low": 1, "high": 4},
              "batch": {"type": "categorical", "choices": [32, 64, 128, 256]}},
    "sampler": {"type": "random", "seed": 0},
    "scheduler": {"type": "curve"},
    "budget": {"usd": 0.4},
    "resources": {
        "provider": "simulated", "region": "us-east-1", "market": "spot", "workers": 1,
        "instance_type": {"type": "categorical", "choices": ["m5.large", "c5.xlarge", "g4dn.xlarge"]},
        "simulation": {"workload": "costtune.demo.bench_workloads:mlp_tabular", "max_steps": 27,
                       "startup_seconds": 60, "preemptions_per_hour": 0, "seed": 0},
    },
}



def _cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False, env={"COLUMNS": "200"})  # tables unwrapped


def _write(tmp_path: Path, file: str, data: dict[str, Any]) -> Path:
    path = tmp_path / file
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _curve(tmp_path: Path, file: str, *, usd: float = 0.4, seed: int = 0, scheduler: str = "curve") -> Path:
    data = json.loads(json.dumps(CURVE))
    data["budget"]["usd"] = usd
    data["sampler"]["seed"] = seed
    data["resources"]["simulation"]["seed"] = seed
    data["scheduler"] = {"type": scheduler}
    return _write(tmp_path, file, data)


def _table(*args: str) -> str:
    """`costtune plan` as a table, its cells' borders and line breaks as single spaces."""
    return " ".join(_cli("plan", *args).stdout.replace("│", " ").split())


def _trials(db: Path, study: str) -> list[dict[str, Any]]:
    return json.loads(_cli("trials", study, "--db", str(db), "--format", "json").stdout)


def test_curve_plan_models_stopping_with_a_range_that_holds_the_runs(tmp_path: Path) -> None:
    """Curve stopping starts more trials than running each to its end: the plan's range goes from the fifo count
    (none stopped) up, and the trials real runs start fall within it."""
    fifo = _plan(_curve(tmp_path, "fifo.yaml", scheduler="fifo"), tmp_path / "none.db")["plan"]
    plan = _plan(_curve(tmp_path, "curve.yaml"), tmp_path / "none.db")
    p = plan["plan"]
    assert p["trials_fewest"] <= fifo["trials"] < p["trials"]  # fewest: none stopped, every trial runs to its end
    assert p["trials_fewest"] < p["trials"] < p["trials_most"]
    assert p["stop_model"] == "assumed" and p["stop_share"] == 0.5
    assert any("assuming 50% of trials are stopped" in n for n in plan["notes"])
    for seed in (0, 1):
        db = tmp_path / f"run{seed}.db"
        assert _cli("run", str(_curve(tmp_path, f"s{seed}.yaml", seed=seed)), "--db", str(db),
                    "--quiet").exit_code == 0
        ran = len(_trials(db, "curvy"))
        assert p["trials_fewest"] < ran <= p["trials_most"], (ran, p)
    table = _table(str(tmp_path / "curve.yaml"), "--no-forecast")
    assert f"trials started ~{p['trials']} ({p['trials_fewest']} to {p['trials_most']})" in table


def test_a_resumes_plan_shows_what_is_spent_and_what_the_next_run_adds(tmp_path: Path) -> None:
    """A study that ran under a $0.1 cap, raised to $0.4: the plan says what was run and spent, and forecasts the
    next run's trials, spend and hours within the $0.3 left, from the study's own stopped share; the run agrees."""
    db = tmp_path / "user.db"
    assert _cli("run", str(_curve(tmp_path, "first.yaml", usd=0.1)), "--db", str(db), "--quiet").exit_code == 0
    before = _trials(db, "curvy")
    spent = sum(t["cost_micros"] for t in before)
    later = _curve(tmp_path, "later.yaml", usd=0.4)
    out = _plan(later, db, "--change-cap")
    assert out["resumes"]["trials"] == len(before) and out["resumes"]["spent_micros"] == spent  # kept as they were
    run = out["this_run"]
    assert run["left_micros"] == 400_000 - spent
    assert 0 < run["spend_micros"] <= run["left_micros"]
    assert run["trials_fewest"] <= run["trials"] <= run["trials_most"]
    assert run["trials"] < out["plan"]["trials"]  # not the whole study's plan again
    assert run["instance_hours"] > 0 and run["wall_hours"] == run["instance_hours"]  # one worker
    assert out["plan"]["stop_model"] == "observed"
    # the share among the trials curve stopping could judge: not the first (one worker), which nothing could stop
    judged = [t for t in before if t["trial"] >= 1 and (t["state"] == "complete" or t["verdicts"])]
    stopped = sum(1 for t in judged if t["state"] == "stopped")
    finished = len(judged)
    assert out["plan"]["stop_share"] == pytest.approx(stopped / finished)
    table = _table(str(later), "--db", str(db), "--no-forecast", "--change-cap")
    ran = sum(t["state"] in ("complete", "stopped", "failed") for t in before)  # queued ones are this run's
    assert f"already run (the study so far) {ran} trials finished" in table
    assert f"this run adds: trials ~{run['trials']} ({run['trials_fewest']} to {run['trials_most']})" in table
    assert _cli("run", str(later), "--db", str(db), "--change-cap", "--quiet").exit_code == 0
    added = len(_trials(db, "curvy")) - len(before)
    assert run["trials_fewest"] <= added <= run["trials_most"], (added, run)
    # a new study has nothing to add to: no such section
    assert _plan(later, tmp_path / "none.db")["this_run"] is None


AWS_IMAGE = "ami-0c02fb55956c7d316"


def _aws(tmp_path: Path, name: str) -> Path:
    return _write(tmp_path, f"{name}.yaml", {
        "name": name, "objective": {"metric": "loss", "mode": "min"},
        "space": {"lr": {"type": "uniform", "low": 0, "high": 1}}, "command": ["python", "train.py"],
        "scheduler": {"type": "fifo"}, "budget": {"usd": 1, "trial_seconds": 600},
        "resources": {"provider": "aws", "region": "us-east-1", "instance_type": "m5.large", "market": "on-demand",
                      "image": AWS_IMAGE, "workers": 2},
        "server": {"public_url": "https://tune.example.org"},
    })


def test_an_aws_plan_counts_each_launchs_start_up_billed(tmp_path: Path) -> None:
    """An EC2 instance is billed from its launch (60 s minimum) and boots before the trial reports: the plan
    charges each launch the documented start-up estimate, and its hours include it."""
    out = _plan(_aws(tmp_path, "boot"), tmp_path / "none.db")
    (o,) = out["overheads"]
    rate = usd_to_micros(o["usd_per_hour"])
    assert o["startup_seconds"] == CLOUD_STARTUP_S > 60
    assert o["startup_micros"] == charge_micros(round(CLOUD_STARTUP_S * 1000), rate) > 0
    assert out["startup"] == {"seconds": CLOUD_STARTUP_S, "source": "estimate", "attempts": 0}
    trials = out["plan"]["trials"]
    assert trials and out["overhead_micros"] == round(trials * o["startup_micros"])
    assert out["plan"]["instance_hours"] == pytest.approx(out["plan"]["planned_micros"] / rate)
    assert out["plan"]["wall_hours"] == pytest.approx(out["plan"]["instance_hours"] / 2)
    assert any("start-up per launch 120 s, an estimate" in n for n in out["notes"])


def test_an_aws_plan_uses_the_studys_own_start_up_when_it_has_attempts(tmp_path: Path) -> None:
    """Earlier attempts of the study (here a local run of the same name, whose first report comes after about
    1.5 s) replace the estimate with their median time to first report."""
    script = tmp_path / "train.py"
    script.write_text("import time\ntime.sleep(1.5)\nprint('costtune:report ' + '{\"step\": 0, \"loss\": 1.0}')\n")
    db = tmp_path / "user.db"
    local = _write(tmp_path, "local.yaml", {
        "name": "boot", "objective": {"metric": "loss"}, "space": {"lr": {"type": "uniform", "low": 0, "high": 1}},
        "command": [sys.executable, str(script)], "budget": {"trials": 2},
        "resources": {"provider": "local", "workers": 2}})
    assert _cli("run", str(local), "--db", str(db), "--quiet").exit_code == 0
    out = _plan(_aws(tmp_path, "boot"), db)
    assert out["startup"]["source"] == "measured" and out["startup"]["attempts"] == 2
    assert 1.5 <= out["startup"]["seconds"] < 30
    assert out["overheads"][0]["startup_seconds"] == out["startup"]["seconds"]
