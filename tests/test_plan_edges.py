"""`costtune plan` at the edges the new-user test found: a cap that cannot finish one trial, a curve study's
resume after its cap is lifted, and the first trials a curve sweep's workers start together."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from plantools import cli as _cli
from plantools import plan_json as _plan

from costtune.cli import main

SPACE = {f"x{i}": {"type": "uniform", "low": 0, "high": 1} for i in range(1, 7)}


def _sweep(tmp_path: Path, file: str, *, name: str = "edge", scheduler: dict[str, Any] | None = None,
           budget: dict[str, Any], workers: int = 1, max_steps: int = 50, startup: float = 900) -> Path:
    data: dict[str, Any] = {
        "name": name, "objective": {"metric": "loss", "mode": "min"}, "space": SPACE,
        "sampler": {"type": "random", "seed": 1}, "budget": budget,
        "resources": {"provider": "simulated", "region": "us-east-1", "instance_type": "m5.large",
                      "workers": workers,
                      "simulation": {"workload": "costtune.demo.workloads:hartmann6", "max_steps": max_steps,
                                     "startup_seconds": startup, "seed": 0}},
    }
    if scheduler is not None:
        data["scheduler"] = scheduler
    path = tmp_path / file
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _run(path: Path, db: Path, *flags: str) -> None:
    result = _cli("run", str(path), "--db", str(db), "--quiet", *flags)
    assert result.exit_code == 0, result.output


def _started(db: Path, study: str) -> list[dict[str, Any]]:
    rows = json.loads(_cli("trials", study, "--db", str(db), "--format", "json").stdout)
    return [r for r in rows if r["state"] != "queued"]


def test_a_cap_that_cannot_finish_one_trial_still_starts_one_and_says_so(tmp_path: Path) -> None:
    """900 s start-up on a $0.03 cap: one trial costs about $0.0304, yet the run starts it and the budget stops
    it; the plan counts it (not 0 trials, $0) and names the trial's cost and the cap."""
    path, db = _sweep(tmp_path, "eob1b.yaml", scheduler={"type": "fifo"}, budget={"usd": 0.03}), tmp_path / "s.db"
    plan = _plan(path, db)
    p = plan["plan"]
    assert p["trial_cost_micros"] > 30_000
    assert p["trials"] == 1 and p["planned_micros"] == 30_000
    note = next(n for n in plan["notes"] if "cannot finish one trial" in n)
    assert "$0.03 cap" in note and "$0.0304" in note
    _run(path, db)
    started = _started(db, "edge")
    assert len(started) == p["trials"] and started[0]["state"] == "stopped"


def test_workers_that_split_a_cap_are_all_counted_and_warned(tmp_path: Path) -> None:
    """2 workers on a $0.05 cap, a trial at about $0.0498: both start at once, split the cap, neither finishes."""
    path = _sweep(tmp_path, "eob.yaml", scheduler={"type": "fifo"}, budget={"usd": 0.05}, workers=2)
    db = tmp_path / "s.db"
    plan = _plan(path, db)
    assert plan["plan"]["trials"] == 2
    assert any("2 workers" in n and "split" in n and "no trial may finish" in n for n in plan["notes"])
    _run(path, db)
    started = _started(db, "edge")
    assert len(started) == 2 and {r["state"] for r in started} == {"stopped"}


def _spent(db: Path, study: str) -> int:
    return sum(r["cost_micros"] for r in json.loads(_cli("trials", study, "--db", str(db), "--format", "json").stdout))


def test_a_curve_resume_costs_its_trials_at_what_the_studys_later_trials_cost(tmp_path: Path) -> None:
    """A default (curve) study of 3 workers whose $0.50 cap is lifted: the first 3 trials ran to their end with
    nothing to judge them against, later ones are stopped. The next run's spend is forecast at what the study's
    judgeable trials cost, not with the first trials' full runs mixed in (that said 2.5x what the run spent)."""
    db = tmp_path / "s.db"
    first = _sweep(tmp_path, "def.yaml", name="def", budget={"usd": 0.5}, workers=3, max_steps=300, startup=30)
    _run(first, db)
    before, held = _spent(db, "def"), len(_started(db, "def"))
    resume = _sweep(tmp_path, "def_nocap.yaml", name="def", budget={"trials": 140}, workers=3, max_steps=300,
                    startup=30)
    this = _plan(resume, db, "--change-cap")["this_run"]
    _run(resume, db, "--change-cap")
    added = len(_started(db, "def")) - held
    spent = _spent(db, "def") - before
    assert abs(this["trials"] - added) <= 2
    assert 0.6 * spent <= this["spend_micros"] <= 1.5 * spent, (this["spend_micros"], spent)


def test_a_curve_plans_range_holds_the_trials_its_workers_start(tmp_path: Path) -> None:
    """Default (curve) scheduler, 3 workers, $0.50, trials of $0.13 to $0.35 run to their end: the 3 first ones
    start together on nothing spent and later ones start while the others are still running, so the run starts
    more trials than full costs in a row fit the cap (it started 6 where the plan said 2 to 3)."""
    db = tmp_path / "s.db"
    path = _sweep(tmp_path, "def.yaml", name="def", budget={"usd": 0.5}, workers=3, max_steps=300, startup=30)
    p = _plan(path, db)["plan"]
    _run(path, db)
    started = len(_started(db, "def"))
    assert p["trials_fewest"] <= started <= p["trials_most"], (started, p)
    assert p["trials_fewest"] >= 3  # the first 3 start at once whatever they cost


