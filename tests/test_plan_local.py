"""`costtune plan` of local sweeps, which have no workload model: budget.trial_seconds bounds a trial's cost (a
bound, shown as one, never as the expected count), a study's finished trials give the measured cost, and its
attempts the measured start-up."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml
from plantools import cli as _cli

from costtune.plan.analytic import Schedule
from costtune.plan.thisrun import at_least_recorded


def _local(tmp_path: Path, *, usd: float, trials: int, file: str = "loc.yaml") -> Path:
    script = tmp_path / "train.py"
    script.write_text("print('costtune:report ' + '{\"step\": 0, \"loss\": 1.0}')\n")
    data: dict[str, Any] = {
        "name": "loc", "objective": {"metric": "loss", "mode": "min"},
        "space": {"x": {"type": "uniform", "low": 0, "high": 1}}, "sampler": {"type": "random", "seed": 1},
        "scheduler": {"type": "fifo"}, "command": [sys.executable, str(script)],
        "budget": {"trials": trials, "usd": usd, "trial_seconds": 60},
        "resources": {"provider": "local", "usd_per_hour": 1.0, "workers": 2},
    }
    path = tmp_path / file
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _plan(path: Path, db: Path, *flags: str) -> dict[str, Any]:
    result = _cli("plan", str(path), "--db", str(db), "--format", "json", *flags)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_trial_seconds_limit_is_shown_as_a_bound_not_as_the_expected_trial(tmp_path: Path) -> None:
    """$0.02 cap, 60 s at $1/h ($0.0167 a trial at most): at least 1 trial started, at most $0.02 spent; the
    table never calls the limit the expected cost of a trial."""
    path, db = _local(tmp_path, usd=0.02, trials=6), tmp_path / "none.db"
    p = _plan(path, db)["plan"]
    assert p["bounded"] is True and p["trials"] == 1 and p["trial_cost_micros"] == 16667
    assert p["planned_micros"] == 20000  # the most it may spend: the cap
    table = _cli("plan", str(path), "--db", str(db)).output
    assert "expected cost of one trial" not in table
    assert "at least 1" in table and "at most $0.0167" in table and "at most $0.02" in table
    assert "start-up per launch not counted" in table  # nothing measured: said, not assumed to be 0


def test_a_resumed_local_plan_uses_the_studys_measured_trial_cost_and_start_up(tmp_path: Path) -> None:
    """After a run, --change-cap plans with what the study's finished trials cost, not the 60 s bound, and with
    their measured start-up."""
    db = tmp_path / "s.db"
    assert _cli("run", str(_local(tmp_path, usd=0.02, trials=2)), "--db", str(db), "--quiet").exit_code == 0
    trials = json.loads(_cli("trials", "loc", "--db", str(db), "--format", "json").stdout)
    costs = [t["cost_micros"] for t in trials]
    assert len(costs) == 2 and 0 < max(costs) < 16667
    out = _plan(_local(tmp_path, usd=0.05, trials=6, file="more.yaml"), db, "--change-cap")
    p, run = out["plan"], out["this_run"]
    assert p["bounded"] is False and p["trial_cost_source"] == "measured"
    assert abs(p["trial_cost_micros"] - sum(costs) / 2) <= 2
    assert run["trials"] == 4 and not run["bounded"]  # budget.trials leaves 4; the cap left holds far more
    assert run["spend_micros"] < 4 * 16667
    assert out["startup"]["source"] == "measured" and out["startup"]["attempts"] == 2
    assert out["overheads"][0]["startup_seconds"] > 0


def test_the_note_on_a_plan_below_the_study_claims_only_what_is_true() -> None:
    """The plan from zero (2 trials, $0.0333) is below the study in trials (10), not in money ($0.0103 spent):
    the note names the trials alone."""
    notes: list[str] = []
    schedule = Schedule(kind="fifo", trials=2, trials_estimated=True, planned_micros=33333, expected_micros=33333,
                        trial_cost_micros=16667)
    clamped = at_least_recorded(schedule, 10, 10300, notes)
    assert clamped.trials == 10 and clamped.planned_micros == 33333
    (note,) = notes
    assert "2 trials started, fewer than the 10 trials it holds" in note
    assert "$0.0333" not in note and "less than" not in note


def test_the_minimum_charge_warned_about_is_the_one_the_table_shows(tmp_path: Path) -> None:
    """Per-second billing charges any launch at least one second: $0.001 at $3.60/h, in the warning and the table
    alike (the table said $0 (0 s))."""
    path = tmp_path / "asha.yaml"
    path.write_text(yaml.safe_dump({
        "name": "la", "objective": {"metric": "loss", "mode": "min"},
        "space": {"x": {"type": "uniform", "low": 0, "high": 1}}, "scheduler": {"type": "asha"},
        "command": [sys.executable, "-c", "pass"], "budget": {"usd": 0.02},
        "resources": {"provider": "local", "usd_per_hour": 3.6, "workers": 2}}, sort_keys=False))
    result = _cli("plan", str(path), "--db", str(tmp_path / "none.db"), "--format", "json")
    assert result.exit_code == 0, result.output
    assert "minimum charge of the cheapest placement, $0.001 (1 s at $3.60/h" in result.stderr
    (o,) = json.loads(result.stdout)["overheads"]
    assert o["minimum_micros"] == 1000 and o["minimum_seconds"] == 1


def test_a_local_plans_start_up_is_one_figure_billed_as_part_of_the_attempt(tmp_path: Path) -> None:
    """The measured start-up (well under a second) reads the same in the table and the note, and is charged as its
    share of the attempt's time: per second billing rounds the attempt up once, not its start-up on its own (the
    plan said $0.01 of start-up a launch at $36/h, half its planned money). A local trial at usd_per_hour has no
    market (README), so the table shows none."""
    db = tmp_path / "s.db"
    assert _cli("run", str(_local(tmp_path, usd=0.02, trials=2)), "--db", str(db), "--quiet").exit_code == 0
    more = _local(tmp_path, usd=0.05, trials=6, file="more.yaml")
    out = _plan(more, db, "--change-cap")
    (o,) = out["overheads"]
    seconds = o["startup_seconds"]
    assert 0 < seconds < 1 and o["market"] is None
    assert o["startup_micros"] == -(-round(seconds * 1000) * 1_000_000 // 3_600_000) < o["minimum_micros"]
    table = _cli("plan", str(more), "--db", str(db), "--change-cap").output
    shown = f"{round(seconds * 1000)} ms"
    assert f"start-up per launch {shown}: the median" in table and f" {shown} │" in table, table
    assert "on-demand" not in table


def test_a_study_whose_attempts_never_reported_counts_their_billed_time_as_a_lower_bound_on_start_up() -> None:
    """14 local attempts stopped at a $0.004 rung before any report (1-2 s each at $36/h): the plan said start-up
    "not counted ... nothing has measured yet" beside a note about those very attempts. Their billed time is a
    lower bound on the start-up, and the plan uses and names it; a cloud's own estimate stays when it is larger."""
    from costtune.plan.startup import FirstReports, startup_estimate

    seen = FirstReports("s", "here.db", (), (10_000, 20_000) * 7, (), (1.0, 2.0) * 7)
    local = startup_estimate("local", None, seen)
    assert (local.source, local.seconds, local.attempts) == ("at least", 1.5, 14)
    assert local.describe().startswith("start-up per launch at least 1.5 s: none of this study's attempts has "
                                       "reported; its 14 attempts that ended without a report were billed")
    assert startup_estimate("aws", None, seen).source == "estimate"  # 120 s, more than 1.5 s of evidence
    assert startup_estimate("local", None, None).source == "none"
