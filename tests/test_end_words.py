"""What a run's end, `costtune studies`, `costtune report` and `costtune trials` say about how trials ended
(a new user's report): a trial without a value is no result, a stop reason names what ended the run, a
trial that ran its whole rung ladder is not 'stopped', a queued trial's row and note agree."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from costtune.providers import make_provider
from simworkloads import with_changes

from costtune.cli import main
from costtune.cli.common import out_console
from costtune.cli.run import totals_line
from costtune.history import FrozenTrial, History, Mode, Outcomes, TrialState
from costtune.reports.html import render_html
from costtune.runner.controller import SweepController
from costtune.runner.session import open_sweep
from costtune.spec import parse_sweep
from costtune.store import Store

BASE: dict[str, Any] = {
    "name": "words",
    "objective": {"metric": "loss", "mode": "min"},
    "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
    "sampler": {"type": "random", "seed": 3},
    "budget": {"trials": 6},
    "resources": {
        "provider": "simulated", "region": "us-east-1", "instance_type": "m5.large", "market": "on-demand",
        "workers": 2,
        "simulation": {"workload": "simworkloads:fails_first_when_high", "max_steps": 5, "seed": 0},
    },
}


def run_sim(store: Store, cfg: dict[str, Any]) -> tuple[Any, Any, Any]:
    spec = parse_sweep(cfg)
    study, _ = open_sweep(store, spec)
    provider = make_provider("simulated", simulation=spec.resources.simulation, metric=spec.metric)
    return spec, study, SweepController(spec, study, provider, trial_events=False).run()


def test_a_trial_that_failed_before_any_report_is_not_counted_finished(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A tester's run: 6 trials, one failed at its first step; the run's end said '6 finished' and
    `costtune studies` '6/6'. Both, and the report, now say how many have a result and how many failed."""
    monkeypatch.setattr(out_console, "width", 200)  # every column on one line
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = Store(url)
    _spec, study, status = run_sim(store, BASE)
    history = study.history()
    failed = [t for t in history.trials if t.state == TrialState.FAILED]
    assert failed and all(t.value is None for t in failed)  # the case reported: failed before any report
    with_value = len(history.trials) - len(failed)
    words = f"{with_value} with a result, {len(failed)} failed"
    line = totals_line(history, status)
    assert f"6 trials ({words})" in line and "finished" not in line, line
    result = CliRunner().invoke(main, ["studies", "--db", url])
    assert result.exit_code == 0 and f"6 ({words})" in result.stdout, result.output
    [row] = json.loads(CliRunner().invoke(main, ["studies", "--db", url, "--format", "json"]).stdout)
    assert (row["with_result"], row["failed"], row["no_result"]) == (with_value, len(failed), 0)
    assert f"6 ({words})" in render_html("words", history)


def test_a_trial_stopped_before_its_first_report_is_no_result() -> None:
    """Stopped (by the budget or a rung) before reporting the objective: counted apart, never as a result."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    history = History("loss", Mode.MIN, (
        FrozenTrial(0, TrialState.COMPLETE, {"x": 0.1}, value=0.5, finished_at=at),
        FrozenTrial(1, TrialState.STOPPED, {"x": 0.2}, value=0.7, finished_at=at),
        FrozenTrial(2, TrialState.STOPPED, {"x": 0.3}, finished_at=at),
        FrozenTrial(3, TrialState.FAILED, {"x": 0.4}, finished_at=at),
        FrozenTrial(4, TrialState.QUEUED, {"x": 0.5}),
    ))
    assert Outcomes.of(history.trials).words() == \
        "2 with a result, 1 failed, 1 stopped without a result, 1 unfinished"
    assert "5 (2 with a result, 1 failed, 1 stopped without a result, 1 unfinished)" in render_html("h", history)


def test_this_runs_share_counts_its_trials_the_same_way(tmp_path: Path) -> None:
    """A resumed study: the run's own share says how its own trials ended, as the study total does."""
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    run_sim(store, with_changes(BASE, budget__trials=3))
    before = store.history(store.get_study("words").id)
    _spec, study, status = run_sim(store, BASE)
    history = study.history()
    own = Outcomes.of(t for t in history.trials if t.number >= len(before.trials))
    assert status.own_outcomes == own
    assert f"this run: 3 trials ended ({own.words()})" in totals_line(history, status, before)
