"""Spend policies enforced through the ledger, on SQLite and PostgreSQL: window caps across sweeps,
denials that leave trials queued, amends, max_instances, thresholds that fire once (issue 10)."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from costtune.policies import parse_policy
from costtune.policies.status import study_verdicts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simworkloads import run_sweep_in, with_changes

from costtune.cli import main
from costtune.errors import CapExceeded, LaunchLimit
from costtune.history import TrialState
from costtune.reports.html import render_html
from costtune.runner.controller import RunStatus
from costtune.store import Store

_RUNS = itertools.count()
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
WINDOW = "policy:team-daily:daily:2026-11-30"
SWEEP: dict[str, Any] = {
    "name": "vision-a",
    "tags": {"team": "vision", "cost_centre": "cc-7"},
    "objective": {"metric": "loss", "mode": "min"},
    "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
    "sampler": {"type": "random", "seed": 3},
    "scheduler": {"type": "fifo"},  # every trial runs to its end: the policies decide what differs
    "budget": {"usd": 0.5, "trials": 6},
    "resources": {
        "provider": "simulated", "region": "us-east-1", "instance_type": "m5.large", "market": "on-demand",
        "workers": 3,
        "simulation": {"workload": "simworkloads:steady", "max_steps": 200, "startup_seconds": 30, "seed": 0},
    },
}
TEAM = {"name": "team-daily", "scope": {"tags": {"team": "vision"}}, "window": {"period": "daily"},
        "cap_usd": 0.1, "thresholds": [{"percent": 50, "actions": ["log"]}, {"percent": 80, "actions": ["log"]},
                                       {"percent": 100, "actions": ["log"]}]}


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """For what the runner decides (the same on every backend): the ledger's races run on both."""
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    yield store
    store.close()


def run(store: Store, cfg: dict[str, Any], **changes: Any) -> tuple[Any, RunStatus, list[str]]:
    return run_sweep_in(store, cfg, calendar=lambda: NOW, **changes)


def test_a_daily_team_cap_holds_across_sweeps_and_the_books_add_up(store: Store) -> None:
    store.apply_policies([parse_policy(TEAM)])
    runs = [run(store, SWEEP, name=name) for name in ("vision-a", "vision-b", "vision-c")]
    studies = [study for study, _status, _warnings in runs]
    cap, spent, held = store.balance(WINDOW)
    assert cap == 100_000 and held == 0
    assert 90_000 < spent <= cap  # the team used its day, and not a micro-dollar more
    per_study = [store.balance(f"study:{s.id}").spent_micros for s in studies]
    assert sum(per_study) == spent  # every segment booked in its study and in the window, once
    assert per_study[2] < per_study[0]  # the last sweep found the day nearly spent
    late = run(store, SWEEP, name="vision-d")[1]
    assert "policy 'team-daily': cap_usd $0.10 of the daily from 2026-11-30 (UTC) window" in late.stop_reason
    # attempts the window's cap stopped end "policy", with the policy and window as the trial's reason
    ended = [(t, a) for s in studies for t in s.history().trials for a in store.attempts(s.id, t.number)
             if a.exit_reason in ("policy", "budget")]
    assert ended and all(a.exit_reason == "policy" and t.error is not None and t.error.startswith(
        "policy 'team-daily': cap_usd $0.10 of the daily from 2026-11-30 (UTC) window") for t, a in ended)
    assert not any("budget.usd" in r[1].stop_reason for r in runs)
    other = run(store, SWEEP, name="nlp", tags={"team": "nlp"})[0]  # not in scope: only its own cap
    assert store.balance(f"study:{other.id}").spent_micros > 0 and store.balance(WINDOW).spent_micros == spent


