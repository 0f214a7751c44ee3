"""A failed night never wedges its schedule (issue 11 findings): every trial failing is a failed run
with a summary that says so, an old summary without a best does not crash the next run, a crash while
publishing records the run failed and the daemon serves the other schedules, one version per run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import simworkloads  # noqa: F401  (the workloads the sweeps below name)
from test_scheduler import Clock, add, daemon, sweep, ts

from costtune.schedules import runs
from costtune.schedules.publish import build_summary, register_version
from costtune.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Any:
    st = Store(f"sqlite:///{tmp_path / 's.db'}")
    yield st
    st.close()


def failing_sweep() -> dict[str, Any]:
    raw = sweep(trials=8)
    raw["resources"]["simulation"]["workload"] = "simworkloads:always_fails"
    raw["budget"]["max_failures"] = 3
    return raw


def test_a_night_where_every_trial_failed_is_a_failed_run_and_the_next_night_runs(
        store: Store, tmp_path: Path) -> None:
    add(store, raw=failing_sweep(), artifact_root=str(tmp_path / "m"), summary_dir=str(tmp_path / "s"))
    clock = Clock(ts(2026, 3, 7, 7) + 5)
    (night1,) = daemon(store, clock, "d").run_pending()
    summary = night1.summary or {}
    n = summary["trials"]
    assert night1.state == "failed" and summary["best"] is None and summary["failed_trials"] == n >= 3
    assert f"FAILED: all {n} trials failed" in summary["text"]
    assert f"{n} trials failed in a row" in summary["stop_reason"] and summary["stop_reason"] in summary["text"]
    assert store.model_versions() == []

    store.update_schedule("nightly", now_s=clock.now, sweep=sweep())  # fixed the next day
    clock.now = ts(2026, 3, 8, 7) + 5
    (night2,) = daemon(store, clock, "d").run_pending()
    assert night2.state == "finished" and night2.summary["change"]["verdict"] == "first"  # type: ignore[index]
    assert [v.run_id for v in store.model_versions("nightly")] == [night2.id]


def test_a_previous_summary_without_a_best_does_not_crash_the_summary(store: Store) -> None:
    add(store, raw=sweep(trials=2))
    (run,) = daemon(store, Clock(ts(2026, 3, 7, 7) + 5), "d").run_pending()
    history = store.history(store.get_study(run.study_name).id)
    schedule = store.get_schedule("nightly")
    for previous in ({"best": None, "study": "old"}, {}, {"best": {"value": None}}, {"best": "junk"}):
        summary = build_summary(schedule, run, "x", history, None, previous, None, "", None)
        assert summary["change"]["verdict"] == "first" and summary["best"] is not None


def test_a_crash_while_publishing_fails_that_run_and_the_daemon_serves_the_others(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    add(store, "a-broken", raw=sweep(trials=2))
    add(store, "b-fine", raw=sweep(trials=2))
    real = runs._publish

    def publish(store_: Any, schedule: Any, *args: Any, **kwargs: Any) -> Any:
        if schedule.name == "a-broken":
            raise AttributeError("'NoneType' object has no attribute 'get'")  # the crash users saw
        return real(store_, schedule, *args, **kwargs)

    monkeypatch.setattr(runs, "_publish", publish)
    clock = Clock(ts(2026, 3, 7, 7) + 5)
    ran = daemon(store, clock, "d").run_pending()
    assert [(store_name(store, r), r.state) for r in ran] == [("a-broken", "failed"), ("b-fine", "finished")]
    assert "AttributeError: 'NoneType' object has no attribute 'get'" in (ran[0].reason or "")
    # nothing left running: run-now is accepted at once, and the daemon does not re-take the failed run
    monkeypatch.setattr(runs, "_publish", real)
    clock.now += 600
    assert daemon(store, clock, "d").run_pending() == []
    manual = store.claim_manual("a-broken", now_s=clock.now, owner="me")
    assert manual.state == "claimed"


def test_a_crash_outside_the_run_code_is_recorded_too(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    add(store, "a-broken", raw=sweep(trials=2))
    add(store, "b-fine", raw=sweep(trials=2))

    def explode(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("boom")

    real = runs.execute_run
    import costtune.schedules.daemon as daemon_module

    monkeypatch.setattr(daemon_module, "execute_run",
                        lambda st, s, r, **k: explode() if s.name == "a-broken" else real(st, s, r, **k))
    ran = daemon(store, Clock(ts(2026, 3, 7, 7) + 5), "d").run_pending()
    assert [(r.state, r.reason) for r in ran] == [("failed", "RuntimeError: boom"), ("finished", None)]


def test_a_run_registers_at_most_one_model_version(store: Store, tmp_path: Path) -> None:
    add(store, raw=sweep(trials=2), artifact_root=str(tmp_path / "m"))
    (run,) = daemon(store, Clock(ts(2026, 3, 7, 7) + 5), "d").run_pending()
    history = store.history(store.get_study(run.study_name).id)
    again = register_version(store, store.get_schedule("nightly"), run.id, run.study_name, history)
    assert again is not None and again.version == 1
    assert [(v.version, v.run_id) for v in store.model_versions("nightly")] == [(1, run.id)]


def store_name(store: Store, run: Any) -> str:
    return next(s.name for s in store.list_schedules() if s.id == run.schedule_id)


def test_ids_are_not_reused_after_a_schedule_is_removed(store: Store) -> None:
    add(store, "first", raw=sweep(trials=1))
    (run,) = daemon(store, Clock(ts(2026, 3, 7, 7) + 5), "d").run_pending()
    old_id = store.get_schedule("first").id
    store.remove_schedule("first")
    add(store, "second", raw=sweep(trials=1))
    (run2,) = daemon(store, Clock(ts(2026, 3, 7, 7) + 5), "d").run_pending()
    assert store.get_schedule("second").id != old_id and run2.id != run.id
    (version,) = store.model_versions("first")  # the removed schedule's version still names its own run
    assert (version.schedule_id, version.run_id) == (old_id, run.id)


def test_summary_money_is_plain_decimals_in_json_and_dollars_in_text() -> None:
    """``*_usd`` in a run summary are plain decimals beside ``*_micros`` (as `schedule show --format json`);
    the text shows dollars the CLI's way; an older summary's "$0.53" still reads."""
    from costtune.schedules.publish import _dollars, _plain, summary_text

    summary = {"schedule": "n", "study": "n-1", "trials": 3, "failed_trials": 0, "metric": "loss",
               "spent_usd": "0.569369", "spent_micros": 569369, "cap_usd": "2", "stop_reason": None,
               "best": {"trial": 2, "value": 0.5}, "model_version": None,
               "change": {"verdict": "better", "delta": -0.1, "previous_study": "n-0",
                          "previous_cost_usd": _plain("$0.53")}}
    text = summary_text(summary)
    assert "spent $0.569 of $2.00" in text and "it spent $0.53." in text
    assert _dollars(None) == "?" and _dollars("0.000834") == "$0.000834"


def test_a_night_a_policy_kept_from_starting_says_no_trial_could_start(store: Store, tmp_path: Path) -> None:
    """NU1 item 10: such a run said "FAILED: no trial produced loss (0 of 1 trial failed) ... Stopped:
    policy ...": nothing failed, nothing started."""
    from costtune.policies import parse_policy

    store.apply_policies([parse_policy({"name": "no-m5", "rules": {"denied_families": ["m5"]}})])
    add(store, raw=sweep(trials=2), summary_dir=str(tmp_path / "s"))
    (night,) = daemon(store, Clock(ts(2026, 3, 7, 7) + 5), "d").run_pending()
    summary = night.summary or {}
    assert summary["started_trials"] == 0 and summary["failed_trials"] == 0 and summary["best"] is None
    text = summary["text"]
    assert "did not run: no trial could start: " in text and "policy 'no-m5': rules.denied_families" in text
    assert "FAILED" not in text and "failed" not in text and "no trial produced" not in text
    assert store.model_versions() == []
