"""What a claim reads of a study's history: the whole of it once, then only trials that changed.

Every claim hands the sampler the study's full history. Reading it whole each time made a claim of a
10,000-trial study parse 10,000 rows; the store now keeps what it read per study and re-reads only
trials whose ``revision`` (bumped by the database on every change of a trial or of its attempts)
moved. These tests count the trial rows the ORM actually loads from a real store, and check that
the history a claim sees is always the one a fresh read gives, whatever changed and however.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from costtune.history import History, Mode, TrialState
from costtune.store import Proposal, Store
from costtune.store.models import TrialRow

RATE = 3_600_000
SPACE = {"x": {"type": "uniform", "low": 0, "high": 1}}


@pytest.fixture
def loads() -> Iterator[list[int]]:
    """How many trial rows the ORM has loaded from the database (each whole row once per load)."""
    counter = [0]

    def count(*_: Any) -> None:
        counter[0] += 1

    event.listen(TrialRow, "load", count)
    yield counter
    event.remove(TrialRow, "load", count)


class Seen:
    """A proposer that keeps the history it was handed."""

    def __init__(self) -> None:
        self.history: History | None = None
        self.calls = 0

    def __call__(self, history: History, number: int, space: dict[str, Any]) -> Proposal:
        self.history = history
        self.calls += 1
        return Proposal({"x": self.calls / 1000})  # a rolled-back proposal differs from its redo


def _claim(store: Store, sid: int, seen: Seen) -> int:
    claimed = store.claim_next(sid, seen, owner="me")
    assert claimed is not None
    return claimed.id


def _same(a: History | None, b: History) -> bool:
    """``a``, what the last claim saw, is ``b``, a fresh read after it, without the trial it added."""
    return a is not None and a.trials == b.trials[:-1] and (a.metric, a.mode, a.budget_micros) == (
        b.metric, b.mode, b.budget_micros)


def test_a_claim_in_a_long_study_reads_only_the_trials_that_changed(store: Store, loads: list[int]) -> None:
    sid = store.create_study("long", metric="loss", mode=Mode.MIN, space=SPACE, sampler={"type": "bayes"}).id
    seen = Seen()
    with store.batch():
        for _ in range(150):
            tid = _claim(store, sid, seen)
            store.finish_trial(tid, TrialState.COMPLETE)
    tid = _claim(store, sid, seen)  # the first claim outside the batch reads what it has not seen
    assert seen.history is not None and len(seen.history.trials) == 150
    before = loads[0]
    store.finish_trial(tid, TrialState.COMPLETE)
    _claim(store, sid, seen)
    assert loads[0] - before <= 2  # the finished trial, not the 150 that did not change
    assert _same(seen.history, store.history(sid)) and len(seen.history.trials) == 151  # type: ignore[union-attr]


def test_a_claim_sees_every_kind_of_change_as_a_fresh_read_does(store: Store) -> None:
    sid = store.create_study("changes", metric="loss", mode=Mode.MIN, space=SPACE, sampler={"type": "bayes"},
                             budget_usd_micros=50_000_000).id
    seen = Seen()
    ids = [_claim(store, sid, seen) for _ in range(4)]
    attempt = store.start_attempt(ids[0], 1, idempotency_key="a-1", provider="local", rate_micros_per_hour=RATE)
    _claim(store, sid, seen)
    assert _same(seen.history, store.history(sid))  # an attempt added: the attempt count moved
    store.add_report(ids[0], attempt, 0, {"loss": 0.5}, objective="loss")
    _claim(store, sid, seen)
    assert _same(seen.history, store.history(sid))
    store.finish_attempt(attempt, exit_reason="done", billable_ms=30_000, cost_micros=30_000)
    store.finish_trial(ids[0], TrialState.COMPLETE)
    store.record_verdict(ids[1], 1_000, 0.7, False)
    store.finish_trial(ids[2], TrialState.FAILED)
    store.finish_trial(ids[3], TrialState.QUEUED)  # put back in the queue: the next claim takes it
    assert _claim(store, sid, seen) == ids[3]
    _claim(store, sid, seen)
    fresh = store.history(sid)
    assert _same(seen.history, fresh)
    assert fresh.trials[0].state == TrialState.COMPLETE and fresh.trials[0].cost_micros == 30_000
    assert fresh.trials[1].verdicts and fresh.trials[2].state == TrialState.FAILED


def test_a_rolled_back_batch_leaves_nothing_behind_in_what_claims_see(store: Store) -> None:
    sid = store.create_study("rollback", metric="loss", mode=Mode.MIN, space=SPACE, sampler={"type": "bayes"}).id
    seen = Seen()
    first = _claim(store, sid, seen)
    with pytest.raises(RuntimeError), store.batch():
        store.finish_trial(first, TrialState.COMPLETE)
        _claim(store, sid, seen)  # reads the finished state inside the batch, and adds trial 1 ...
        assert seen.history is not None and seen.history.trials[0].state == TrialState.COMPLETE
        raise RuntimeError("the tick failed")
    # ... which the rollback undid; the row ids and revisions it used are handed out again
    store.record_verdict(first, 1_000, 0.9, True)
    _claim(store, sid, seen)
    _claim(store, sid, seen)
    fresh = store.history(sid)
    assert _same(seen.history, fresh)
    assert fresh.trials[0].state == TrialState.RUNNING and fresh.trials[0].verdicts


def test_a_deleted_study_s_trials_never_show_up_in_a_new_one(store: Store) -> None:
    seen = Seen()
    old = store.create_study("gone", metric="loss", mode=Mode.MIN, space=SPACE, sampler={"type": "bayes"}).id
    for _ in range(3):
        store.finish_trial(_claim(store, old, seen), TrialState.COMPLETE)
    store.delete_study(old)
    new = store.create_study("new", metric="loss", mode=Mode.MIN, space=SPACE, sampler={"type": "bayes"}).id
    _claim(store, new, seen)
    assert seen.history is not None and seen.history.trials == ()
