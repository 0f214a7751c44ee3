"""The store's contract, on SQLite and PostgreSQL: studies, claiming, books, recovery, concurrency.

Every test runs on both backends through the ``store`` / ``store_url`` fixtures. The concurrency
tests use real worker processes (spawned, each with its own ``Store``) and real threads sharing one
``Store``, because handing out trial numbers and grid points exactly once is what lets a user run
any number of workers on one study.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from proctools import run_spawned
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from costtune.errors import SamplerExhausted, StoreError, StudyNotFound
from costtune.history import History, Mode, TrialState
from costtune.money import charge_micros
from costtune.store import Proposal, Store, StudyInfo
from costtune.store.models import AttemptRow, TrialRow
from costtune.store.owner import controller_id, hostname, is_alive

OWNER = "testhost:4242:99"
RATE = 3_600_000  # micro-dollars per hour: exactly 1000 micro-dollars per billed second
SPACE = {"x": {"type": "int", "low": 0, "high": 99}}


def _study(store: Store, name: str = "s", **kwargs: Any) -> StudyInfo:
    kwargs.setdefault("space", SPACE)
    kwargs.setdefault("sampler", {"type": "grid"})
    return store.create_study(name, metric="loss", mode=Mode.MIN, **kwargs)


def _counter_propose(calls: list[int]) -> Any:
    """A sampler that proposes ``{"x": number}`` and records the trial numbers it was asked for."""

    def propose(history: History, number: int, space: dict[str, Any]) -> Proposal:
        calls.append(number)
        return Proposal({"x": number})

    return propose


def _grid_propose(size: int) -> Any:
    """A grid sampler: the lowest grid index no trial of the study holds yet."""

    def propose(history: History, number: int, space: dict[str, Any]) -> Proposal:
        used = history.used_grid_indices()
        free = next((i for i in range(size) if i not in used), None)
        if free is None:
            raise SamplerExhausted("grid done")
        return Proposal({"x": free}, grid_index=free)

    return propose


def _exhausted(history: History, number: int, space: dict[str, Any]) -> Proposal:
    raise SamplerExhausted("nothing left")


def _start(store: Store, trial_id: int, number: int = 1, rate: int = RATE) -> int:
    return store.start_attempt(
        trial_id, number, idempotency_key=f"{trial_id}-{number}", provider="local", rate_micros_per_hour=rate
    )


# -- studies ---------------------------------------------------------------------------------------


def test_created_study_is_found_got_and_listed_with_its_fields(store: Store) -> None:
    a = store.create_study(
        "alpha",
        metric="loss",
        mode=Mode.MIN,
        space=SPACE,
        sampler={"type": "random", "seed": 3},
        spec={"command": ["python", "train.py"]},
        budget_usd_micros=12_500_000,
    )
    b = store.create_study("beta", metric="acc", mode=Mode.MAX, space={}, sampler={"type": "grid"})

    found = store.find_study("alpha")
    assert found == a
    assert (found.metric, found.mode, found.space) == ("loss", Mode.MIN, SPACE)
    assert found.sampler == {"type": "random", "seed": 3}
    assert found.spec == {"command": ["python", "train.py"]}
    assert found.budget_usd_micros == 12_500_000
    assert store.get_study("beta") == b
    assert b.spec == {} and b.budget_usd_micros is None and b.mode == Mode.MAX
    assert store.find_study("gamma") is None
    assert [s.name for s in store.list_studies()] == ["alpha", "beta"]


def test_study_survives_reopening_the_store(store_url: str) -> None:
    first = Store(store_url)
    info = _study(first, "kept", queued=[{"x": 1}])
    first.close()
    second = Store(store_url)
    try:
        assert second.get_study("kept") == info
        assert [t.params for t in second.history(info.id).trials] == [{"x": 1}]
    finally:
        second.close()


def test_get_unknown_study_raises_study_not_found_naming_it(store: Store) -> None:
    _study(store, "present")
    with pytest.raises(StudyNotFound, match="'absent'") as err:
        store.get_study("absent")
    assert "present" in str(err.value)  # the message lists what the store does hold


def test_study_not_found_names_the_store_but_never_its_password(store_url: str) -> None:
    url = make_url(store_url)
    if url.drivername.startswith("postgres"):
        url = url.set(password="hunter2-secret")  # trust auth: the server ignores it
    store = Store(url.render_as_string(hide_password=False))
    try:
        with pytest.raises(StudyNotFound) as err:
            store.get_study("absent")
    finally:
        store.close()
    message = str(err.value)
    assert "hunter2-secret" not in message
    assert str(url.database) in message  # which database was searched
    assert "no study yet" in message


def test_duplicate_study_name_raises_store_error_and_keeps_the_first(store: Store) -> None:
    first = _study(store, "dup", queued=[{"x": 1}])
    with pytest.raises(StoreError, match="'dup'"):
        _study(store, "dup", queued=[{"x": 2}, {"x": 3}])
    assert store.list_studies() == [first]
    assert [t.params for t in store.history(first.id).trials] == [{"x": 1}]


def test_queued_configs_come_back_as_queued_manual_trials_in_order(store: Store) -> None:
    configs = [{"x": 7}, {"x": 3, "note": "b"}, {"x": 5}]
    info = _study(store, queued=configs)
    trials = store.history(info.id).trials
    assert [t.number for t in trials] == [0, 1, 2]
    assert [t.params for t in trials] == configs
    assert {t.state for t in trials} == {TrialState.QUEUED}
    assert {t.source for t in trials} == {"manual"}


# -- claiming --------------------------------------------------------------------------------------


def test_claim_next_takes_queued_trials_in_number_order_before_proposals(store: Store) -> None:
    info = _study(store, queued=[{"x": 100}, {"x": 101}])
    assert store.enqueue(info.id, {"x": 102}) == 2
    calls: list[int] = []
    propose = _counter_propose(calls)

    claimed = [store.claim_next(info.id, propose, owner=OWNER) for _ in range(5)]
    assert all(c is not None for c in claimed)
    assert [c.number for c in claimed] == [0, 1, 2, 3, 4]  # type: ignore[union-attr]
    assert [c.params for c in claimed] == [  # type: ignore[union-attr]
        {"x": 100}, {"x": 101}, {"x": 102}, {"x": 3}, {"x": 4}
    ]
    assert [c.source for c in claimed] == ["manual"] * 3 + ["sampler"] * 2  # type: ignore[union-attr]
    assert [c.attempt_number for c in claimed] == [1] * 5  # type: ignore[union-attr]
    assert calls == [3, 4]  # the sampler is consulted only once the queue is empty

    trials = store.history(info.id).trials
    assert {t.state for t in trials} == {TrialState.RUNNING}
    assert [t.source for t in trials] == ["manual"] * 3 + ["sampler"] * 2


def test_claim_next_with_no_sampler_runs_the_queue_then_returns_none(store: Store) -> None:
    info = _study(store, queued=[{"x": 1}])
    first = store.claim_next(info.id, None, owner=OWNER)
    assert first is not None and first.params == {"x": 1}
    assert store.claim_next(info.id, None, owner=OWNER) is None


def test_claim_next_records_output_dir_per_trial_number(store: Store) -> None:
    info = _study(store)
    claimed = store.claim_next(
        info.id, _counter_propose([]), owner=OWNER, output_dir=lambda n: f"/out/{n:04d}"
    )
    assert claimed is not None and claimed.output_dir == "/out/0000"
    assert store.trial(info.id, 0).output_dir == "/out/0000"


def test_max_trials_caps_the_study_but_queued_trials_still_run(store: Store) -> None:
    info = _study(store, queued=[{"x": 0}, {"x": 1}, {"x": 2}])
    calls: list[int] = []
    propose = _counter_propose(calls)
    numbers = []
    while (c := store.claim_next(info.id, propose, owner=OWNER, max_trials=2)) is not None:
        numbers.append(c.number)
        assert len(numbers) <= 3
    assert numbers == [0, 1, 2]  # all three queued ran although the cap is two
    assert calls == []  # and the sampler was never asked for a fourth

    other = _study(store, "other", queued=[{"x": 0}])
    numbers = []
    while (c := store.claim_next(other.id, propose, owner=OWNER, max_trials=3)) is not None:
        numbers.append(c.number)
        assert len(numbers) <= 3
    assert numbers == [0, 1, 2]
    assert len(store.history(other.id).trials) == 3


def test_exhausted_sampler_returns_none_and_burns_no_trial_number(store: Store) -> None:
    info = _study(store)
    assert store.claim_next(info.id, _exhausted, owner=OWNER) is None
    assert store.history(info.id).trials == ()
    claimed = store.claim_next(info.id, _counter_propose([]), owner=OWNER)
    assert claimed is not None and claimed.number == 0


def test_trial_numbers_are_contiguous_across_enqueue_claims_and_refusals(store: Store) -> None:
    info = _study(store, queued=[{"x": 0}])
    propose = _grid_propose(3)
    store.claim_next(info.id, propose, owner=OWNER)
    store.enqueue(info.id, {"x": 50})
    while store.claim_next(info.id, propose, owner=OWNER) is not None:
        pass
    store.enqueue(info.id, {"x": 51})
    assert store.claim_next(info.id, _exhausted, owner=OWNER) is not None  # the queued one
    assert store.claim_next(info.id, _exhausted, owner=OWNER) is None
    numbers = [t.number for t in store.history(info.id).trials]
    assert numbers == list(range(len(numbers))) and len(numbers) == 6


def test_duplicate_grid_index_is_rejected_and_leaves_the_study_consistent(store: Store) -> None:
    info = _study(store)

    def always_five(history: History, number: int, space: dict[str, Any]) -> Proposal:
        return Proposal({"x": 5}, grid_index=5)

    assert store.claim_next(info.id, always_five, owner=OWNER) is not None
    with pytest.raises(IntegrityError):
        store.claim_next(info.id, always_five, owner=OWNER)
    trials = store.history(info.id).trials
    assert [(t.number, t.grid_index) for t in trials] == [(0, 5)]
    # the failed claim rolled back whole: the next trial takes number 1, not 2
    nxt = store.claim_next(info.id, _grid_propose(10), owner=OWNER)
    assert nxt is not None and nxt.number == 1 and nxt.params == {"x": 0}


def test_trials_without_grid_index_do_not_collide(store: Store) -> None:
    info = _study(store)
    propose = _counter_propose([])
    for _ in range(3):
        assert store.claim_next(info.id, propose, owner=OWNER) is not None
    assert [t.grid_index for t in store.history(info.id).trials] == [None, None, None]


def test_same_grid_index_is_allowed_in_different_studies(store: Store) -> None:
    a, b = _study(store, "a"), _study(store, "b")
    assert store.claim_next(a.id, _grid_propose(4), owner=OWNER) is not None
    claimed = store.claim_next(b.id, _grid_propose(4), owner=OWNER)
    assert claimed is not None and claimed.params == {"x": 0} and claimed.number == 0


# -- attempts and money ----------------------------------------------------------------------------


def test_finish_attempt_books_time_and_cost_and_a_second_finish_is_a_no_op(store: Store) -> None:
    info = _study(store)
    claimed = store.claim_next(info.id, _counter_propose([]), owner=OWNER)
    assert claimed is not None
    aid = _start(store, claimed.id)
    (open_attempt,) = store.attempts(info.id, 0)
    assert (open_attempt.ended_at, open_attempt.cost_micros) == (None, 0)
    assert open_attempt.rate_micros_per_hour == RATE

    store.finish_attempt(aid, exit_reason="completed", billable_ms=61_500, cost_micros=62_000, exit_code=0)
    store.finish_attempt(aid, exit_reason="failed", billable_ms=999_999, cost_micros=999_999, exit_code=1)

    (done,) = store.attempts(info.id, 0)
    assert (done.exit_reason, done.exit_code) == ("completed", 0)  # the first close holds the books
    assert (done.billable_ms, done.cost_micros) == (61_500, 62_000)
    assert done.ended_at is not None
    assert store.trial(info.id, 0).cost_micros == 62_000
    assert store.spend_micros(info.id) == 62_000


def test_trial_cost_is_the_sum_of_its_attempts(store: Store) -> None:
    info = _study(store, queued=[{"x": 1}])
    claimed = store.claim_next(info.id, None, owner=OWNER)
    assert claimed is not None
    first = _start(store, claimed.id, 1)
    store.finish_attempt(first, exit_reason="interrupted", billable_ms=10_000, cost_micros=1_234)
    second = _start(store, claimed.id, 2, rate=7_200_000)
    store.finish_attempt(second, exit_reason="completed", billable_ms=20_000, cost_micros=40_000)

    attempts = store.attempts(info.id, 0)
    assert [(a.number, a.exit_reason, a.cost_micros) for a in attempts] == [
        (1, "interrupted", 1_234), (2, "completed", 40_000)
    ]
    trial = store.trial(info.id, 0)
    assert trial.cost_micros == 41_234 and trial.attempts == 2


def test_attempt_idempotency_key_is_unique(store: Store) -> None:
    info = _study(store, queued=[{"x": 1}, {"x": 2}])
    a = store.claim_next(info.id, None, owner=OWNER)
    b = store.claim_next(info.id, None, owner=OWNER)
    assert a is not None and b is not None
    store.start_attempt(a.id, 1, idempotency_key="launch-1", provider="local", rate_micros_per_hour=RATE)
    with pytest.raises(IntegrityError):
        store.start_attempt(b.id, 1, idempotency_key="launch-1", provider="local", rate_micros_per_hour=RATE)
    assert store.attempts(info.id, 1) == []


def test_heartbeat_books_running_cost_but_never_reopens_closed_books(store: Store) -> None:
    info = _study(store, queued=[{"x": 1}, {"x": 2}])
    a = store.claim_next(info.id, None, owner=OWNER)
    b = store.claim_next(info.id, None, owner=OWNER)
    assert a is not None and b is not None
    running, closed = _start(store, a.id), _start(store, b.id)
    store.finish_attempt(closed, exit_reason="completed", billable_ms=5_000, cost_micros=5_000)

    store.heartbeat(OWNER, {running: (30_000, 30_000), closed: (90_000, 90_000)})
    (live,) = store.attempts(info.id, 0)
    assert (live.ended_at, live.billable_ms, live.cost_micros) == (None, 30_000, 30_000)
    assert store.trial(info.id, 0).cost_micros == 30_000
    assert store.trial(info.id, 1).cost_micros == 5_000  # a finished attempt keeps its final books
    assert store.spend_micros(info.id) == 35_000

    store.heartbeat(OWNER, {running: (45_000, 45_000)})
    assert store.trial(info.id, 0).cost_micros == 45_000
    assert store.spend_micros(info.id) == 50_000


def test_heartbeat_refreshes_only_the_owners_running_trials(store: Store) -> None:
    info = _study(store, queued=[{"x": 1}, {"x": 2}])
    mine = store.claim_next(info.id, None, owner=OWNER)
    theirs = store.claim_next(info.id, None, owner="elsewhere:1:1")
    assert mine is not None and theirs is not None
    old = datetime.now(UTC) - timedelta(hours=1)
    _set_heartbeat(store, mine.id, old)
    _set_heartbeat(store, theirs.id, old)
    store.heartbeat(OWNER, {})
    assert _heartbeat_of(store, mine.id) > old + timedelta(minutes=59)
    assert _heartbeat_of(store, theirs.id) == old


def test_spend_micros_with_and_without_excluded_attempts(store: Store) -> None:
    info = _study(store, queued=[{"x": 1}, {"x": 2}, {"x": 3}])
    other = _study(store, "other", queued=[{"x": 1}])
    ids = []
    for cost in (1_000, 20_000, 300_000):
        c = store.claim_next(info.id, None, owner=OWNER)
        assert c is not None
        aid = _start(store, c.id)
        store.finish_attempt(aid, exit_reason="completed", billable_ms=cost, cost_micros=cost)
        ids.append(aid)
    c = store.claim_next(other.id, None, owner=OWNER)
    assert c is not None
    store.finish_attempt(_start(store, c.id), exit_reason="completed", billable_ms=1, cost_micros=4_000_000)

    assert store.spend_micros(info.id) == 321_000  # the other study's money is not ours
    assert store.spend_micros(info.id, exclude_attempts={ids[1]}) == 301_000
    assert store.spend_micros(info.id, exclude_attempts=frozenset(ids[:2])) == 300_000
    assert store.spend_micros(info.id, exclude_attempts=set(ids)) == 0
    assert store.spend_micros(other.id) == 4_000_000
    empty = _study(store, "empty")
    assert store.spend_micros(empty.id) == 0


def test_money_columns_hold_more_than_32_bits(store: Store) -> None:
    info = _study(store, queued=[{"x": 1}])
    c = store.claim_next(info.id, None, owner=OWNER)
    assert c is not None
    big = 5_000_000_000_000  # five million dollars in micro-dollars
    aid = store.start_attempt(c.id, 1, idempotency_key="k", provider="aws", rate_micros_per_hour=big)
    store.finish_attempt(aid, exit_reason="completed", billable_ms=big, cost_micros=big)
    assert store.trial(info.id, 0).cost_micros == big
    assert store.spend_micros(info.id) == big
    assert store.attempts(info.id, 0)[0].rate_micros_per_hour == big


# -- reports ---------------------------------------------------------------------------------------


def test_add_report_merges_metrics_and_sets_value_only_from_the_objective(store: Store) -> None:
    info = _study(store, queued=[{"x": 1}])
    c = store.claim_next(info.id, None, owner=OWNER)
    assert c is not None
    aid = _start(store, c.id)

    t = store.add_report(c.id, aid, 0, {"loss": 0.9, "acc": 0.1}, objective="loss", elapsed_s=1.5)
    assert (t.value, t.metrics, t.last_step) == (0.9, {"loss": 0.9, "acc": 0.1}, 0)
    t = store.add_report(c.id, aid, 1, {"acc": 0.4, "lr": 0.01}, objective="loss", elapsed_s=3.0)
    assert t.value == 0.9  # no objective in this report: the value stands
    assert t.metrics == {"loss": 0.9, "acc": 0.4, "lr": 0.01}
    assert t.last_step == 1
    store.add_report(c.id, aid, 2, {"loss": 0.5}, objective="loss", elapsed_s=4.25)

    trial = store.trial(info.id, 0)
    assert (trial.value, trial.last_step) == (0.5, 2)
    assert trial.metrics == {"loss": 0.5, "acc": 0.4, "lr": 0.01}
    assert store.reports(info.id, 0) == [
        (0, {"loss": 0.9, "acc": 0.1}, 1.5),
        (1, {"acc": 0.4, "lr": 0.01}, 3.0),
        (2, {"loss": 0.5}, 4.25),
    ]


def test_reports_are_kept_per_trial_and_per_study(store: Store) -> None:
    a, b = _study(store, "a", queued=[{"x": 1}, {"x": 2}]), _study(store, "b", queued=[{"x": 1}])
    a0, a1, b0 = (store.claim_next(s.id, None, owner=OWNER) for s in (a, a, b))
    assert a0 is not None and a1 is not None and b0 is not None
    store.add_report(a0.id, None, 0, {"loss": 1.0}, objective="loss")
    store.add_report(a1.id, None, 0, {"loss": 2.0}, objective="loss")
    store.add_report(b0.id, None, 5, {"loss": 3.0}, objective="loss")
    assert store.reports(a.id, 0) == [(0, {"loss": 1.0}, 0.0)]
    assert store.reports(a.id, 1) == [(0, {"loss": 2.0}, 0.0)]
    assert store.reports(b.id, 0) == [(5, {"loss": 3.0}, 0.0)]


def test_add_report_to_a_missing_trial_raises_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="12345"):
        store.add_report(12345, None, 0, {"loss": 1.0}, objective="loss")


# -- orphans ---------------------------------------------------------------------------------------


def _set_heartbeat(store: Store, trial_id: int, when: datetime) -> None:
    with Session(store.engine) as s:
        row = s.get(TrialRow, trial_id)
        assert row is not None
        row.heartbeat_at = when
        s.add(row)
        s.commit()


def _heartbeat_of(store: Store, trial_id: int) -> datetime:
    with Session(store.engine) as s:
        row = s.get(TrialRow, trial_id)
        assert row is not None and row.heartbeat_at is not None
        return row.heartbeat_at if row.heartbeat_at.tzinfo else row.heartbeat_at.replace(tzinfo=UTC)


def _set_attempt_start(store: Store, attempt_id: int, when: datetime) -> None:
    with Session(store.engine) as s:
        row = s.get(AttemptRow, attempt_id)
        assert row is not None
        row.started_at = when
        s.add(row)
        s.commit()


def _dead_local_pid() -> int:
    """The pid of a process of ours that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_recover_orphans_requeues_dead_controllers_trials_and_leaves_live_ones(store: Store) -> None:
    info = _study(store, queued=[{"x": i} for i in range(5)])
    now = datetime.now(UTC)
    owners = [
        "otherhost:1:1",  # 0: another machine, silent for ten minutes
        f"{hostname()}:{_dead_local_pid()}:1",  # 1: this machine, its pid is gone
        "otherhost:3:3",  # 2: another machine, silent, had booked a minimum charge
        "otherhost:2:2",  # 3: another machine, heartbeat fresh
        controller_id(),  # 4: this very process
    ]
    claims = [store.claim_next(info.id, None, owner=o) for o in owners]
    assert [c.number for c in claims if c is not None] == [0, 1, 2, 3, 4]
    trial_ids = [c.id for c in claims]  # type: ignore[union-attr]
    attempts = [_start(store, t) for t in trial_ids]

    # last heard from 95.5 s after its attempt began, ten minutes ago
    _set_attempt_start(store, attempts[0], now - timedelta(minutes=10))
    _set_heartbeat(store, trial_ids[0], now - timedelta(minutes=10) + timedelta(seconds=95.5))
    # heartbeat fresh, but a dead pid on this host means dead at once
    _set_attempt_start(store, attempts[1], now - timedelta(seconds=20))
    _set_heartbeat(store, trial_ids[1], now - timedelta(seconds=2))
    # a provider's 60 s minimum was booked by a heartbeat; it held the machine for 10 s only
    store.heartbeat("otherhost:3:3", {attempts[2]: (60_000, 60_000)})
    _set_attempt_start(store, attempts[2], now - timedelta(minutes=5))
    _set_heartbeat(store, trial_ids[2], now - timedelta(minutes=5) + timedelta(seconds=10))

    orphans = store.recover_orphans(info.id, is_alive)

    assert sorted(o.number for o in orphans) == [0, 1, 2]
    history = {t.number: t for t in store.history(info.id).trials}
    assert [history[n].state for n in range(5)] == [TrialState.QUEUED] * 3 + [TrialState.RUNNING] * 2

    booked = {n: store.attempts(info.id, n)[0] for n in range(5)}
    for n in (0, 1, 2):
        assert booked[n].exit_reason == "interrupted" and booked[n].ended_at is not None
    assert (booked[0].billable_ms, booked[0].cost_micros) == (95_500, charge_micros(95_500, RATE))
    assert booked[0].cost_micros == 96_000
    assert (booked[1].billable_ms, booked[1].cost_micros) == (18_000, 18_000)
    assert (booked[2].billable_ms, booked[2].cost_micros) == (60_000, 60_000)  # never lowered
    assert [history[n].cost_micros for n in range(5)] == [96_000, 18_000, 60_000, 0, 0]
    assert store.spend_micros(info.id) == 174_000
    for n in (3, 4):  # live controllers keep their trials and open attempts
        assert booked[n].ended_at is None and booked[n].exit_reason is None

    # a second pass finds nothing new; the re-queued trials are claimed again as second attempts
    assert store.recover_orphans(info.id, is_alive) == []
    me = controller_id()
    again = [store.claim_next(info.id, None, owner=me) for _ in range(3)]
    assert [(c.number, c.attempt_number, c.params) for c in again] == [  # type: ignore[union-attr]
        (0, 2, {"x": 0}), (1, 2, {"x": 1}), (2, 2, {"x": 2})
    ]
    assert store.claim_next(info.id, None, owner=me) is None


