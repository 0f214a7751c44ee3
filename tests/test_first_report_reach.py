"""Before any first report is measured, a run counts a trial's start-up AND its first step to its first report,
as `costtune plan` does: with several workers sharing a small cap it starts only the trials the cap can carry to a
first report (none, and says so with the amounts, when it carries none); a fifo trial the budget stops before its
first report says so. Real simulated runs through the CLI and the controller."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from simworkloads import run_sweep, with_changes

from costtune.cli.app import main
from costtune.history import TrialState
from costtune.runner.controller import RunStatus
from costtune.store import Store
from costtune.study import load_study

# The tester's sweep: four workers split $0.05 over three on-demand types; a 120 s start-up, then steps of 60 to
# 120 s (simworkloads.long_steps). On g4dn.xlarge ($0.526/h) the start-up alone is $0.0175, a first report (start-up
# and first step) $0.0263 to $0.0351: the cap carries one such trial to its first report, never two.
SMALL: dict[str, Any] = {
    "name": "reach",
    "objective": {"metric": "loss", "mode": "min"},
    "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
    "sampler": {"type": "random", "seed": 2},  # proposes g4dn.xlarge first, and again
    "scheduler": {"type": "fifo"},
    "budget": {"usd": 0.05},
    "resources": {
        "provider": "simulated", "region": "us-east-1",
        "instance_type": {"type": "categorical", "choices": ["g4dn.xlarge", "c5.xlarge", "t3.large"]},
        "market": "on-demand", "workers": 4,
        "simulation": {"workload": "simworkloads:long_steps", "max_steps": 4, "startup_seconds": 120, "seed": 0},
    },
}


def cli(tmp_path: Path, *args: str, **changes: Any) -> Any:
    sweep = tmp_path / "reach.yaml"
    sweep.write_text(yaml.safe_dump(with_changes(SMALL, **changes)), encoding="utf-8")
    return CliRunner().invoke(main, [args[0], str(sweep), "--db", f"sqlite:///{tmp_path / 's.db'}", *args[1:]],
                              catch_exceptions=False)


def run(tmp_path: Path, **changes: Any) -> tuple[Store, Any, RunStatus]:
    return run_sweep(tmp_path, SMALL, **changes)


def test_workers_sharing_a_small_cap_start_only_the_trials_it_carries_to_a_first_report(tmp_path: Path) -> None:
    plan = cli(tmp_path, "plan", "--format", "json", "--no-forecast")
    assert plan.exit_code == 0, plan.output
    assert any("no trial may finish" in n for n in json.loads(plan.stdout)["notes"])
    result = cli(tmp_path, "run", "--quiet")
    assert result.exit_code == 0, result.output
    assert "no trial produced a value" not in result.output
    study = load_study("reach", storage=f"sqlite:///{tmp_path / 's.db'}")
    started = [t for t in study.history().trials if study.store.attempts(study.id, t.number)]
    # no trial stopped right after its start-up with no value: every one started reached its first report
    assert started and all(t.last_step is not None and t.value is not None for t in started), \
        [(t.number, t.params, t.state, t.value) for t in started]
    # g4dn.xlarge twice: the cap carries one to its first report; the other waits, not started only to be stopped
    assert len(started) == 1 and started[0].params["instance_type"] == "g4dn.xlarge"
    (waiting,) = [t for t in study.history().trials if t.state == TrialState.QUEUED]
    assert waiting.params["instance_type"] == "g4dn.xlarge"
    assert waiting.error is not None and waiting.error.startswith("waiting: budget.usd reached")


def test_a_cap_that_carries_no_trial_to_its_first_report_starts_none_and_says_so(tmp_path: Path) -> None:
    # $0.025 covers g4dn.xlarge's 120 s start-up ($0.0175), not its first report 90 s later (210 s: $0.0307)
    result = cli(tmp_path, "run", "--quiet", budget={"usd": 0.025},
                 sampler={"type": "manual", "configs": [{"x": 0.5, "instance_type": "g4dn.xlarge"}]})
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("failed: no trial could start: budget: $0.025 left cannot carry a trial to its first "
                           "report (~$0.0307 on g4dn.xlarge on-demand)"), result.output
    assert "no trial produced a value" not in result.output
    study = load_study("reach", storage=f"sqlite:///{tmp_path / 's.db'}")
    assert study.store.attempts(study.id, 0) == []  # nothing launched, nothing spent


def test_a_fifo_trial_the_budget_stops_before_its_first_report_says_so(tmp_path: Path) -> None:
    # t3.large ($0.0832/h), one worker. Trial 0 (x=0: 60 s steps) measures a first report at 180 s ($0.00416) and
    # spends $0.00555 in 240 s; that measured figure rules for trial 1 (x=1), whose own first report comes at 240 s.
    # The $0.005 left carries the measured figure, not trial 1's: the budget stops it before its first report.
    configs = [{"x": 0.0, "instance_type": "t3.large"}, {"x": 1.0, "instance_type": "t3.large"}]
    _store, study, status = run(tmp_path, budget={"usd": 0.010547},
                                sampler={"type": "manual", "configs": configs},
                                resources__workers=1, resources__simulation__max_steps=2)
    measured, second = study.history().trials
    assert measured.state == TrialState.COMPLETE and status.launched == 2
    assert second.state == TrialState.STOPPED and second.last_step is None
    note = study.store.attempts(study.id, 1)[0].note  # what `costtune trials STUDY 1` shows
    assert note is not None and note.startswith(
        "stopped by the budget: budget.usd reached before its first report, it used up the $0.005 it held, "), note
