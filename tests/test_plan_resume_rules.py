"""`costtune plan` of a study that exists agrees with what `costtune run` then does (rung plans, caps, clamps)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from plantools import cli as _cli
from plantools import plan_json as _plan

HB: dict[str, Any] = {  # the new-user test's Hyperband sweep: 17 trials, about $0.17 with start-up
    "name": "hb",
    "objective": {"metric": "loss", "mode": "min"},
    "space": {"lr": {"type": "loguniform", "low": 1.0e-3, "high": 0.5},
              "width": {"type": "int", "low": 8, "high": 128, "log": True}},
    "sampler": {"type": "random", "seed": 11},
    "scheduler": {"type": "hyperband"},
    "budget": {"usd": 0.25},
    "resources": {
        "provider": "simulated", "region": "us-east-1", "market": "spot", "workers": 4,
        "instance_type": {"type": "categorical", "choices": ["m5.large", "c5.2xlarge"]},
        "simulation": {"workload": "costtune.demo.workloads:mlp_curve", "max_steps": 60, "startup_seconds": 45,
                       "preemptions_per_hour": 1.5, "seed": 5},
    },
}



# The rungs budget.usd $0.25 chose before chosen rungs kept to min_usd's ladder ($0.003367 -> $0.0101 now): the
# two tests that pin a run's trials and spend against the plan give them explicitly, so they test the plan, not
# the rule that chooses rungs.
RUNGS = {"type": "hyperband", "min_usd": 0.003367, "max_usd": 0.0125}


def _sweep(tmp_path: Path, file: str, budget: dict[str, Any], **changes: Any) -> Path:
    data = json.loads(json.dumps(HB))
    data["budget"] = budget
    data.update(changes)
    path = tmp_path / file
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _trials(db: Path) -> list[dict[str, Any]]:
    return json.loads(_cli("trials", "hb", "--db", str(db), "--format", "json").stdout)


def _run(path: Path, db: Path, *flags: str) -> None:
    result = _cli("run", str(path), "--db", str(db), "--quiet", *flags)
    assert result.exit_code == 0, result.output


def test_plan_refuses_a_cap_below_the_spend_as_run_does(tmp_path: Path) -> None:
    db = tmp_path / "user.db"
    _run(_sweep(tmp_path, "first.yaml", {"usd": 0.25}), db)
    spent = sum(t["cost_micros"] for t in _trials(db))
    low = _sweep(tmp_path, "low.yaml", {"usd": 0.10})
    planned = _cli("plan", str(low), "--db", str(db), "--no-forecast", "--change-cap")
    ran = _cli("run", str(low), "--db", str(db), "--change-cap", "--quiet")
    assert planned.exit_code == ran.exit_code == 2, (planned.output, ran.output)
    message = "budget.usd: $0.10 is below what study 'hb' has already spent"
    assert message in planned.output and message in ran.output
    assert sum(t["cost_micros"] for t in _trials(db)) == spent  # nothing ran


def test_a_hyperband_resume_forecasts_the_iterations_run_adds(tmp_path: Path) -> None:
    """The next run of a Hyperband study adds what its plan and the controller's iteration rule allow: nothing
    once the plan has run and the cap left cannot hold another iteration, more iterations under a raised cap,
    and nothing under a removed one (README: a raised cap repeats the brackets; without a cap the plan is all)."""
    db = tmp_path / "user.db"
    first = _sweep(tmp_path, "first.yaml", {"usd": 0.25}, scheduler=RUNGS)
    _run(first, db)
    held = len(_trials(db))
    assert held == 17  # the whole plan ran, about $0.17 of the $0.25
    assert _plan(first, db)["this_run"]["trials"] == 0
    _run(first, db)
    assert len(_trials(db)) == held  # "the hyperband plan's 17 trials have run"

    raised = _sweep(tmp_path, "raised.yaml", {"usd": 0.5}, scheduler=RUNGS)
    forecast = _plan(raised, db, "--change-cap")["this_run"]["trials"]
    _run(raised, db, "--change-cap")
    added = len(_trials(db)) - held
    assert added > held and abs(forecast - added) <= 2, (forecast, added)

    def finished() -> int:
        return sum(t["state"] in ("complete", "stopped", "failed") for t in _trials(db))

    done, held = finished(), len(_trials(db))
    uncapped = _sweep(tmp_path, "uncapped.yaml", {"trials": held + 9}, scheduler=RUNGS)
    out = _plan(uncapped, db, "--change-cap")["this_run"]
    # the queued trials are left to run too; the plan's own end, not budget.trials
    assert out["trials_left"] == 9 + held - done and out["trials"] < 9 + held - done
    _run(uncapped, db, "--change-cap")
    assert finished() - done == out["trials"]
    assert _plan(uncapped, db, "--change-cap")["this_run"]["trials"] == 0
    now = len(_trials(db))
    _run(uncapped, db, "--change-cap")
    assert len(_trials(db)) == now  # "the hyperband plan's 51 trials have run"


def test_a_rung_plans_money_in_all_counts_the_start_up_its_rungs_leave_out(tmp_path: Path) -> None:
    """Rungs count money after a trial's first report: the plan's total adds every launch's start-up, and a real
    run spends about that, not the rungs' figure alone; a plan whose start-up leaves the cap little room says so."""
    db = tmp_path / "user.db"
    sweep = _sweep(tmp_path, "hb.yaml", {"usd": 0.25}, scheduler=RUNGS)
    p = _plan(sweep, db)["plan"]
    assert p["total_micros"] >= p["expected_micros"] + 20_000  # about $0.025 of start-up on top
    _run(sweep, db)
    spent = sum(t["cost_micros"] for t in _trials(db))
    assert abs(spent - p["total_micros"]) < 0.05 * spent < spent - p["expected_micros"], (spent, p)

    sh = _sweep(tmp_path, "sh.yaml", {"usd": 0.12}, name="sh",
                scheduler={"type": "sh", "min_usd": 0.0015, "max_usd": 0.0135})
    data = yaml.safe_load(sh.read_text())
    data["resources"]["instance_type"]["choices"] = ["m5.large", "c5.xlarge"]
    sh.write_text(yaml.safe_dump(data, sort_keys=False))
    out = json.loads(_cli("plan", str(sh), "--db", str(tmp_path / "none.db"), "--format", "json",
                          "--no-forecast").stdout)
    assert out["plan"]["total_micros"] > 0.95 * 120_000
    # the run hit it at 26 of 27: the note says the cap stops it (past it, or within 5% of it, before its last)
    assert any("the $0.12 cap" in n and ("after about 26 of the plan's 27 trials" in n or
                                         "after about 25 of the plan's 27 trials" in n or "within 5% of" in n)
               for n in out["notes"]), out["notes"]


