"""Store.recover_orphans bills a dead controller's open attempts from their resource's facts, with
the billing rule each attempt was launched under; every store backend."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from costtune.providers.local import LocalProvider, facts_path
from sqlalchemy import update
from sqlmodel import Session, col

from costtune.history import Mode, TrialState
from costtune.money import charge_micros
from costtune.runner.settle import attempt_end
from costtune.store import AttemptEnd, Store
from costtune.store.models import AttemptRow, ReportRow, TrialRow
from costtune.store.owner import is_alive
from costtune.store.records import OpenAttempt

RATE = 3_600_000  # 1,000 micro-dollars per billed second
DEAD = "otherhost:1:1"  # another machine whose heartbeats stopped long ago


def _orphans(store: Store, specs: list[dict]) -> tuple[int, list[int]]:
    """A study with one running trial per spec (owned by a dead controller), each with an open attempt."""
    info = store.create_study("s", metric="loss", mode=Mode.MIN, space={}, sampler={"type": "random"},
                              queued=[{"x": i} for i in range(len(specs))])
    started = datetime.now(UTC) - timedelta(minutes=10)
    attempts = []
    for spec in specs:
        claimed = store.claim_next(info.id, None, owner=DEAD)
        assert claimed is not None
        attempt_id = store.start_attempt(claimed.id, 1, idempotency_key=f"k-{claimed.number}",
                                         provider=spec.get("provider", "local"), rate_micros_per_hour=RATE,
                                         granularity_s=spec.get("granularity_s", 1),
                                         minimum_s=spec.get("minimum_s", 0), host=spec.get("host"))
        if "pid" in spec:
            store.set_attempt_pid(attempt_id, spec["pid"])
        if "report_s" in spec:
            store.add_report(claimed.id, attempt_id, 0, {"loss": 1.0}, objective="loss")
        attempts.append((attempt_id, claimed.id))
    for (attempt_id, _), spec in zip(attempts, specs, strict=True):
        if "booked" in spec:
            store.heartbeat(DEAD, {attempt_id: spec["booked"]})
    with Session(store.engine) as s:  # after the heartbeats, which stamp every trial of DEAD with now
        for (attempt_id, trial_id), spec in zip(attempts, specs, strict=True):
            row, trial = s.get(AttemptRow, attempt_id), s.get(TrialRow, trial_id)
            assert row is not None and trial is not None
            row.started_at = started
            trial.heartbeat_at = started + timedelta(seconds=spec.get("heartbeat_s", 4))
            s.add(row)
            s.add(trial)
            if "report_s" in spec:
                s.execute(update(ReportRow).where(col(ReportRow.attempt_id) == attempt_id).values(
                    created_at=started + timedelta(seconds=spec["report_s"])))
        s.commit()
    return info.id, [a for a, _ in attempts]


def test_open_attempts_of_dead_controllers_are_listed_for_their_providers(store: Store) -> None:
    study_id, attempts = _orphans(store, [{}, {"provider": "simulated"}])
    found = store.orphaned_attempts(study_id, is_alive)
    assert sorted((a.attempt_id, a.key, a.provider, a.number) for a in found) == [
        (attempts[0], "k-0", "local", 1), (attempts[1], "k-1", "simulated", 1)]
    assert all(a.started_at.tzinfo is not None for a in found)


def test_recovery_bills_facts_heartbeats_and_simulated_time_with_each_attempts_rule(store: Store) -> None:
    study_id, attempts = _orphans(store, [
        {"minimum_s": 60},  # 0: facts say 10.2 s; AWS-like rule: 60 s minimum
        {},  # 1: facts say 9.6 s (the trial reported only at its end; a heartbeat saw 4 s)
        {"minimum_s": 60, "heartbeat_s": 30},  # 2: no facts: its last heartbeat, with its minimum
        {"booked": (70_000, 70_000)},  # 3: facts say less than was booked: never lowered
        {"provider": "simulated", "booked": (5_000, 5_000)},  # 4: virtual time: what reports booked
    ])
    ended = datetime.now(UTC) - timedelta(minutes=5)
    ends = {attempts[0]: AttemptEnd(10_200, ended, -15, "billed from the record: controller-died"),
            attempts[1]: AttemptEnd(9_600, ended, 0, "billed from the record: exited"),
            attempts[3]: AttemptEnd(50_000, ended, -9, "billed from the record")}
    orphans = store.recover_orphans(study_id, is_alive, ends=ends)
    assert sorted(o.number for o in orphans) == [0, 1, 2, 3, 4]
    trials = store.history(study_id).trials
    assert {t.state for t in trials} == {TrialState.QUEUED}
    booked = [store.attempts(study_id, n)[0] for n in range(5)]
    assert {a.exit_reason for a in booked} == {"interrupted"}
    assert [(a.billable_ms, a.cost_micros) for a in booked] == [
        (10_200, 60_000), (9_600, 10_000), (30_000, 60_000), (70_000, 70_000), (5_000, 5_000)]
    assert booked[0].cost_micros == charge_micros(10_200, RATE, minimum_s=60)
    assert [a.exit_code for a in booked] == [-15, 0, None, -9, None]
    assert booked[0].note == "billed from the record: controller-died"
    assert booked[2].note and "last heartbeat" in booked[2].note
    assert booked[4].note is None
    assert all(a.ended_at is not None for a in booked)
    assert abs((booked[0].ended_at.replace(tzinfo=UTC) - ended).total_seconds()) < 1e-3  # type: ignore[union-attr]
    assert [t.cost_micros for t in trials] == [a.cost_micros for a in booked]
    assert store.recover_orphans(study_id, is_alive, ends=ends) == []  # closed once


def test_recovery_never_books_an_end_before_the_start_nor_nothing_for_a_process_that_ran(store: Store) -> None:
    """A heartbeat from before an attempt started is no evidence of it: the attempt used to be booked
    as ending at that heartbeat, before its own start. Its own report is evidence; with none, a
    process known to have run is billed one granule and one never seen running nothing."""
    study_id, attempts = _orphans(store, [
        {"heartbeat_s": -20},  # 0: no pid, no report: it may never have started
        {"heartbeat_s": -20, "pid": 4242},  # 1: it ran (a pid), no sign of life after its start
        {"heartbeat_s": -20, "report_s": 7.5},  # 2: its own report 7.5 s in
        {"heartbeat_s": 3, "report_s": 7.5},  # 3: the later of heartbeat and report
        {},  # 4: its resource's record says it ended before the attempt row was stamped (clock skew)
        {"provider": "inprocess", "granularity_s": 0, "report_s": 2.3456, "heartbeat_s": -20},  # 5: per millisecond
    ])
    skewed = datetime.now(UTC) - timedelta(minutes=11)
    store.recover_orphans(study_id, is_alive, ends={attempts[4]: AttemptEnd(-50, skewed, 0, "record")})
    booked = [store.attempts(study_id, n)[0] for n in range(6)]
    for a in booked:
        assert a.ended_at is not None and a.ended_at >= a.started_at, a
        assert a.billable_ms >= 0
    assert [(a.billable_ms, a.cost_micros) for a in booked] == [
        (0, 0), (1, 1_000), (7_500, 8_000), (7_500, 8_000), (0, 0), (2_345, 2_345)]
    assert booked[1].note and "first billing granule" in booked[1].note
    assert booked[2].note and "own last report" in booked[2].note


def test_an_attempt_another_host_ran_is_left_open_with_its_money_held(store: Store) -> None:
    """This host cannot see a local process on another host: it must not judge it ended."""
    study_id, attempts = _orphans(store, [{"host": "elsewhere.example"}, {}])
    store.reserve("k-0", [f"study:{study_id}"], 50_000)
    assert [a.attempt_id for a in store.orphaned_attempts(study_id, is_alive)] == [attempts[1]]
    orphans = store.recover_orphans(study_id, is_alive)
    assert [(o.number, o.host, o.left_open) for o in orphans if o.left_open] == [(0, "elsewhere.example", True)]
    left = store.attempts(study_id, 0)[0]
    assert (left.ended_at, left.exit_reason) == (None, None)
    assert [t.state for t in store.history(study_id).trials] == [TrialState.RUNNING, TrialState.QUEUED]
    store.settle_reservations(f"study:{study_id}")
    assert store.balance(f"study:{study_id}").reserved_micros == 50_000


def test_a_supervisor_record_s_how_is_a_sentence_in_the_attempt_note(tmp_path: Path) -> None:
    """An acceptance run: an attempt's note ended with the raw token `controller-died`. The record keeps the
    token (what code matches on); the note says what happened."""
    started = datetime.now(UTC) - timedelta(minutes=1)
    record = {"started_at": started.timestamp(), "ended_at": started.timestamp() + 2.5, "exit_code": -15,
              "how": "controller-died"}
    facts_path(tmp_path, "k-1").write_text(json.dumps(record))
    end = attempt_end(LocalProvider(), OpenAttempt(1, 0, 1, "k-1", "local", str(tmp_path), started))
    assert end is not None and (end.billable_ms, end.exit_code) == (2_500, -15)
    assert end.note == ("billed from the local supervisor's record: held 2.500 s; its controller died, so its "
                        "supervisor stopped its command")
    assert json.loads(facts_path(tmp_path, "k-1").read_text())["how"] == "controller-died"