def test_recover_orphans_ignores_finished_and_queued_trials_and_other_studies(store: Store) -> None:
    info = _study(store, queued=[{"x": 1}, {"x": 2}])
    other = _study(store, "other", queued=[{"x": 1}])
    done = store.claim_next(info.id, None, owner="otherhost:1:1")
    elsewhere = store.claim_next(other.id, None, owner="otherhost:1:1")
    assert done is not None and elsewhere is not None
    store.finish_trial(done.id, TrialState.COMPLETE)
    _set_heartbeat(store, elsewhere.id, datetime.now(UTC) - timedelta(hours=1))

    assert store.recover_orphans(info.id, is_alive) == []
    states = [t.state for t in store.history(info.id).trials]
    assert states == [TrialState.COMPLETE, TrialState.QUEUED]
    assert store.trial_state(elsewhere.id) == TrialState.RUNNING


# -- define-by-run ---------------------------------------------------------------------------------


def test_add_param_extends_the_space_and_the_trials_params(store: Store) -> None:
    info = _study(store, queued=[{"x": 1}, {"x": 2}])
    a = store.claim_next(info.id, None, owner=OWNER)
    b = store.claim_next(info.id, None, owner=OWNER)
    assert a is not None and b is not None
    lr = {"type": "loguniform", "low": 1e-4, "high": 1e-1}
    store.add_param(info.id, a.id, "lr", 0.01, lr)
    store.add_param(info.id, b.id, "lr", 0.002, lr)  # the same definition again is fine

    assert store.get_study("s").space == {**SPACE, "lr": lr}
    assert store.trial(info.id, 0).params == {"x": 1, "lr": 0.01}
    assert store.trial(info.id, 1).params == {"x": 2, "lr": 0.002}