def test_a_resumes_whole_study_figures_are_never_below_what_it_holds(tmp_path: Path) -> None:
    """A study holding 6 trials, resumed with budget.trials 3: the plan from zero would start 3 trials and spend
    less than the study did; the whole study's figures read at least what it holds and spent, with a note."""
    db = tmp_path / "user.db"
    _run(_sweep(tmp_path, "six.yaml", {"usd": 0.5, "trials": 6}, scheduler={"type": "fifo"}), db)
    spent = sum(t["cost_micros"] for t in _trials(db))
    out = _plan(_sweep(tmp_path, "three.yaml", {"usd": 0.5, "trials": 3}, scheduler={"type": "fifo"}), db)
    assert out["resumes"]["trials"] == 6
    p = out["plan"]
    assert p["trials"] >= 6 and p["planned_micros"] >= spent and p["expected_micros"] >= spent, (p, spent)
    assert out["this_run"]["trials"] == 0
    assert any("plan from zero (3 trials" in n for n in out["notes"]), out["notes"]


def test_an_asha_plan_fits_its_trials_to_the_cap_with_their_start_up(tmp_path: Path) -> None:
    """ASHA's trial count fills the cap: with each trial's start-up on top of its rungs, not the rungs alone
    (which planned 69 trials, $0.357 in all, for a $0.30 cap; the run started 51)."""
    db = tmp_path / "user.db"
    sweep = _sweep(tmp_path, "asha.yaml", {"usd": 0.3}, scheduler={"type": "asha"})
    data = yaml.safe_load(sweep.read_text())
    data["resources"]["instance_type"]["choices"] = ["m5.large", "c5.xlarge"]
    sweep.write_text(yaml.safe_dump(data, sort_keys=False))
    p = _plan(sweep, db)["plan"]
    assert p["total_micros"] <= 1.05 * 300_000, p
    _run(sweep, db)
    assert len(_trials(db)) <= p["trials"] < 1.2 * len(_trials(db))
