"""The scheduler on real stores with an injected clock: exactly-once claims, misfires, overlap, resume."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from costtune.schedules.daemon import SchedulerDaemon
from costtune.spec.schedule_settings import ScheduleSettings
from costtune.spec.schedule_timing import make_trigger
from costtune.store import Store

SPACE = {f"x{i}": {"type": "uniform", "low": 0, "high": 1} for i in range(1, 7)}


def sweep(trials: int = 3, sampler: dict[str, Any] | None = None, night: int = 1) -> dict[str, Any]:
    """A tiny simulated sweep: a few trials of a few steps, cents each."""
    return {
        "name": "ignored", "objective": {"metric": "loss", "mode": "min"}, "space": dict(SPACE),
        "sampler": sampler or {"type": "random", "seed": 1}, "budget": {"trials": trials, "usd": 5},
        "resources": {"provider": "simulated", "region": "us-east-1", "instance_type": "m5.large",
                      "market": "on-demand", "workers": 2,
                      "simulation": {"workload": f"costtune.demo.drift:night_{night}", "max_steps": 4,
                                     "startup_seconds": 0}},
    }


def ts(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


def add(store: Store, name: str = "nightly", *, cron: str = "0 2 * * *", tz: str = "America/New_York",
        now: int = ts(2026, 3, 6, 12), raw: dict[str, Any] | None = None, **settings: Any) -> None:
    trigger = make_trigger(cron=cron, every=None, tz=tz, anchor=datetime.fromtimestamp(now, UTC))
    store.add_schedule(name, trigger=trigger, sweep=raw or sweep(), sweep_source=None,
                       settings=ScheduleSettings(**settings), now_s=now)


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> float:
        return float(self.now)


@pytest.fixture
def store(tmp_path: Any) -> Any:
    """SQLite only: the claim rules are the same SQL on both; the PostgreSQL race is tested above them."""
    st = Store(f"sqlite:///{tmp_path / 'store.db'}")
    yield st
    st.close()


def daemon(store: Store, clock: Clock, owner: str) -> SchedulerDaemon:
    return SchedulerDaemon(store, clock=clock, owner=owner, say=lambda _m: None)


def test_each_fire_time_runs_once_across_two_schedulers_and_a_restart(store_url: str) -> None:
    stores = [Store(store_url) for _ in range(3)]
    try:
        add(stores[0])
        clock = Clock(0)
        a, b = daemon(stores[0], clock, "sched-a"), daemon(stores[1], clock, "sched-b")
        expected = [ts(2026, 3, 7, 7), ts(2026, 3, 8, 7), ts(2026, 3, 9, 6)]  # 02:00 EST, 03:00 EDT (gap), 02:00 EDT
        for fire in expected:
            clock.now = fire + 30
            results: list[Any] = []
            threads = [threading.Thread(target=lambda d=d, out=results: out.append(d.run_pending())) for d in (a, b)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            assert sorted(len(r) for r in results) == [0, 1]  # one process ran it, the other backed off
            restarted = daemon(stores[2], clock, "sched-a-restarted")
            assert restarted.run_pending() == []
        info = stores[0].get_schedule("nightly")
        runs = sorted(stores[0].schedule_runs(info.id), key=lambda r: r.fire_s)
        assert [(r.fire_s, r.state) for r in runs] == [(f, "finished") for f in expected]
        assert [r.study_name for r in runs] == ["nightly-20260307-0200", "nightly-20260308-0300",
                                               "nightly-20260309-0200"]
        for r in runs:  # each run is a study of the stored sweep, linked by name
            assert len(stores[0].history(stores[0].get_study(r.study_name).id).trials) == 3
    finally:
        for s in stores:
            s.close()


def test_a_misfire_older_than_the_grace_is_recorded_and_not_run(store: Store) -> None:
    add(store, misfire_grace_s=3600)
    clock = Clock(ts(2026, 3, 7, 7) + 2 * 3600)  # the scheduler was down two hours past 02:00
    assert daemon(store, clock, "late").run_pending() == []
    (run,) = store.schedule_runs(store.get_schedule("nightly").id)
    assert run.state == "missed" and "misfire: 7200s late" in (run.reason or "")
    assert store.list_studies() == []
    assert store.get_schedule("nightly").next_fire_s == ts(2026, 3, 8, 7)  # the next night is untouched


def test_coalescing_runs_the_newest_due_fire_time_once(store: Store) -> None:
    add(store, misfire_grace_s=4 * 86400)
    clock = Clock(ts(2026, 3, 9, 12))  # three nights due at once
    ran = daemon(store, clock, "back").run_pending()
    assert [r.fire_s for r in ran] == [ts(2026, 3, 9, 6)]
    states = {r.fire_s: r.state for r in store.schedule_runs(store.get_schedule("nightly").id)}
    assert states == {ts(2026, 3, 7, 7): "skipped", ts(2026, 3, 8, 7): "skipped", ts(2026, 3, 9, 6): "finished"}


def test_without_coalescing_and_with_queue_every_fire_time_runs_in_turn(store: Store) -> None:
    add(store, misfire_grace_s=4 * 86400, coalesce=False, overlap="queue")
    ran = daemon(store, Clock(ts(2026, 3, 9, 12)), "back").run_pending()
    assert [r.fire_s for r in ran] == [ts(2026, 3, 7, 7), ts(2026, 3, 8, 7), ts(2026, 3, 9, 6)]
    assert all(r.state == "finished" for r in ran)


@pytest.mark.parametrize(("overlap", "after"), [("skip", "skipped"), ("queue", "finished")])
def test_never_two_runs_of_one_schedule_at_once(store: Store, overlap: str, after: str) -> None:
    add(store, overlap=overlap)
    first = store.claim_due("nightly", now_s=ts(2026, 3, 7, 7), owner="elsewhere")
    assert first is not None  # another scheduler runs night 1 (its heartbeat is fresh)
    clock = Clock(ts(2026, 3, 8, 7) + 10)
    store.update_run(first.id, owner="elsewhere", heartbeat_s=clock.now - 5)
    here = daemon(store, clock, "here")
    assert here.run_pending() == []
    night2 = next(r for r in store.schedule_runs(store.get_schedule("nightly").id) if r.id != first.id)
    assert night2.state == ("skipped" if overlap == "skip" else "queued")
    assert "still running" in (night2.reason or "")
    store.update_run(first.id, owner="elsewhere", state="finished", finished_s=clock.now)
    here.run_pending()
    night2 = next(r for r in store.schedule_runs(store.get_schedule("nightly").id) if r.id == night2.id)
    assert night2.state == after


class Interrupting(SchedulerDaemon):
    """Stops the sweep as soon as it starts: what SIGTERM does through the controller's handler."""

    def _attach(self, controller: Any) -> None:
        super()._attach(controller)
        controller.interrupt()