def test_add_param_redefining_a_parameter_raises_and_changes_nothing(store: Store) -> None:
    info = _study(store, queued=[{"x": 1}])
    c = store.claim_next(info.id, None, owner=OWNER)
    assert c is not None
    with pytest.raises(StoreError, match=r"space\.x"):
        store.add_param(info.id, c.id, "x", 3.5, {"type": "uniform", "low": 0, "high": 10})
    assert store.get_study("s").space == SPACE
    assert store.trial(info.id, 0).params == {"x": 1}


def test_add_param_to_a_missing_trial_raises_and_leaves_the_space_alone(store: Store) -> None:
    info = _study(store)
    with pytest.raises(StoreError, match="999"):
        store.add_param(info.id, 999, "lr", 0.1, {"type": "uniform", "low": 0, "high": 1})
    assert store.get_study("s").space == SPACE


# -- concurrency -----------------------------------------------------------------------------------

GRID = 100


def _billable_ms(grid_index: int) -> int:
    return 1000 * (grid_index + 1) + 1  # a started second is a billed second


def _expected_cost(grid_index: int) -> int:
    return charge_micros(_billable_ms(grid_index), RATE)  # 1000 * (grid_index + 2)


def _run_trials(store: Store, study_id: int, claims: int, grid: int, owner: str) -> list[int]:
    """What a worker does: claim, run one attempt with two reports, close the books."""
    propose = _grid_propose(grid)
    numbers = []
    for _ in range(claims):
        c = store.claim_next(study_id, propose, owner=owner)
        if c is None:
            break
        x = c.params["x"]
        aid = store.start_attempt(
            c.id, c.attempt_number, idempotency_key=f"{owner}-{c.id}-{c.attempt_number}",
            provider="local", rate_micros_per_hour=RATE,
        )
        store.add_report(c.id, aid, 0, {"loss": x + 0.5, "acc": 0.1}, objective="loss", elapsed_s=0.1)
        store.add_report(c.id, aid, 1, {"loss": float(x)}, objective="loss", elapsed_s=0.2)
        store.finish_attempt(
            aid, exit_reason="completed", billable_ms=_billable_ms(x),
            cost_micros=_expected_cost(x), exit_code=0
        )
        store.finish_trial(c.id, TrialState.COMPLETE)
        numbers.append(c.number)
    return numbers