def test_a_denied_launch_stays_queued_with_the_policy_and_rule_named_and_audited(sqlite_store: Store) -> None:
    store = sqlite_store
    store.apply_policies([parse_policy({"name": "no-m5", "scope": {"tags": {"team": "vision"}},
                                        "rules": {"denied_families": ["m5"]}})])
    study, status, warnings = run(store, SWEEP)
    why = "policy 'no-m5': rules.denied_families: family m5 matches 'm5'"
    assert why in status.stop_reason and status.launched == 0
    trials = study.history().trials
    assert [t.state for t in trials] == [TrialState.QUEUED] and trials[0].error == f"waiting: {why}"
    denials = store.audit_log(action="policy.deny")
    assert len(denials) == 1 and denials[0].detail["reason"] == why and denials[0].detail["trial"] == 0
    assert denials[0].detail["request"]["instance_type"] == "m5.large"
    assert any(why in w for w in warnings)
    shown = CliRunner().invoke(main, ["trials", "vision-a", "--db", store.url, "--format", "json"]).output
    assert why in shown
    board = CliRunner().invoke(main, ["leaderboard", "vision-a", "--db", store.url]).output
    assert f"policies: no-m5 (1 denied) last denial: {why}" in board.replace("\n", "")
    assert "<td>no-m5</td><td class=\"n\">0</td><td class=\"n\">0</td><td class=\"n\">1</td>" in render_html(
        "vision-a", study.history(), policies=study_verdicts(store, study.id))
    untagged = run(store, SWEEP, name="untagged", tags={"team": "vision"}, resources={
        **SWEEP["resources"], "instance_type": "c5.xlarge"})[1]
    store.apply_policies([parse_policy({"name": "tagged", "rules": {"required_tags": ["cost_centre"]}})])
    assert untagged.launched > 0  # ran before the tag rule existed
    again = run(store, SWEEP, name="untagged-2", tags={"team": "vision"}, resources={
        **SWEEP["resources"], "instance_type": "c5.xlarge"})[1]
    assert "policy 'tagged': rules.required_tags: the sweep has no tag 'cost_centre'" in again.stop_reason


def test_an_amend_rewrites_the_launch_and_is_audited(sqlite_store: Store) -> None:
    store = sqlite_store
    store.apply_policies([parse_policy({"name": "spot-only", "rules": {"allowed_markets": ["spot"],
                                                                       "amend": True}})])
    resources = {**SWEEP["resources"], "market": {"type": "categorical", "choices": ["on-demand", "spot"]}}
    study, status, _ = run(store, SWEEP, resources=resources)
    assert status.launched >= 6
    markets = {a.market for t in study.history().trials for a in store.attempts(study.id, t.number)}
    assert markets == {"spot"}
    amends = store.audit_log(action="policy.amend")
    assert amends and all(a.detail["request"]["market"] == "on-demand" and a.detail["amended"]["market"] == "spot"
                          for a in amends)
    allows = store.audit_log(action="policy.allow")
    assert len(amends) + len(allows) == status.launched
    by_market = json.loads(CliRunner().invoke(main, ["spend", "--by", "market", "--db", store.url, "--window", "month",
                                                    "--format", "json"]).output)
    assert [(r["market"], r["attempts"]) for r in by_market] == [("spot", status.launched)]
    by_team = json.loads(CliRunner().invoke(main, ["spend", "--by", "team", "--db", store.url,
                                                  "--format", "json"]).output)
    assert by_team[0]["team"] == "vision" and by_team[0]["spent_micros"] == store.balance(f"study:{study.id}")[1]
    assert study_verdicts(store, study.id) == [{"policy": "spot-only", "allow": len(allows), "amend": len(amends),
                                                "deny": 0, "last_denial": None}]


