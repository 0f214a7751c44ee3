"""The money ledger's contract, on SQLite and PostgreSQL: exact books, caps that hold under races.

No launch happens without a reservation, so what matters is that the arithmetic is exact to the
micro-dollar, that a multi-scope reservation is all-or-nothing, that retries are idempotent, and
that real worker processes (spawned, each with its own ``Store``) and threads sharing one ``Store``
racing for a team's last dollars can never take it past its cap.
"""

from __future__ import annotations

import re
import threading
import traceback
from pathlib import Path
from typing import Any

import pytest
from proctools import run_spawned

from costtune.errors import CapExceeded, InputError, StoreError
from costtune.history import Mode
from costtune.store import Store

USD = 1_000_000
TEAM = "team:t"


def test_reserve_charge_release_are_exact_to_the_micro_dollar(store: Store) -> None:
    store.set_cap(TEAM, 10 * USD)
    a = store.reserve("a", ["study:1", TEAM], 3_333_333)
    b = store.reserve("b", [TEAM, "study:2"], 1_000_001)
    assert (a.state, a.amount_micros, a.scopes) == ("held", 3_333_333, ("study:1", TEAM))
    assert b.scopes == ("study:2", TEAM)  # stored sorted
    assert store.balance(TEAM) == (10 * USD, 0, 4_333_334)
    assert store.balance("study:1") == (None, 0, 3_333_333)

    charged = store.charge("a", 2_999_999)
    assert (charged.state, charged.charged_micros, charged.amount_micros) == ("charged", 2_999_999, 3_333_333)
    assert charged.closed_at is not None
    assert store.balance(TEAM) == (10 * USD, 2_999_999, 1_000_001)
    assert store.balance("study:1") == (None, 2_999_999, 0)

    released = store.release("b")
    assert released.state == "released" and released.charged_micros is None
    assert store.balance(TEAM) == (10 * USD, 2_999_999, 0)
    assert store.balance("study:2") == (None, 0, 0)
    assert store.balance("never:seen") == (None, 0, 0)
    # the freed money is usable again, up to the cap exactly
    store.reserve("c", [TEAM], 10 * USD - 2_999_999)
    assert store.balance(TEAM) == (10 * USD, 2_999_999, 10 * USD - 2_999_999)
    with pytest.raises(CapExceeded):
        store.reserve("d", [TEAM], 1)


def test_cap_exceeded_names_scope_cap_spent_reserved_and_ask(store: Store) -> None:
    store.set_cap(TEAM, 5 * USD)
    store.reserve("r1", [TEAM], 2 * USD)
    store.charge("r1", 2 * USD)
    store.reserve("r2", [TEAM], 1 * USD)
    with pytest.raises(CapExceeded) as err:
        store.reserve("r3", [TEAM], 2_500_000)
    e = err.value
    assert (e.scope, e.cap_micros, e.spent_micros, e.reserved_micros, e.asked_micros) == (
        TEAM, 5 * USD, 2 * USD, 1 * USD, 2_500_000,
    )
    for part in (TEAM, "$5", "$2", "$1", "$2.5"):
        assert part in str(e)
    assert store.reservation("r3") is None


def test_multi_scope_reserve_is_all_or_nothing(store: Store) -> None:
    store.set_cap("study:1", 10 * USD)
    store.set_cap(TEAM, 2 * USD)
    store.reserve("first", ["study:1", TEAM, "day:2026-11-27"], 1 * USD)
    with pytest.raises(CapExceeded) as err:
        store.reserve("second", ["day:2026-11-27", "study:1", TEAM], 1_000_001)
    assert err.value.scope == TEAM
    for scope, reserved in (("study:1", USD), (TEAM, USD), ("day:2026-11-27", USD)):
        assert store.balance(scope).reserved_micros == reserved  # the refused one left nothing anywhere
    assert [r.key for r in store.open_reservations()] == ["first"]
    assert store.reservation("second") is None


def test_caps_change_and_disappear(store: Store) -> None:
    store.set_cap(TEAM, 0)  # a frozen scope admits nothing
    with pytest.raises(CapExceeded):
        store.reserve("x", [TEAM], 1)
    store.set_cap(TEAM, 3 * USD)
    store.set_cap(TEAM, 4 * USD)
    assert store.balance(TEAM).cap_micros == 4 * USD
    store.set_cap(TEAM, None)
    assert store.balance(TEAM) == (None, 0, 0)
    store.reserve("x", [TEAM], 100 * USD)  # no cap, no limit
    store.set_cap(TEAM, None)  # removing an absent cap is fine
    assert store.balance(TEAM) == (None, 0, 100 * USD)