def _process_worker(url: str, study_id: int, claims: int, barrier: Any, results: Any) -> None:
    """Runs in a spawned process with its own Store; reports its trial numbers or its traceback."""
    try:
        store = Store(url)
        try:
            barrier.wait(timeout=120)  # start claiming together, so the claims really contend
            results.put(("ok", _run_trials(store, study_id, claims, GRID, controller_id())))
        finally:
            store.close()
    except BaseException:
        barrier.abort()  # don't leave the other workers waiting for this one
        results.put(("error", traceback.format_exc()))


def _open_and_create_worker(url: str, barrier: Any, results: Any) -> None:
    """Opens a fresh store and creates the same study as every other worker, all at once."""
    try:
        barrier.wait(timeout=120)
        store = Store(url)
        try:
            barrier.wait(timeout=120)
            try:
                _study(store, "shared")
                created = True
            except StoreError:
                created = False
            results.put(("ok", (created, store.get_study("shared").id)))
        finally:
            store.close()
    except BaseException:
        barrier.abort()  # don't leave the other workers waiting for this one
        results.put(("error", traceback.format_exc()))


def _assert_grid_done(store: Store, study_id: int, grid: int) -> None:
    trials = store.history(study_id).trials
    assert len(trials) == grid
    assert sorted(t.number for t in trials) == list(range(grid))
    assert sorted(t.grid_index for t in trials) == list(range(grid))  # type: ignore[type-var]
    for t in trials:
        assert t.state == TrialState.COMPLETE, t
        assert t.attempts == 1, t
        assert t.params == {"x": t.grid_index}
        assert t.value == float(t.grid_index)  # type: ignore[arg-type]
        assert t.last_step == 1
        assert t.cost_micros == _expected_cost(t.grid_index)  # type: ignore[arg-type]
        assert [step for step, _, _ in store.reports(study_id, t.number)] == [0, 1]
    expected_total = sum(1000 * (i + 2) for i in range(grid))
    assert sum(t.cost_micros for t in trials) == expected_total
    assert store.spend_micros(study_id) == expected_total
    assert store.claim_next(study_id, _grid_propose(grid), owner=OWNER) is None  # the grid is spent


