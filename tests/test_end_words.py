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


def test_a_rung_trial_that_ran_its_whole_ladder_is_complete_not_stopped(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A tester's ASHA run: a trial shown 'complete' had the rung line '$0.009 ... stopped: reached max_usd'.
    It got all the money the sweep gives a trial: its last rung says 'complete: ran to max_usd ($0.009)'."""
    monkeypatch.setattr(out_console, "width", 300)
    url = f"sqlite:///{tmp_path / 's.db'}"
    cfg = with_changes(BASE, scheduler={"type": "asha", "min_usd": "0.001", "max_usd": "0.009", "eta": 3},
                       budget={"trials": 6, "usd": "0.1"},
                       resources__simulation={"workload": "simworkloads:steady", "max_steps": 1000, "seed": 0})
    _spec, study, _status = run_sim(Store(url), cfg)
    top = [t for t in study.history().trials if t.verdicts and t.verdicts[-1][0] == 9000]
    assert top and all(t.state == TrialState.COMPLETE and not t.verdicts[-1][2] for t in top)
    text = CliRunner().invoke(main, ["trials", "words", str(top[0].number), "--db", url]).stdout
    assert "$0.009 " in text and "complete: ran to max_usd ($0.009)" in text, text
    assert "reached max_usd" not in text and "stopped: ran to" not in text, text


def test_a_top_rung_reason_stored_by_an_older_costtune_reads_in_todays_words() -> None:
    from rich.console import Console

    from costtune.reports.trials import trial_detail

    row = {"state": "complete", "source": "sampler", "params": {"x": 0.1}, "value": 0.5, "last_step": 9,
           "metrics": {}, "cost_micros": 9000, "output_dir": None, "attempts": [], "error": None,
           "verdicts": [{"rung_micros": 1000, "value": 0.6, "promoted": True, "reason": "top 1/3"},
                        {"rung_micros": 9000, "value": 0.5, "promoted": False, "reason": "reached max_usd"}]}
    console = Console(width=200, record=True)
    for part in trial_detail(row, "loss", title="trial 0"):
        console.print(part)
    text = console.export_text()
    assert "$0.009 0.5 complete: ran to max_usd ($0.009)" in text and "$0.001 0.6 promoted: top 1/3" in text, text


def test_a_new_study_whose_trials_a_policy_denied_shows_no_this_run_share(tmp_path: Path) -> None:
    """A tester's new study: a policy rule denied some trials' placement (failed unlaunched); the run's end said
    '... this run: 10 trials ended' although the study is new and every trial ended in this run: the denied
    ones were left out of this run's count, so it looked shared. `costtune studies --format json` gave no
    count of unfinished trials, so its parts did not add up to `trials`."""
    from costtune.policies import parse_policy

    url = f"sqlite:///{tmp_path / 's.db'}"
    store = Store(url)
    store.apply_policies([parse_policy({"name": "t3-rules", "rules": {"denied_instance_types": ["g4dn.*"]}})])
    resources = {**BASE["resources"], "instance_type": {"type": "categorical", "choices": ["m5.large", "g4dn.xlarge"]},
                 "simulation": {"workload": "simworkloads:steady", "max_steps": 5, "seed": 0}}
    _spec, study, status = run_sim(store, {**BASE, "resources": resources})
    history = study.history()
    denied = [t for t in history.trials if (t.error or "").startswith("denied: ")]
    assert denied and status.denied == len(denied)  # the case reported: some trials denied, not launched
    outcomes = Outcomes.of(history.trials)
    assert status.own_finished == outcomes.total - outcomes.unfinished and status.own_outcomes.failed == len(denied)
    line = totals_line(history, status)
    assert "this run" not in line and f"{len(denied)} failed" in line, line
    [row] = json.loads(CliRunner().invoke(main, ["studies", "--db", url, "--format", "json"]).stdout)
    assert row["with_result"] + row["failed"] + row["no_result"] + row["unfinished"] == row["trials"]