def test_reserve_charge_release_are_idempotent(store: Store) -> None:
    store.set_cap(TEAM, 5 * USD)
    first = store.reserve("k", ["study:1", TEAM], 2 * USD)
    again = store.reserve("k", [TEAM, "study:1"], 2 * USD)  # a retry after, say, a lost connection
    assert again == first
    assert store.balance(TEAM).reserved_micros == 2 * USD

    store.charge("k", 1_500_000)
    assert store.charge("k", 9 * USD).charged_micros == 1_500_000  # the first charge holds the books
    assert store.release("k").state == "charged"  # too late to release a charged one
    assert store.reserve("k", ["study:1", TEAM], 2 * USD).state == "charged"
    assert store.balance(TEAM) == (5 * USD, 1_500_000, 0)

    store.reserve("j", [TEAM], USD)
    store.release("j")
    store.release("j")
    assert store.balance(TEAM) == (5 * USD, 1_500_000, 0)


def test_reusing_a_key_for_another_reservation_is_refused(store: Store) -> None:
    store.reserve("k", ["study:1"], USD)
    with pytest.raises(StoreError, match="'k'"):
        store.reserve("k", ["study:2"], USD)
    with pytest.raises(StoreError, match="'k'"):
        store.reserve("k", ["study:1"], 2 * USD)
    assert store.balance("study:2") == (None, 0, 0)
    assert store.balance("study:1") == (None, 0, USD)


def test_extend_grows_a_held_reservation_under_the_cap(store: Store) -> None:
    store.set_cap(TEAM, 5 * USD)
    store.reserve("other", [TEAM], USD)
    store.reserve("rung", ["study:1", TEAM], USD)
    grown = store.extend("rung", 2 * USD)
    assert grown.amount_micros == 3 * USD
    assert store.balance(TEAM).reserved_micros == 4 * USD
    with pytest.raises(CapExceeded) as err:
        store.extend("rung", 1_000_001)
    assert err.value.asked_micros == 1_000_001
    assert store.reservation("rung").amount_micros == 3 * USD  # type: ignore[union-attr]
    assert store.balance("study:1").reserved_micros == 3 * USD
    store.extend("rung", USD)  # exactly to the cap
    assert store.balance(TEAM) == (5 * USD, 0, 5 * USD)
    store.charge("rung", 4 * USD)
    assert store.balance(TEAM) == (5 * USD, 4 * USD, USD)
    with pytest.raises(StoreError, match="charged"):
        store.extend("rung", 1)


def test_charge_above_the_reservation_books_the_real_amount(store: Store) -> None:
    store.set_cap(TEAM, 2 * USD)
    store.reserve("r", ["study:1", TEAM], 2 * USD)
    store.charge("r", 2_750_000)  # the instance ran over; the money is spent all the same
    assert store.balance(TEAM) == (2 * USD, 2_750_000, 0)
    assert store.balance("study:1") == (None, 2_750_000, 0)
    with pytest.raises(CapExceeded) as err:
        store.reserve("next", [TEAM], 1)
    assert err.value.spent_micros == 2_750_000


def test_charging_a_released_reservation_still_books_the_money(store: Store) -> None:
    store.reserve("r", [TEAM], USD)
    store.release("r")
    store.charge("r", 400_000)  # it did run after all: never drop money
    assert store.balance(TEAM) == (None, 400_000, 0)
    store.reserve("z", [TEAM], USD)
    assert store.charge("z", 0).charged_micros == 0  # a launch that billed nothing
    assert store.balance(TEAM) == (None, 400_000, 0)


def test_open_reservations_by_scope_and_attempt_link(store: Store) -> None:
    study = store.create_study("s", metric="loss", mode=Mode.MIN, space={}, sampler={"type": "grid"})
    trial = store.enqueue(study.id, {})
    trial_id = store.claim_next(study.id, None, owner="h:1:0").id  # type: ignore[union-attr]
    assert trial == 0
    attempt_id = store.start_attempt(trial_id, 1, idempotency_key="t-1", provider="local", rate_micros_per_hour=1)
    a = store.reserve("a", ["study:1", TEAM], USD, attempt_id=attempt_id)
    store.reserve("b", ["study:2", TEAM], USD)
    store.reserve("c", ["study:2"], USD)
    store.release("c")
    assert a.attempt_id == attempt_id
    assert [r.key for r in store.open_reservations()] == ["a", "b"]
    assert [r.key for r in store.open_reservations("study:2")] == ["b"]
    assert [r.key for r in store.open_reservations(TEAM)] == ["a", "b"]
    assert store.open_reservations("team") == []  # scopes match whole keys, not prefixes


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda s: s.reserve("k", [TEAM], 0), "amount_micros"),
        (lambda s: s.reserve("k", [TEAM], 1.5), "amount_micros"),
        (lambda s: s.reserve("k", [TEAM], True), "amount_micros"),
        (lambda s: s.reserve("k", [], 1), "scopes"),
        (lambda s: s.reserve("k", TEAM, 1), "scopes"),
        (lambda s: s.reserve("k", [TEAM, ""], 1), "scopes[1]"),
        (lambda s: s.reserve("", [TEAM], 1), "key"),
        (lambda s: s.extend("k", -1), "extra_micros"),
        (lambda s: s.charge("k", -1), "amount_micros"),
        (lambda s: s.set_cap(TEAM, -1), "cap_micros"),
        (lambda s: s.set_cap(TEAM, 2.0), "cap_micros"),
    ],
)
def test_bad_arguments_raise_input_error_naming_them(store: Store, call: Any, name: str) -> None:
    with pytest.raises(InputError, match=re.escape(name)):
        call(store)
    assert store.balance(TEAM) == (None, 0, 0)


