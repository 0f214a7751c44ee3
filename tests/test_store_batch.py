"""A batch's held-back reports and savepoints, on SQLite and PostgreSQL.

Inside ``store.batch()`` the controller's reports are queued and written together, and a savepoint
costs nothing until a statement runs in it. What a user relies on stays as without queueing: a
report is there for any read in the same batch, statements keep their order (a closed attempt
keeps what closing booked), a savepoint that fails undoes its own reports and writes and nothing
else, and a batch that fails leaves nothing.
"""

from __future__ import annotations

import pytest

from costtune.history import Mode, TrialState
from costtune.store import Store

OWNER = "testhost:4242:99"
RATE = 3_600_000  # 1000 micro-dollars per billed second


def _running(store: Store, count: int = 2) -> tuple[int, list[tuple[int, int]]]:
    """A study with ``count`` running trials, one open attempt each: (study id, [(trial id, attempt id)])."""
    info = store.create_study("b", metric="loss", mode=Mode.MIN, space={"x": {"type": "int", "low": 0, "high": 9}},
                              sampler={"type": "random"}, queued=[{"x": i} for i in range(count)])
    out = []
    for _ in range(count):
        claimed = store.claim_next(info.id, None, owner=OWNER)
        assert claimed is not None
        attempt = store.start_attempt(claimed.id, 1, idempotency_key=f"k{claimed.id}", provider="simulated",
                                      rate_micros_per_hour=RATE)
        out.append((claimed.id, attempt))
    return info.id, out


def _report(store: Store, trial: int, attempt: int, step: int, loss: float) -> None:
    ms = 1000 * (step + 1)
    store.book_report(trial, attempt, step, {"loss": loss}, merged={"loss": loss}, value=loss, elapsed_s=ms / 1000,
                      trial_cost_micros=ms, attempt_ms=ms, attempt_cost_micros=ms)


class Boom(Exception):
    pass


def test_reports_in_a_batch_are_read_back_in_it_and_after_it_in_order(store: Store) -> None:
    sid, [(t0, a0), (t1, a1)] = _running(store)
    with store.batch():
        _report(store, t0, a0, 0, 0.9)
        _report(store, t1, a1, 0, 0.8)
        _report(store, t0, a0, 1, 0.7)
        assert [r[0] for r in store.reports(sid, 0)] == [0, 1]  # a read in the batch sees what it booked
        _report(store, t0, a0, 2, 0.6)
    assert [(step, metrics["loss"]) for step, metrics, _ in store.reports(sid, 0)] == [(0, 0.9), (1, 0.7), (2, 0.6)]
    trial = store.trial(sid, 0)
    assert (trial.value, trial.last_step, trial.cost_micros) == (0.6, 2, 3000)
    assert store.attempts(sid, 0)[0].billable_ms == 3000
    assert store.trial(sid, 1).value == 0.8


def test_closing_an_attempt_after_a_queued_report_keeps_what_closing_booked(store: Store) -> None:
    sid, [(t0, a0), _] = _running(store)
    with store.batch():
        _report(store, t0, a0, 4, 0.5)  # books 5000 ms on the open attempt
        store.finish_attempt(a0, exit_reason="completed", billable_ms=5300, cost_micros=5300)
        _report(store, t0, a0, 5, 0.4)  # a late report never reopens the closed attempt's books
        store.finish_trial(t0, TrialState.COMPLETE)
    attempt = store.attempts(sid, 0)[0]
    assert (attempt.billable_ms, attempt.cost_micros, attempt.exit_reason) == (5300, 5300, "completed")
    assert [r[0] for r in store.reports(sid, 0)] == [4, 5]


def test_a_failed_savepoint_undoes_its_own_reports_and_writes_only(store: Store) -> None:
    sid, [(t0, a0), (t1, a1)] = _running(store)
    with store.batch():
        _report(store, t0, a0, 0, 0.9)
        with pytest.raises(Boom), store.savepoint():  # only queued reports in it
            _report(store, t0, a0, 1, 0.1)
            raise Boom
        with pytest.raises(Boom), store.savepoint():  # queued reports, then a statement, then more
            _report(store, t1, a1, 0, 0.2)
            store.add_trial_warnings(t1, ["undone"], 1)
            _report(store, t1, a1, 1, 0.3)
            raise Boom
        with store.savepoint():  # one that succeeds keeps everything
            _report(store, t1, a1, 2, 0.4)
            store.add_trial_warnings(t1, ["kept"], 1)
            _report(store, t1, a1, 3, 0.5)
        _report(store, t0, a0, 2, 0.7)
    assert [r[0] for r in store.reports(sid, 0)] == [0, 2]
    assert [r[0] for r in store.reports(sid, 1)] == [2, 3]
    assert store.trial(sid, 0).value == 0.7
    second = store.trial(sid, 1)
    assert (second.value, second.last_step, second.warnings) == (0.5, 3, ("kept",))


def test_nested_savepoints_undo_the_inner_block_only(store: Store) -> None:
    sid, [(t0, a0), _] = _running(store)
    with store.batch(), store.savepoint():
        _report(store, t0, a0, 0, 0.9)
        with pytest.raises(Boom), store.savepoint():
            _report(store, t0, a0, 1, 0.8)
            store.add_trial_warnings(t0, ["inner"], 1)
            raise Boom
        _report(store, t0, a0, 2, 0.7)
    assert [r[0] for r in store.reports(sid, 0)] == [0, 2]
    assert store.trial(sid, 0).warnings == ()


def test_a_failed_batch_leaves_none_of_its_reports(store: Store) -> None:
    sid, [(t0, a0), _] = _running(store)
    with pytest.raises(Boom), store.batch():
        _report(store, t0, a0, 0, 0.9)
        store.add_trial_warnings(t0, ["gone"], 1)
        _report(store, t0, a0, 1, 0.8)
        raise Boom
    assert store.reports(sid, 0) == []
    trial = store.trial(sid, 0)
    assert (trial.value, trial.last_step, trial.warnings) == (None, None, ())
    _report(store, t0, a0, 0, 0.5)  # outside a batch a report is written at once
    assert store.trial(sid, 0).value == 0.5


@pytest.mark.parametrize("metrics", [{"loss": 0.1 + 0.2}, {"val/loss": -0.0}, {"loss": 5e-324}, {"loss": 1e22},
                                     {"acc": 1.0, "loss": 2.5}])
def test_a_report_stores_its_metrics_as_json_dumps_writes_them(store: Store, metrics: dict[str, float]) -> None:
    """The text in report.metrics_json is what other tools reading the store parse, byte for byte."""
    import json

    from sqlalchemy import text

    _sid, [(t0, a0), _] = _running(store)
    with store.batch():
        store.book_report(t0, a0, 0, metrics, merged=metrics, value=None, elapsed_s=1.0, trial_cost_micros=1,
                          attempt_ms=1, attempt_cost_micros=1)
    with store.engine.connect() as conn:
        stored = conn.execute(text("SELECT r.metrics_json, t.metrics_json FROM report r JOIN trial t "
                                   "ON t.id = r.trial_id")).one()
    assert tuple(stored) == (json.dumps(metrics), json.dumps(metrics))
