"""A running cost booked while the attempt is being closed never rewrites the close's final books.

The heartbeat thread books what a running attempt has cost so far, and a report of an in-process
trial books its spend with it; both figures were worked out before the close. On PostgreSQL (read
committed) such a write can read the attempt as open just before the close commits and then write
after it: the attempt and its trial would keep the older, smaller cost while the ledger was charged
the final one. Here the write is held at exactly that point: it starts while the close's transaction
is open, which commits once the write waits on the close's row locks (or has finished). SQLite
serialises every transaction, so there the write simply runs after the close.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import text

from costtune.history import Mode, TrialState
from costtune.store import Store

OWNER = "testhost:4242:99"
RATE = 3_600_000  # 1000 micro-dollars per billed second
SCOPE = "study:race"


def _waits_on_a_lock(store: Store) -> bool:
    with store.engine.connect() as conn:
        return bool(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'")).scalar_one())


def _until_waiting_or_done(store: Store, late: threading.Thread) -> None:
    for _ in range(3_000):
        late.join(0.01)
        if not late.is_alive() or _waits_on_a_lock(store):
            return
    pytest.fail("the late write neither finished nor waited on the close's row locks")


def _heartbeat(store: Store, trial_id: int, attempt_id: int) -> None:
    store.heartbeat(OWNER, {attempt_id: (1_500, 1_500)})


def _report(store: Store, trial_id: int, attempt_id: int) -> None:
    store.add_report(trial_id, attempt_id, 1, {"loss": 0.5}, objective="loss", spend=(1_500, 1_500, 1_500))


@pytest.mark.parametrize("write", [_heartbeat, _report], ids=["heartbeat", "report"])
def test_a_running_cost_booked_during_the_close_leaves_the_final_cost(
        store_url: str, write: Callable[[Store, int, int], None]) -> None:
    store = Store(store_url)
    try:
        info = store.create_study("race", metric="loss", mode=Mode.MIN, queued=[{"x": 1}],
                                  space={"x": {"type": "int", "low": 0, "high": 9}}, sampler={"type": "random"})
        claimed = store.claim_next(info.id, None, owner=OWNER)
        assert claimed is not None
        attempt = store.start_attempt(claimed.id, 1, idempotency_key="race-1", provider="local",
                                      rate_micros_per_hour=RATE)
        store.reserve("race-1", [SCOPE], 10_000)
        store.heartbeat(OWNER, {attempt: (1_000, 1_000)})
        failures: list[BaseException] = []

        def booked_late() -> None:
            try:
                write(store, claimed.id, attempt)
            except BaseException as exc:  # reported below, in the test's thread
                failures.append(exc)

        late = threading.Thread(target=booked_late)
        with store.batch():  # the close, as an in-process trial's end books it: one transaction
            store.finish_attempt(attempt, exit_reason="completed", billable_ms=2_000, cost_micros=2_000)
            store.charge("race-1", 2_000)
            store.finish_trial(claimed.id, TrialState.COMPLETE)
            late.start()
            if store.engine.dialect.name == "postgresql":
                _until_waiting_or_done(store, late)
        late.join(30)
        assert not late.is_alive() and failures == []
        (closed,) = store.attempts(info.id, 0)
        assert (closed.billable_ms, closed.cost_micros) == (2_000, 2_000)
        assert store.trial(info.id, 0).cost_micros == 2_000
        assert store.spend_micros(info.id) == store.balance(SCOPE).spent_micros == 2_000
        assert store.balance(SCOPE).reserved_micros == 0
    finally:
        store.close()
