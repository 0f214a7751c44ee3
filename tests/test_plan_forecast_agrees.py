"""`costtune plan`'s estimates beside its own forecast and its resumes' measured costs: trial-count percentiles
are counts some run had, an analytic count outside the forecast's range says so and names the forecast's, and
an ASHA resume counts its trials at what the study's trials really cost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from plantools import cli as _cli

from costtune.plan.agree import forecast_disagreements
from costtune.plan.analytic import build_plan
from costtune.plan.forecast import Forecast, RunSample
from costtune.spec import parse_sweep

ASHA: dict[str, Any] = {  # the new-user test's ASHA sweep: $1.20 ran 80 trials; raised to $2.00 the next run added 51
    "name": "asha",
    "objective": {"metric": "loss", "mode": "min"},
    "space": {f"x{i}": {"type": "uniform", "low": 0, "high": 1} for i in range(1, 7)},
    "sampler": {"type": "random", "seed": 5},
    "scheduler": {"type": "asha", "eta": 2},
    "budget": {"usd": 1.20},
    "resources": {
        "provider": "simulated", "region": "us-east-1", "market": "spot", "workers": 5,
        "instance_type": {"type": "categorical", "choices": ["t3.large", "m5.xlarge", "g4dn.xlarge"]},
        "simulation": {"workload": "costtune.demo.workloads:hartmann6", "max_steps": 500, "startup_seconds": 90,
                       "preemptions_per_hour": 0.5, "seed": 2},
    },
}


def _forecast(trials: list[int]) -> Forecast:
    return Forecast(runs=tuple(RunSample(seed=i, spend_micros=1_000_000, best_value=0.0, preemptions=i % 3,
                                         waste_micros=0, trials=n, sim_seconds=60.0) for i, n in enumerate(trials)),
                    cap_micros=1_200_000)


def test_trial_count_percentiles_are_counts_a_run_had() -> None:
    """Interpolated percentiles read 49.5 and 71.8 trials; each is now a count some run started, the range outward."""
    trials = [49, 50, 50, 50, 50, 50, 50, 50, 50, 50, 72, 80, 90, 107]
    f = _forecast(trials)
    for q in (10, 50, 90):
        assert f.quantile("trials", q) in trials and f.quantile("preemptions", q) in (0, 1, 2)
    assert f.quantile("trials", 10) == 50 and f.quantile("trials", 90) == 90  # the range outward (13 gaps: 1.3, 11.7)


def test_an_analytic_count_outside_the_forecasts_range_names_the_forecasts() -> None:
    """The plan's ASHA estimate (~116 trials) sat outside its forecast's p10 to p90 (71.8 to 106.6): a note says so
    and names the forecast's count; inside the range nothing is added."""
    plan = build_plan(parse_sweep(json.loads(json.dumps(ASHA))))
    planned = plan.schedule.trials
    assert planned is not None and plan.cap_fit is None
    plan.forecast = _forecast([planned - 40, planned - 36, planned - 35, planned - 30, planned - 20])
    (note,) = forecast_disagreements(plan)
    assert f"the forecast's runs started {planned - 35} (median; p10 to p90 {planned - 40} to {planned - 20})" in note
    assert f"outside the analytic plan's ~{planned}" in note
    plan.forecast = _forecast([planned - 2, planned, planned + 3])
    assert forecast_disagreements(plan) == []


def test_an_asha_resume_counts_its_trials_at_their_measured_cost(tmp_path: Path) -> None:
    """$1.20 ran; with $2.00 (--change-cap) the next run adds what the cap left buys at the study's own cost of a
    trial (the new user's plan said ~76 at the modelled $0.0105 a trial; the run added 51 at about $0.015)."""
    db = tmp_path / "user.db"
    first = tmp_path / "first.yaml"
    first.write_text(yaml.safe_dump(ASHA, sort_keys=False))
    assert _cli("run", str(first), "--db", str(db), "--quiet").exit_code == 0
    raised = tmp_path / "raised.yaml"
    raised.write_text(yaml.safe_dump({**ASHA, "budget": {"usd": 2.0}}, sort_keys=False))
    out = json.loads(_cli("plan", str(raised), "--db", str(db), "--format", "json", "--no-forecast",
                          "--change-cap").stdout)
    assert any("asha: this run's trials at the study's measured cost of a trial" in n for n in out["notes"])
    board = json.loads(_cli("trials", "asha", "--db", str(db), "--format", "json").stdout)
    costs = [t["cost_micros"] for t in board if t["state"] in ("complete", "stopped", "failed") and t["cost_micros"]]
    assert out["this_run"]["trials"] == out["this_run"]["left_micros"] * len(costs) // sum(costs)

    def held() -> int:
        return len(json.loads(_cli("trials", "asha", "--db", str(db), "--format", "json").stdout))

    before = held()
    assert _cli("run", str(raised), "--db", str(db), "--quiet", "--change-cap").exit_code == 0
    added = held() - before + out["resumes"]["trials_queued"]
    # ASHA's cost of a trial drifts as the study grows (its promotions): the run agrees roughly (58 planned, 70 ran)
    assert abs(out["this_run"]["trials"] - added) <= 0.25 * added, (out["this_run"], added)
