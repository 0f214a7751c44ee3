"""A queued trial the money left cannot carry waits without blocking the trials (queued or proposed) it can."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from costtune.policies import parse_policy
from simworkloads import run_sweep, run_sweep_in

from costtune.history import TrialState
from costtune.runner.controller import RunStatus
from costtune.store import Store

X = {"x": 0.5}
# With a 240 s start-up: g4dn.xlarge on-demand needs ~$0.0351 to a first report, spot ~$0.0144, c5.xlarge
# on-demand ~$0.0113; $0.03 carries the last two one after the other, never the first.
BASE: dict[str, Any] = {
    "name": "queuefund",
    "objective": {"metric": "loss", "mode": "min"},
    "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
    "sampler": {"type": "manual", "configs": [
        {**X, "instance_type": "g4dn.xlarge", "market": "on-demand"},
        {**X, "instance_type": "g4dn.xlarge", "market": "spot"},
        {**X, "instance_type": "c5.xlarge", "market": "on-demand"}]},
    "scheduler": {"type": "fifo"},
    "budget": {"usd": 0.03},
    "resources": {
        "provider": "simulated", "region": "us-east-1",
        "instance_type": {"type": "categorical", "choices": ["g4dn.xlarge", "c5.xlarge", "t3.medium"]},
        "market": {"type": "categorical", "choices": ["on-demand", "spot"]}, "workers": 1,
        "simulation": {"workload": "simworkloads:steady", "max_steps": 3, "startup_seconds": 240, "seed": 0},
    },
}


def run(tmp_path: Path, **changes: Any) -> tuple[Any, RunStatus]:
    _store, study, status = run_sweep(tmp_path, BASE, **changes)
    return study, status


def test_a_queued_trial_the_cap_cannot_carry_lets_the_next_queued_trials_run(tmp_path: Path) -> None:
    study, status = run(tmp_path)
    first, *others = study.history().trials
    assert status.error is None and status.launched == 2
    assert [t.state for t in others] == [TrialState.COMPLETE, TrialState.COMPLETE]
    # the hand-placed trial was skipped, never moved: it waits on its own placement and says what it needs
    assert first.state == TrialState.QUEUED and first.params["instance_type"] == "g4dn.xlarge"
    assert first.error is not None and first.error.startswith("waiting: budget")
    assert "to a first report on g4dn.xlarge on-demand" in first.error  # its own need, measured by the runs before it
    assert "on g4dn.xlarge on-demand)" in status.stop_reason
    assert "1 queued trial waits for more budget" in status.stop_reason


def test_the_sampler_proposes_when_no_queued_trial_fits(tmp_path: Path) -> None:
    study, status = run(tmp_path, sampler={"type": "random", "seed": 3, "configs": BASE["sampler"]["configs"][:1]},
                        budget={"usd": 0.02, "trials": 4})
    trials = study.history().trials
    assert status.error is None and status.launched >= 1
    assert trials[0].state == TrialState.QUEUED and trials[0].params["market"] == "on-demand"
    assert any(t.state.finished for t in trials[1:])  # the sampler's trials ran
    assert "1 queued trial waits for more budget" in status.stop_reason and "~$" in status.stop_reason


def test_a_run_with_less_left_than_a_minimum_charge_names_what_its_queued_trial_needs(tmp_path: Path) -> None:
    configs = [{**X, "instance_type": "c5.xlarge", "market": "on-demand"},
               {**X, "instance_type": "g4dn.xlarge", "market": "on-demand"}]
    _, status = run(tmp_path, sampler={"type": "manual", "configs": configs}, budget={"usd": 0.0135})
    assert status.launched == 1
    # less than a minimum charge left: the budget is reached, and the reason still says what the trial needs
    assert status.stop_reason == ("budget.usd reached: $0.0128 of $0.0135 spent; 1 queued trial waits for more budget "
                                  "(~$0.0365 to a first report on g4dn.xlarge on-demand)")


# --- a policy window's room is judged by the same cost to a first report as the study's cap ----------------
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SWEEP: dict[str, Any] = {
    "name": "window", "tags": {"team": "vision"},
    "objective": {"metric": "loss", "mode": "min"},
    "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
    "sampler": {"type": "random", "seed": 3}, "scheduler": {"type": "fifo"},
    "budget": {"usd": 0.5, "trials": 6},
    "resources": {
        "provider": "simulated", "region": "us-east-1", "instance_type": "m5.large", "market": "on-demand",
        "workers": 3,
        "simulation": {"workload": "simworkloads:steady", "max_steps": 20, "startup_seconds": 240, "seed": 0},
    },
}


def run_in_window(tmp_path: Path, cap_usd: float, **changes: Any) -> tuple[Any, RunStatus, list[str]]:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.apply_policies([parse_policy({"name": "team-daily", "scope": {"tags": {"team": "vision"}},
                                        "window": {"period": "daily"}, "cap_usd": cap_usd})])
    return run_sweep_in(store, SWEEP, calendar=lambda: NOW, **changes)


def test_a_window_that_cannot_carry_a_trial_to_its_first_report_launches_nothing_and_says_so(tmp_path: Path) -> None:
    # $0.001 left in the window: less than m5.large's 60 s minimum charge, far less than its 240 s start-up and
    # 10 s first step
    study, status, _ = run_in_window(tmp_path, 0.001)
    assert status.launched == 0
    waiting = study.history().trials[0]
    need = "cannot carry the trial to its first report (~$0.00667 on m5.large on-demand)"
    assert waiting.state == TrialState.QUEUED and waiting.error is not None
    assert waiting.error.startswith("waiting: policy 'team-daily'") and waiting.error.endswith(need)
    assert need in status.stop_reason


def test_a_trial_refused_again_and_again_by_a_shrinking_window_is_warned_about_once(tmp_path: Path) -> None:
    # three workers share $0.02: each end of a trial frees a little, and the waiting trial is tried again
    _, status, warnings = run_in_window(tmp_path, 0.02)
    refused = [w.split(" not launched")[0] for w in warnings if " not launched: " in w]
    assert refused and len(refused) == len(set(refused)) == 1
    assert status.stop_kind in {"policy", "budget"}


# --- a rung scheduler's trial the cap stops before its first report is stopped by the budget, not the rung ---
def test_a_trial_the_cap_ends_before_its_first_report_is_stopped_by_the_budget_not_judged(tmp_path: Path) -> None:
    # c5.xlarge on-demand, 250 s start-up, a step of 1 s at x=0 and 30 s at x=1 (simworkloads.varied). Trial 0
    # measures the first report on c5.xlarge at 251 s ($0.0119) and spends $0.0158; the $0.0125 left carries that
    # measured figure, which rules, but not trial 1's own first report at 280 s ($0.0132)
    configs = [{"x": 0.0, "instance_type": "c5.xlarge", "market": "on-demand"},
               {"x": 1.0, "instance_type": "c5.xlarge", "market": "on-demand"}]
    study, _ = run(tmp_path, sampler={"type": "manual", "configs": configs},
                   scheduler={"type": "asha", "min_usd": 0.002, "max_usd": 0.004, "eta": 2},
                   budget={"usd": 0.02832, "trials": 2},
                   resources={**BASE["resources"],
                              "simulation": {**BASE["resources"]["simulation"], "workload": "simworkloads:varied",
                                             "max_steps": 400, "startup_seconds": 250}})
    measured, second = study.history().trials
    assert measured.state == TrialState.COMPLETE and measured.cost_micros == 15_820
    assert second.state == TrialState.STOPPED and second.last_step is None
    assert not any("no result by" in r for r in second.verdict_reasons)
    note = study.store.attempts(study.id, 1)[0].note  # what `costtune trials STUDY 1` shows
    assert note.startswith("stopped by the budget: budget.usd reached before its first report, ")
    assert "it used up the $0.0125 it held" in note


def test_a_trial_stopped_at_its_share_of_a_split_cap_says_what_it_held(tmp_path: Path) -> None:
    study, _ = run(tmp_path, sampler={"type": "random", "seed": 3}, budget={"usd": 0.05, "trials": 3},
                   resources={**BASE["resources"], "instance_type": "t3.medium", "market": "on-demand", "workers": 3,
                              "simulation": {**BASE["resources"]["simulation"], "max_steps": 400}})
    notes = [study.store.attempts(study.id, t.number)[0].note for t in study.history().trials]
    assert notes and all(n.startswith("stopped by the budget: budget.usd reached, it used up the $0.0167 it held, "
                                      "with ") and "(its own included) of the $0.05 cap" in n for n in notes)


def test_the_cost_to_a_first_report_on_a_new_type_counts_the_first_step_measured_on_others(tmp_path: Path) -> None:
    # c5.xlarge on-demand runs first: 240 s start-up + 3 steps of 10 s = $0.01275, its first report at 250 s.
    # $0.00283 is then left: t3.medium on-demand's 240 s start-up ($0.00277) fits, its 250 s to a report ($0.00289) not
    configs = [{**X, "instance_type": "c5.xlarge", "market": "on-demand"},
               {**X, "instance_type": "t3.medium", "market": "on-demand"}]
    study, status = run(tmp_path, sampler={"type": "manual", "configs": configs}, budget={"usd": 0.01558})
    second = study.history().trials[1]
    assert status.launched == 1 and second.state == TrialState.QUEUED
    assert second.error is not None and second.error.endswith("(~$0.00289 on t3.medium on-demand)")