def test_an_interrupted_run_is_resumed_first_by_the_next_scheduler(store: Store) -> None:
    add(store)
    clock = Clock(ts(2026, 3, 7, 7) + 5)
    stopping = Interrupting(store, clock=clock, owner="stopped", say=lambda _m: None)
    with pytest.raises(KeyboardInterrupt):
        stopping.run_pending()
    (run,) = store.schedule_runs(store.get_schedule("nightly").id)
    assert run.state == "interrupted" and run.study_name == "nightly-20260307-0200"
    clock.now = ts(2026, 3, 8, 7) + 5  # the next night is due too: the interrupted one goes first
    ran = daemon(store, clock, "next").run_pending()
    assert [r.study_name for r in ran] == ["nightly-20260307-0200"]
    assert ran[0].state == "finished" and ran[0].reason is None  # the "scheduler was stopped" note is gone
    night2 = next(r for r in store.schedule_runs(store.get_schedule("nightly").id) if r.id != run.id)
    assert night2.state == "skipped"  # overlap: skip, and it was due while night 1 was unfinished


def test_a_crashed_scheduler_run_is_taken_over_after_its_heartbeat_goes_stale(store: Store) -> None:
    add(store)
    crashed = store.claim_due("nightly", now_s=ts(2026, 3, 7, 7), owner="crashed")
    assert crashed is not None
    clock = Clock(ts(2026, 3, 7, 7) + 60)
    assert daemon(store, clock, "other").run_pending() == []  # fresh heartbeat: still its owner's
    clock.now += 600
    ran = daemon(store, clock, "other").run_pending()
    assert [(r.id, r.state, r.owner) for r in ran] == [(crashed.id, "finished", "other")]


def test_a_paused_schedule_does_not_fire_and_resumes_from_the_next_fire_time(store: Store) -> None:
    add(store)
    store.update_schedule("nightly", now_s=ts(2026, 3, 6, 13), paused=True)
    clock = Clock(ts(2026, 3, 7, 7) + 5)
    assert daemon(store, clock, "d").run_pending() == []
    store.update_schedule("nightly", now_s=clock.now, paused=False)
    assert store.get_schedule("nightly").next_fire_s == ts(2026, 3, 8, 7)  # paused nights are not made up
    assert store.schedule_runs(store.get_schedule("nightly").id) == []


def test_a_running_sweep_keeps_its_run_alive(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The heartbeat a run-now or a daemon's sweep writes, so no other scheduler takes it over."""
    import time

    from costtune.schedules import runs

    add(store)
    run = store.claim_manual("nightly", now_s=1000, owner="me")
    monkeypatch.setattr(runs, "HEARTBEAT_S", 0.01)
    clock = Clock(1000)
    with runs._Heartbeat(store, run.id, "me", lambda: int(clock())):
        clock.now = 5000
        deadline = time.monotonic() + 10
        while store.schedule_runs(run.schedule_id)[0].heartbeat_s != 5000 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert store.schedule_runs(run.schedule_id)[0].heartbeat_s == 5000
    assert store.claim_due("nightly", now_s=5100, owner="other") is None  # alive: not taken over
