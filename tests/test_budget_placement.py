"""A searched placement the budget cannot carry to a first report: the trial moves to one it can."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from simworkloads import run_sweep, with_changes

from costtune.errors import StoreError
from costtune.history import TrialState
from costtune.runner.controller import RunStatus
from costtune.runner.session import open_sweep
from costtune.spec import parse_sweep
from costtune.store import Store

# g4dn.xlarge with a 300 s start-up and 10 s steps: ~$0.0453 to a first report on-demand, ~$0.0186 on spot. The random
# sampler (seed 4) proposes on-demand first.
SEARCHED: dict[str, Any] = {
    "name": "placed",
    "objective": {"metric": "loss", "mode": "min"},
    "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
    "sampler": {"type": "random", "seed": 4},
    "scheduler": {"type": "fifo"},
    "budget": {"usd": 0.03},
    "resources": {
        "provider": "simulated", "region": "us-east-1", "instance_type": "g4dn.xlarge",
        "market": {"type": "categorical", "choices": ["spot", "on-demand"]}, "workers": 1,
        "simulation": {"workload": "simworkloads:steady", "max_steps": 5, "startup_seconds": 300, "seed": 0},
    },
}


def run(tmp_path: Path, **changes: Any) -> tuple[Store, Any, RunStatus]:
    return run_sweep(tmp_path, SEARCHED, **changes)


def test_a_small_cap_moves_the_trial_to_a_searched_placement_it_can_fund(tmp_path: Path) -> None:
    store, study, status = run(tmp_path)
    first = study.history().trials[0]
    assert status.launched >= 1
    assert first.state == TrialState.COMPLETE and first.value is not None
    assert first.params["market"] == "spot" and set(first.params) == {"x", "market"}  # x kept
    (attempt,) = store.attempts(study.id, 0)
    assert attempt.market == "spot"  # the stored params say where it really ran
    assert attempt.note is not None and "placed on g4dn.xlarge spot instead of the proposed g4dn.xlarge " \
        "on-demand: $0.03 left under budget.usd could not carry it to its first report there" in attempt.note
    for trial in study.history().trials:  # no attempt ran on params other than its trial's
        for a in store.attempts(study.id, trial.number):
            assert a.market == trial.params["market"]


def test_the_run_stops_only_when_no_searched_placement_fits(tmp_path: Path) -> None:
    store, study, status = run(tmp_path, budget={"usd": 0.015})
    assert status.launched == 0
    # named: the least any searched placement needs, not the proposed one's (start-up and first step)
    assert "$0.015 left cannot carry a trial to its first report (~$0.0186 on g4dn.xlarge spot)" in status.stop_reason
    waiting = study.history().trials[0]
    assert waiting.state == TrialState.QUEUED and waiting.params["market"] == "on-demand"  # not moved
    assert store.attempts(study.id, 0) == []


def test_the_store_changes_params_only_before_the_first_launch(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    study, _ = open_sweep(store, parse_sweep(SEARCHED))
    claimed = study.claim(with_output_dir=False)
    assert claimed is not None
    moved = {**claimed.params, "market": "spot"}
    with pytest.raises(StoreError, match="only before its first launch"):  # not held by this controller
        store.replace_params(claimed.id, moved, owner="another:1:0")
    store.replace_params(claimed.id, moved, owner=study.owner)
    assert study.history().trials[0].params == moved
    store.start_attempt(claimed.id, 1, idempotency_key="k-1", provider="simulated", rate_micros_per_hour=1)
    with pytest.raises(StoreError, match="only before its first launch"):
        store.replace_params(claimed.id, claimed.params, owner=study.owner)
    assert study.history().trials[0].params == moved


def test_the_plan_counts_the_trial_a_searched_cheaper_placement_starts(tmp_path: Path) -> None:
    """`costtune plan` said "starts no trial" from the placements' mean cost to a first report ($0.0353 > $0.03)
    while the run starts one on spot; below the cheapest placement's ($0.0186) it says so, naming that one, as the
    run does (one figure: start-up and first step, even when the cap is below the start-up)."""
    import json

    import yaml
    from click.testing import CliRunner

    from costtune.cli import main

    def plan(usd: float) -> dict[str, Any]:
        path = tmp_path / f"p{usd}.yaml"
        path.write_text(yaml.safe_dump(with_changes(SEARCHED, budget={"usd": usd})))
        out = CliRunner().invoke(main, ["plan", str(path), "--db", str(tmp_path / "s.db"), "--format", "json",
                                        "--no-forecast"], catch_exceptions=False)
        assert out.exit_code == 0, out.output
        return json.loads(out.stdout)

    fits = plan(0.03)
    assert fits["plan"]["trials"] >= 1 and not any("starts no trial" in n for n in fits["notes"])
    short = plan(0.015)
    assert short["plan"]["trials"] == 0
    assert any("(~$0.0186 for start-up and first step on the cheapest searched placement): `costtune run` starts "
               "no trial" in n for n in short["notes"])


def test_a_waiting_trials_note_names_the_placement_it_would_move_to(tmp_path: Path) -> None:
    """A tester's report: the queued trial's row showed its proposed on-demand market while its waiting note
    priced spot (the cheaper searched placement it would be moved to). The note now says it would move."""
    from click.testing import CliRunner

    from costtune.cli import main

    store, study, _status = run(tmp_path, budget={"usd": 0.015})
    waiting = study.history().trials[0]
    assert waiting.params["market"] == "on-demand"  # the row's market: not moved until it launches
    assert waiting.error == ("waiting: budget: $0.015 left cannot carry a trial to its first report (~$0.0186 on "
                             "g4dn.xlarge spot); would move to g4dn.xlarge spot from its proposed g4dn.xlarge "
                             "on-demand")
    shown = CliRunner().invoke(main, ["trials", "placed", "0", "--db", store.url], env={"COLUMNS": "200"})
    assert "market=on-demand" in shown.output
    assert "would move to g4dn.xlarge spot from its proposed g4dn.xlarge on-demand" in " ".join(shown.output.split())


def test_a_trial_waiting_on_its_own_placement_says_no_move(tmp_path: Path) -> None:
    """Its own placement is the cheapest searched one: nothing to move, the note names only it."""
    _store, study, _status = run(tmp_path, budget={"usd": 0.015}, sampler={"type": "random", "seed": 4},
                                 resources__market="spot")
    waiting = study.history().trials[0]
    assert waiting.state == TrialState.QUEUED and "would move" not in (waiting.error or "")
    assert "(~$0.0186 on g4dn.xlarge spot)" in (waiting.error or "")
