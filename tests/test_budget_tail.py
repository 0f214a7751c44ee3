"""The end of a dollar budget: no trial starts when what is left cannot carry it to its first report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from costtune.providers import make_provider
from simworkloads import with_changes

from costtune.history import TrialState
from costtune.runner.controller import RunStatus, SweepController
from costtune.runner.session import open_sweep
from costtune.spec import parse_sweep
from costtune.store import Store

# m5.large on-demand, $0.096/h: a 240 s start-up costs $0.0064, the first report (step 0, 10 s later) $0.006667
TAIL: dict[str, Any] = {
    "name": "tail",
    "objective": {"metric": "loss", "mode": "min"},
    "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
    "sampler": {"type": "random", "seed": 4},
    "scheduler": {"type": "fifo"},
    "budget": {"usd": 0.10},
    "resources": {
        "provider": "simulated", "region": "us-east-1", "instance_type": "m5.large", "market": "on-demand",
        "workers": 3,
        "simulation": {"workload": "simworkloads:steady", "max_steps": 30, "startup_seconds": 240, "seed": 0},
    },
}


def run(tmp_path: Path, *, change_cap: bool = False, **changes: Any) -> tuple[Store, Any, RunStatus]:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    spec = parse_sweep(with_changes(TAIL, **changes))
    study, _ = open_sweep(store, spec, change_cap=change_cap)
    provider = make_provider("simulated", simulation=spec.resources.simulation, metric=spec.metric)
    return store, study, SweepController(spec, study, provider, trial_events=False).run()


def started_without_a_report(store: Store, study: Any) -> list[int]:
    """Trials that were launched (an attempt exists) but never reported anything."""
    return [t.number for t in study.history().trials
            if store.attempts(study.id, t.number) and t.last_step is None]


def test_a_budget_ending_mid_trial_starts_no_trial_that_cannot_report(tmp_path: Path) -> None:
    store, study, _ = run(tmp_path)
    trials = study.history().trials
    assert sum(t.state != TrialState.QUEUED for t in trials) >= 5
    assert started_without_a_report(store, study) == []
    assert store.balance(f"study:{study.id}").spent_micros <= 100_000  # the cap is as strict as before


def test_the_run_says_the_money_left_cannot_reach_a_first_report(tmp_path: Path) -> None:
    # $0.005 is above the 60 s minimum charge ($0.0016) but below the 240 s start-up and 10 s first step ($0.00667)
    store, study, status = run(tmp_path, budget={"usd": 0.005})
    assert status.launched == 0
    assert started_without_a_report(store, study) == []
    why = "budget: $0.005 left cannot carry a trial to its first report (~$0.00667 on m5.large on-demand)"
    assert status.stop_reason.startswith(why)
    waiting = study.history().trials[0]  # the trial it did not start says why (costtune trials STUDY)
    assert waiting.state == TrialState.QUEUED and waiting.error == f"waiting: {why}"


def test_a_budget_with_room_for_one_more_trial_still_starts_it(tmp_path: Path) -> None:
    _, study, status = run(tmp_path, budget={"usd": 0.008}, resources={**TAIL["resources"], "workers": 1})
    first = study.history().trials[0]
    assert status.launched >= 1
    assert first.last_step is not None and first.last_step >= 0  # it reached its first report


def test_a_resumed_study_prices_the_first_report_from_its_earlier_runs(tmp_path: Path) -> None:
    # Its trials first reported after 250 s ($0.006667); the simulation's 240 s start-up alone is $0.0064.
    one = {**TAIL["resources"], "workers": 1}
    store, study, _ = run(tmp_path, budget={"usd": 0.05, "trials": 2}, resources=one)
    spent = store.balance(f"study:{study.id}").spent_micros
    cap = (spent + 6_500) / 1e6  # room for the start-up, not for the first report
    store, study, status = run(tmp_path, budget={"usd": cap, "trials": 3}, resources=one, change_cap=True)
    assert status.launched == 0
    assert started_without_a_report(store, study) == []
    assert status.stop_reason.startswith(
        "budget: $0.0065 left cannot carry a trial to its first report (~$0.00667 on m5.large on-demand)")


def test_a_trial_left_queued_when_the_budget_is_spent_says_why(tmp_path: Path) -> None:
    """One worker, a cap that runs out in the middle of the first trial (240 s start-up, 30 steps of 10 s at
    $0.096/h cost $0.0144): the next trial stays queued, and `costtune trials` says what it waits for."""
    _store, study, status = run(tmp_path, budget={"usd": 0.01}, resources__workers=1)
    assert status.launched == 1
    queued = [t for t in study.history().trials if t.state == TrialState.QUEUED]
    assert queued and all((t.error or "").startswith("waiting: budget") for t in queued), [t.error for t in queued]


def test_costtune_run_ends_naming_the_budget_that_cannot_carry_a_trial(tmp_path: Path) -> None:
    """A cap below one trial's cost to its first report: the run starts nothing and its last word is why, with
    the amounts (exit 1), not "no trial produced a value"."""
    import yaml
    from click.testing import CliRunner

    from costtune.cli.app import main

    sweep = tmp_path / "tail.yaml"
    sweep.write_text(yaml.safe_dump(with_changes(TAIL, budget={"usd": 0.005})), encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    result = CliRunner().invoke(main, ["run", str(sweep), "--db", db, "--quiet"])
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("failed: no trial could start: budget: $0.005 left cannot carry a trial to its first "
                           "report (~$0.00667 on m5.large on-demand)"), result.output
    assert "raise budget.usd" in last and "no trial produced a value" not in result.output