def test_an_amend_before_the_first_launch_moves_a_searched_placement_in_the_params(sqlite_store: Store) -> None:
    # The run said "best: trial 22 ... instance_type=g4dn.xlarge" and the report's Pareto front listed g4dn
    # on-demand rows while every attempt ran on t3.large / m5.large spot: a policy had amended each launch.
    store = sqlite_store
    store.apply_policies([parse_policy({"name": "no-gpu", "rules": {"denied_instance_types": ["g4dn.*"],
                                                                    "allowed_markets": ["spot"], "amend": True}})])
    resources = {**SWEEP["resources"], "instance_type": {"type": "categorical", "choices": ["g4dn.xlarge", "m5.large"]},
                 "market": {"type": "categorical", "choices": ["on-demand", "spot"]}}
    study, status, _ = run(store, SWEEP, resources=resources, budget={"usd": 0.5, "trials": 8})
    trials = study.history().trials
    assert status.launched >= 8 and store.audit_log(action="policy.amend")
    notes = []
    for t in trials:
        first = store.attempts(study.id, t.number)[0]
        assert (t.params["instance_type"], t.params["market"]) == (first.instance_type, first.market) == (
            "m5.large", "spot"), (t.number, t.params)
        notes.append(first.note or "")
    moved = [n for n in notes if "instead of the proposed" in n]
    assert moved and all("by policy 'no-gpu'" in n for n in moved), notes
    pareto = json.loads(CliRunner().invoke(main, ["report", study.name, "--db", store.url, "--format", "json",
                                                  "--section", "pareto"]).output)["pareto"]
    assert pareto and all(r["params"]["instance_type"] == "m5.large" and not r["ran_on"] for r in pareto)
    board = CliRunner().invoke(main, ["leaderboard", study.name, "--db", store.url], env={"COLUMNS": "200"}).output
    assert "g4dn" not in board and "on-demand" not in board, board