def test_unknown_reservation_is_a_store_error(store: Store) -> None:
    for call in (lambda: store.charge("nope", 1), lambda: store.release("nope"), lambda: store.extend("nope", 1)):
        with pytest.raises(StoreError, match="'nope'"):
            call()


# -- concurrency -----------------------------------------------------------------------------------

WORKERS, TRIES, CAP = 6, 10, 25 * USD
STUDY0_CAP = 3 * USD  # one worker's own sweep is capped too, so two capped scopes race at once


def _reserve_dollars(store: Store, worker: int, tries: int) -> tuple[int, int]:
    won = lost = 0
    for i in range(tries):
        try:
            store.reserve(f"w{worker}-{i}", [f"study:{worker}", TEAM], USD)
            won += 1
        except CapExceeded:
            lost += 1
    return won, lost


def _reserve_worker(url: str, worker: int, barrier: Any, results: Any) -> None:
    """Runs in a spawned process with its own Store; reports (worker, won, lost) or its traceback."""
    try:
        store = Store(url)
        try:
            barrier.wait(timeout=120)  # start together, so the reservations really contend
            results.put(("ok", (worker, *_reserve_dollars(store, worker, TRIES))))
        finally:
            store.close()
    except BaseException:
        barrier.abort()
        results.put(("error", traceback.format_exc()))


def _assert_cap_held(store: Store, won: dict[int, int]) -> None:
    assert sum(won.values()) == 25  # exactly the cap's worth, not one dollar more or less
    assert store.balance(TEAM) == (CAP, 0, CAP)
    assert won[0] <= 3 and store.balance("study:0") == (STUDY0_CAP, 0, won[0] * USD)
    for worker, n in won.items():
        assert store.balance(f"study:{worker}").reserved_micros == n * USD
    held = store.open_reservations(TEAM)
    assert len(held) == 25 and sum(r.amount_micros for r in held) == CAP


def test_processes_racing_for_a_team_cap_win_exactly_its_worth(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # spawned children unpickle _reserve_worker by importing this module from the repository root
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    store = Store(store_url)
    try:
        store.set_cap(TEAM, CAP)
        store.set_cap("study:0", STUDY0_CAP)
        outcomes = run_spawned(_reserve_worker, [(store_url, w) for w in range(WORKERS)])
        assert all(won + lost == TRIES for _, won, lost in outcomes)
        _assert_cap_held(store, {w: won for w, won, _ in outcomes})
    finally:
        store.close()


def test_threads_sharing_one_store_never_pass_the_cap(store: Store) -> None:
    store.set_cap(TEAM, CAP)
    store.set_cap("study:0", STUDY0_CAP)
    barrier = threading.Barrier(WORKERS + 1)
    won: dict[int, int] = {}
    errors: list[str] = []
    done = threading.Event()
    seen: list[int] = []

    def work(worker: int) -> None:
        try:
            barrier.wait(timeout=60)
            won[worker] = _reserve_dollars(store, worker, TRIES)[0]
        except BaseException:
            errors.append(traceback.format_exc())

    def watch() -> None:
        """Reads the team's books while the race runs: they must never show more than the cap."""
        try:
            barrier.wait(timeout=60)
            while not done.is_set():
                _cap, spent, reserved = store.balance(TEAM)
                seen.append(spent + reserved)
        except BaseException:
            errors.append(traceback.format_exc())

    pool = [threading.Thread(target=work, args=(w,)) for w in range(WORKERS)]
    watcher = threading.Thread(target=watch)
    for t in [*pool, watcher]:
        t.start()
    for t in pool:
        t.join(timeout=120)
    done.set()
    watcher.join(timeout=60)
    assert not errors, "\n".join(errors)
    assert seen and max(seen) <= CAP
    _assert_cap_held(store, won)