def test_the_forecast_counts_the_trials_a_run_starts_not_the_one_the_cap_leaves_queued(tmp_path: Path) -> None:
    """The same $0.03 cap: the run starts one trial and leaves the next queued; the forecast's trial count
    said 2 (every trial created), now 1, what the run starts."""
    from costtune.plan.forecast import simulate_once

    path, db = _sweep(tmp_path, "eob1b.yaml", scheduler={"type": "fifo"}, budget={"usd": 0.03}), tmp_path / "s.db"
    sample = simulate_once(yaml.safe_load(path.read_text()))
    _run(path, db)
    assert sample.trials == len(_started(db, "edge")) == 1


def test_a_cap_below_one_start_up_is_planned_as_no_trial_and_says_why(tmp_path: Path) -> None:
    """$0.005 against a 600 s start-up (~$0.016 on m5.large on demand): the run starts nothing; the plan said
    0 trials without a word."""
    path = _sweep(tmp_path, "tiny.yaml", scheduler={"type": "fifo"}, budget={"usd": 0.005}, workers=2, startup=600)
    plan = _plan(path, tmp_path / "s.db")
    assert plan["plan"]["trials"] == 0
    assert any("cannot carry a trial to its first report" in n and "$0.005 cap" in n for n in plan["notes"])


def test_a_resumed_rung_plan_keeps_its_rung_money_apart_from_the_spend(tmp_path: Path) -> None:
    """ASHA's planned money counts only what trials spend after their first report; on a resume it was raised to
    the study's spend (start-up included) with a note comparing the two."""
    asha = {"type": "asha", "min_usd": 0.002, "max_usd": 0.018, "eta": 3}
    db = tmp_path / "s.db"
    first = _sweep(tmp_path, "b.yaml", scheduler=asha, budget={"usd": 0.4}, workers=3, startup=600)
    before = _plan(first, db)["plan"]["planned_micros"]
    _run(first, db)
    raised = _sweep(tmp_path, "b2.yaml", scheduler=asha, budget={"usd": 0.8}, workers=3, startup=600)
    plan = _plan(raised, db, "--change-cap")
    assert plan["plan"]["planned_micros"] >= before
    assert not any("is less than what it already holds" in n and "spent" in n for n in plan["notes"]), plan["notes"]


def test_a_workload_that_fails_on_every_sampled_configuration_is_refused_as_bad_input(tmp_path: Path) -> None:
    """A tester's sweep: mlp_tabular needs params `layers` and `batch` the space lacks. The plan showed full
    figures (~32 trials, $0.506) and buried "failed on a sampled configuration" in its notes; the run then failed
    every trial. Every trial would fail: the plan refuses like bad input, naming the field and the error."""
    path = _sweep(tmp_path, "nolayers.yaml", scheduler={"type": "asha", "min_usd": 0.0072, "max_usd": 0.05, "eta": 3},
                  budget={"usd": 0.5}, startup=60)
    data = yaml.safe_load(path.read_text())
    data["space"] = {"lr": {"type": "loguniform", "low": 0.0001, "high": 0.1},
                     "width": {"type": "int", "low": 16, "high": 1024, "log": True}}
    data["resources"]["simulation"]["workload"] = "costtune.demo.bench_workloads:mlp_tabular"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    db = tmp_path / "s.db"
    for fmt in ("table", "json"):
        result = CliRunner().invoke(main, ["plan", str(path), "--db", str(db), "--format", fmt])
        assert result.exit_code == 2, result.output
        said = " ".join(result.output.split())
        assert "resources.simulation.workload: workload costtune.demo.bench_workloads:mlp_tabular failed on every " \
               "one of the 48 sampled configurations" in said and "needs param 'layers'" in said, said
        assert "$" not in said and "trials started" not in said  # no money figure
    assert not db.exists()


def test_a_workload_that_fails_on_some_configurations_is_planned_on_the_others_and_says_so(tmp_path: Path) -> None:
    """Failing only where x1 > 0.5 (out of memory): the plan prices the configurations that run and says how
    many of the sampled ones fail, with the error."""
    path = _sweep(tmp_path, "some.yaml", budget={"usd": 0.5, "trials": 10}, max_steps=5, startup=30)
    data = yaml.safe_load(path.read_text())
    data["space"] = {"x": {"type": "uniform", "low": 0, "high": 1}}
    data["resources"]["simulation"]["workload"] = "simworkloads:fails_first_when_high"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    out = _plan(path, tmp_path / "s.db")
    [note] = [n for n in out["notes"] if "simworkloads:fails_first_when_high failed on" in n]
    assert "of the 48 sampled configurations (RuntimeError: out of memory before the first report)" in note
    assert out["plan"]["trials"] == 10