def test_thresholds_fire_once_per_window_across_controllers_and_a_restart(store: Store) -> None:
    store.apply_policies([parse_policy(TEAM)])
    logs = []
    for name in ("vision-a", "vision-b", "vision-a"):  # the second vision-a resumes the first
        logs += run(store, SWEEP, name=name, budget={"usd": 0.5, "trials": 12})[2]
    fired = store.fired_alerts("team-daily")
    assert sorted(a.threshold for a in fired) == ["100% of actual", "50% of actual", "80% of actual"]
    assert {a.scope for a in fired} == {WINDOW}
    assert len(store.audit_log(action="policy.alert")) == 3
    assert sum("policy 'team-daily' reached" in line for line in logs) == 3
    # two controllers (separate connections) crossing the same threshold at once: one fires
    other = Store(store.url)
    results: list[bool] = []
    barrier = threading.Barrier(2)

    def fire(s: Store) -> None:
        barrier.wait()
        results.append(s.fire_alert("team-daily", "policy:team-daily:daily:2026-12-01", "50% of actual", {}))

    threads = [threading.Thread(target=fire, args=(s,)) for s in (store, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    assert sorted(results) == [False, True]


def test_window_caps_and_max_instances_in_the_ledger(store: Store) -> None:
    caps = {"policy:t:daily:2026-11-30": 1_000}
    store.reserve("a", ["study:1", "policy:t:daily:2026-11-30"], 600, caps=caps, max_held={"policy:t:": 2})
    with pytest.raises(CapExceeded) as exc:
        store.reserve("b", ["study:2", "policy:t:daily:2026-11-30"], 500, caps=caps)
    assert exc.value.scope == "policy:t:daily:2026-11-30"
    assert store.balance("study:2").reserved_micros == 0  # nothing anywhere
    # a new day is a new scope that starts at zero
    store.reserve("b", ["study:2", "policy:t:daily:2026-12-01"], 500, caps={"policy:t:daily:2026-12-01": 1_000},
                  max_held={"policy:t:": 2})
    with pytest.raises(LaunchLimit):  # two launches held under policy t, whatever their window
        store.reserve("c", ["study:3", "policy:t:daily:2026-12-01"], 1, max_held={"policy:t:": 2})
    store.release("a")
    store.reserve("c", ["study:3", "policy:t:daily:2026-12-01"], 1, max_held={"policy:t:": 2})
    assert store.balance("policy:t:daily:2026-12-01") == (1_000, 0, 501)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_property_window_caps_hold_and_nothing_is_lost_or_counted_twice(store: Store, data: st.DataObject) -> None:
    run_id = f"{next(_RUNS)}"  # each example books in scopes of its own (the store is not wiped between them)
    window = f"policy:p{run_id}:daily:2026-11-30"
    cap = data.draw(st.integers(1, 5_000))
    caps = {window: cap}
    held: dict[str, tuple[str, int]] = {}
    booked = {window: 0}
    for i in range(data.draw(st.integers(1, 25))):
        action = data.draw(st.sampled_from(["reserve", "reserve", "charge", "release"]))
        if action == "reserve":
            study = f"study:{run_id}-{data.draw(st.integers(0, 2))}"
            amount = data.draw(st.integers(1, 2_000))
            try:
                store.reserve(f"{run_id}-{i}", [study, window], amount, caps=caps)
                held[f"{run_id}-{i}"] = (study, amount)
            except CapExceeded:
                pass
        elif held:
            key = data.draw(st.sampled_from(sorted(held)))
            study, amount = held.pop(key)
            if action == "charge":
                cost = data.draw(st.integers(0, amount))
                store.charge(key, cost)
                booked[window] += cost
                booked[study] = booked.get(study, 0) + cost
            else:
                store.release(key)
        bal = store.balance(window)
        assert bal.spent_micros + bal.reserved_micros <= cap
        assert bal.reserved_micros == sum(a for _s, a in held.values())
    assert store.balance(window).spent_micros == booked[window]
    studies = [s for s in booked if s.startswith("study:")]
    assert sum(store.balance(s).spent_micros for s in studies) == booked[window]


def test_stop_running_requeues_what_runs_in_the_window_and_launches_nothing_more(sqlite_store: Store) -> None:
    store = sqlite_store
    policy = {**TEAM, "cap_usd": 1.0, "thresholds": [{"percent": 10, "actions": ["stop-running"]}]}
    store.apply_policies([parse_policy(policy)])
    # Steps of 1 to 30 s (``varied``): trials are mid-run when the threshold fires. Under ``steady`` every
    # trial ended at the moment the first one did: those it "stopped" had run to their ends (now complete).
    study, status, warnings = run(store, SWEEP, budget={"usd": 0.5, "trials": 12},
                                  resources__simulation__workload="simworkloads:varied")
    per_trial = {t.number: store.attempts(study.id, t.number) for t in study.history().trials}
    attempts = [a for tries in per_trial.values() for a in tries]
    stopped = [a for a in attempts if a.exit_reason == "interrupted"]
    assert all(a.exit_code != 0 for a in stopped)  # each really cut short
    assert stopped and any("stopped (re-queued): costtune: policy 'team-daily' reached 10% of actual" in w
                           for w in warnings)
    assert "policy 'team-daily': thresholds: 10% of actual reached" in status.stop_reason
    # once it fired, no attempt of any trial launches again in the window (none relaunched and stopped again)
    assert len(stopped) <= 3 and all(len(tries) <= 1 for tries in per_trial.values())
    again = run(store, SWEEP, name="vision-later", budget={"usd": 0.5, "trials": 4})[1]
    assert again.launched == 0 and "policy 'team-daily': thresholds: 10% of actual reached" in again.stop_reason
    assert {t.state for t in study.history().trials} >= {TrialState.QUEUED}
    spent = store.balance(WINDOW).spent_micros
    assert 50_000 <= spent < 300_000  # it stopped soon after 10% of $1 was committed, far below the cap


def test_a_trial_whose_own_placement_is_denied_fails_and_the_sweep_carries_on(sqlite_store: Store) -> None:
    store = sqlite_store
    store.apply_policies([parse_policy({"name": "cv-rules", "scope": {"tags": {"team": "vision"}},
                                        "rules": {"denied_families": ["g5"]}})])
    types = {"type": "categorical", "choices": ["m5.large", "g5.xlarge", "c5.xlarge"]}
    study, status, warnings = run(store, SWEEP, budget={"usd": 5.0, "trials": 12},
                                  resources={**SWEEP["resources"], "instance_type": types})
    trials = study.history().trials
    assert len(trials) == 12 and not [t for t in trials if t.state == TrialState.QUEUED]
    denied = [t for t in trials if t.params["instance_type"] == "g5.xlarge"]
    why = "policy 'cv-rules': rules.denied_families: family g5 matches 'g5'"
    assert denied and all(t.state == TrialState.FAILED and t.error == f"denied: {why}" for t in denied)
    assert status.denied == len(denied) and status.launched >= 12 - len(denied)
    assert all(t.state == TrialState.COMPLETE for t in trials if t not in denied)
    assert all(not store.attempts(study.id, t.number) for t in denied)  # never launched, nothing spent
    audit = store.audit_log(action="policy.deny")
    assert sorted(a.detail["trial"] for a in audit) == sorted(t.number for t in denied)
    assert all(a.detail["policy"] == "cv-rules" for a in audit)
    assert "budget.trials" in status.stop_reason and status.error is None
    assert any("denied (failed, not launched)" in w for w in warnings)


def test_a_stop_running_threshold_crossed_by_held_money_stops_launching_for_the_window(sqlite_store: Store) -> None:
    """The first reservation alone (held money counts) crosses the threshold: it is released, and
    nothing launches in the window, though spend then falls back below the threshold."""
    store = sqlite_store
    store.apply_policies([parse_policy({**TEAM, "thresholds": [{"percent": 10, "actions": ["stop-running"]}]})])
    study, status, _ = run(store, SWEEP, resources={**SWEEP["resources"], "workers": 1})
    attempts = [a for t in study.history().trials for a in store.attempts(study.id, t.number)]
    assert attempts == [] and status.launched == 0 and store.balance(WINDOW)[1:] == (0, 0)
    assert [a.threshold for a in store.fired_alerts()] == ["10% of actual"]
    assert not store.audit_log(action="policy.allow")
    assert status.stop_reason.startswith("policy 'team-daily': thresholds: 10% of actual reached in the daily")


def test_every_denial_record_names_the_policy_whose_cap_or_rule_decided_it(sqlite_store: Store) -> None:
    store = sqlite_store
    store.apply_policies([
        parse_policy({"name": "a-spot-only", "rules": {"allowed_markets": ["spot"], "amend": True}}),
        parse_policy({"name": "b-total", "window": {"period": "daily"}, "cap_usd": 0.05}),
        parse_policy({"name": "c-few", "rules": {"max_instances": 1}})])
    resources = {**SWEEP["resources"], "market": {"type": "categorical", "choices": ["on-demand", "spot"]}}
    study, _status, warnings = run(store, SWEEP, resources=resources)
    denials = store.audit_log(action="policy.deny")
    limit = "policy 'c-few': rules.max_instances: 1 launch held, at most 1"
    # shown once, then counted (every one is in the audit trail)
    assert len([w for w in warnings if w.endswith(f"not launched: {limit}")]) == 1
    repeats = sum(d.detail["reason"] == limit for d in denials)
    more = "1 more launch" if repeats == 2 else f"{repeats - 1} more launches"
    summary = f"{more} refused: {limit} (every one in `costtune audit --action policy.deny`)"
    assert repeats >= 2 and summary in warnings
    by_rule = {("cap_usd" if "cap_usd" in d.detail["reason"] else "max_instances"): d.detail["policy"]
               for d in denials}
    assert by_rule == {"cap_usd": "b-total", "max_instances": "c-few"}
    assert all(d.detail["reason"].startswith(f"policy {d.detail['policy']!r}: ") for d in denials)
    verdicts = {v["policy"]: v for v in study_verdicts(store, study.id)}
    assert verdicts["b-total"]["deny"] >= 1 and verdicts["c-few"]["deny"] >= 1 and verdicts["a-spot-only"]["deny"] == 0


def test_a_run_every_launch_of_which_a_policy_blocks_says_so(tmp_path: Path) -> None:
    import yaml

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    store = Store(url)
    store.apply_policies([parse_policy({"name": "no-m5", "rules": {"denied_families": ["m5"]}})])
    store.close()
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump(with_changes(SWEEP, budget={"usd": 0.5, "trials": 2})), encoding="utf-8")
    result = CliRunner().invoke(main, ["run", str(sweep), "--db", url, "--quiet"])
    assert result.exit_code == 1, result.output
    assert "a spend policy blocked every launch: policy 'no-m5': rules.denied_families" in result.output
    assert "no trial produced a value" not in result.output and "budget" not in result.output