def _assert_sqlite_intact(url: str) -> None:
    parsed = make_url(url)
    if parsed.drivername != "sqlite":
        return
    db = sqlite3.connect(str(parsed.database))
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        db.close()


def test_worker_processes_share_a_study_without_losing_or_repeating_anything(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # spawned children unpickle _process_worker by importing this module from the repository root
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    workers, claims = 4, 25
    store = Store(store_url)
    try:
        info = _study(store, "parallel")
        outcomes = run_spawned(_process_worker, [(store_url, info.id, claims)] * workers)
        claimed = sorted(n for numbers in outcomes for n in numbers)
        assert claimed == list(range(GRID))  # every claim succeeded, each number went to one worker
        _assert_grid_done(store, info.id, GRID)
    finally:
        store.close()
    _assert_sqlite_intact(store_url)


def test_threads_sharing_one_store_hand_out_every_trial_once(store: Store, store_url: str) -> None:
    threads, claims = 8, 5
    grid = threads * claims
    info = _study(store, "threads")
    barrier = threading.Barrier(threads)
    claimed: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        try:
            barrier.wait(timeout=60)
            numbers = _run_trials(store, info.id, claims, grid, f"{hostname()}:thread-{i}:0")
            with lock:
                claimed.extend(numbers)
        except BaseException:
            errors.append(traceback.format_exc())

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert not errors, "\n".join(errors)
    assert sorted(claimed) == list(range(grid))
    _assert_grid_done(store, info.id, grid)
    _assert_sqlite_intact(store_url)


def test_workers_opening_a_fresh_store_and_creating_one_study_at_once(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    workers = 6
    outcomes = run_spawned(_open_and_create_worker, [(store_url,)] * workers)
    created = [c for c, _ in outcomes]
    ids = {study_id for _, study_id in outcomes}
    assert created.count(True) == 1  # one worker created it; the others were told it exists
    assert len(ids) == 1  # and all of them work on that one study
    store = Store(store_url)
    try:
        assert [s.name for s in store.list_studies()] == ["shared"]
    finally:
        store.close()
