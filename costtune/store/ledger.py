"""The money ledger: no launch without a reservation in every scope it counts against.

Before each launch the engine reserves the segment's money in all the scopes that apply (the
sweep, a team, a day, a month). A reservation is admitted only if, for every capped scope,
spent + reserved + amount <= cap, checked and booked in one transaction while holding every
scope's balance row, so two sweeps racing for a team's last dollars cannot both win.

Locking: balance rows are created if missing and locked one by one in sorted scope order, so
transactions touching overlapping scope sets never deadlock (SQLite's BEGIN IMMEDIATE already
serialises every transaction; on PostgreSQL the order matters). Operations on an existing
reservation lock its row first, then the scopes, in the same order everywhere.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, insert, text, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from costtune.errors import CapExceeded, InputError, LaunchLimit, StoreError
from costtune.store.ledger_models import KEY_MAX, SCOPE_MAX, ReservationRow, ScopeBalanceRow, ScopeCapRow
from costtune.store.models import utcnow

HELD, CHARGED, RELEASED = "held", "charged", "released"


@dataclass(frozen=True)
class ReservationInfo:
    """A reservation as the store holds it, detached from any session."""

    id: int
    key: str
    scopes: tuple[str, ...]
    amount_micros: int
    state: str  # held | charged | released
    attempt_id: int | None
    charged_micros: int | None
    created_at: datetime
    closed_at: datetime | None


class Balance(NamedTuple):
    """One scope's books; unpacks as ``cap, spent, reserved``."""

    cap_micros: int | None
    spent_micros: int
    reserved_micros: int


class LedgerBook:
    """Mixed into ``Store``; every method is one transaction."""

    _tx: Callable[[], AbstractContextManager[Session]]

    def set_cap(self, scope: str, cap_micros: int | None, *, not_below_committed: bool = False) -> None:
        """Cap a scope (None removes the cap). A cap of 0 freezes the scope.

        Holds the scope's balance row, so a reservation is checked against the old cap or the new
        one, never half of each. With ``not_below_committed``, a cap below what the scope has
        spent plus what it holds raises ``CapExceeded`` (asked = 0) and changes nothing.
        """
        scope = _scope(scope, "set_cap: scope")
        if cap_micros is not None:
            _amount(cap_micros, "set_cap: cap_micros", allow_zero=True)
        with self._tx() as s:
            reserved, spent = _lock_balances(s, [scope])[scope]
            if not_below_committed and cap_micros is not None and cap_micros < spent + reserved:
                raise CapExceeded(scope, cap_micros, spent, reserved, 0)
            row = s.get(ScopeCapRow, scope)
            if cap_micros is None:
                if row is not None:
                    s.delete(row)
                return
            if row is None:
                s.add(ScopeCapRow(scope=scope, cap_micros=cap_micros))
            else:
                row.cap_micros, row.updated_at = cap_micros, utcnow()
                s.add(row)

    def reserve(
        self, key: str, scopes: Sequence[str], amount_micros: int, *, attempt_id: int | None = None,
        caps: Mapping[str, int | None] | None = None, max_held: Mapping[str, int] | None = None,
    ) -> ReservationInfo:
        """Hold ``amount_micros`` in every scope, or nothing anywhere (raises ``CapExceeded``).

        ``caps``: scope -> cap to set first, in the same transaction (a policy window's scope is new
        each day or month; None leaves a scope's cap as it is). ``max_held``: scope prefix -> how many
        held reservations may count against scopes starting with it, this one included (raises
        ``LaunchLimit``); counted under the scopes' locks, so racing launches cannot both pass.

        Idempotent on ``key``: a retry (say after a lost connection) returns the reservation the
        first call made, whatever state it is in now; reusing a key for other scopes or a larger
        amount is a ``StoreError``.
        """
        key = _key(key, "reserve: key")
        wanted = _scopes(scopes)
        _amount(amount_micros, "reserve: amount_micros")
        try:
            with self._tx() as s:
                balances = _lock_balances(s, wanted)
                existing = _find(s, key)
                if existing is not None:
                    return _same_or_conflict(existing, wanted, amount_micros)
                for scope, cap in sorted((caps or {}).items()):
                    if cap is not None and scope in balances:
                        _amount(cap, f"reserve: caps[{scope!r}]", allow_zero=True)
                        s.execute(_UPSERT_CAP, {"scope": scope, "cap": cap, "now": utcnow()})
                for prefix, limit in sorted((max_held or {}).items()):
                    held = _held_under(s, prefix)
                    if held + 1 > limit:
                        raise LaunchLimit(prefix, limit, held)
                _admit(s, balances, amount_micros)
                _bump(s, wanted, reserved=amount_micros)
                now = utcnow()
                new_id = s.execute(_INSERT_RESERVATION, {
                    "key": key, "scopes_json": json.dumps(wanted), "amount_micros": amount_micros,
                    "attempt_id": attempt_id, "state": HELD, "created_at": now}).scalar_one()
                return ReservationInfo(new_id, key, tuple(wanted), amount_micros, HELD, attempt_id, None, now, None)
        except IntegrityError:
            # PostgreSQL only: a concurrent reserve with this key and disjoint scopes won the insert.
            with self._tx() as s:
                existing = _find(s, key)
            if existing is None:
                raise
            return _same_or_conflict(existing, wanted, amount_micros)

    def charge(self, key: str, amount_micros: int) -> ReservationInfo:
        """Close a reservation with what the launch really cost; a second charge is a no-op.

        The actual amount is booked as spent even above the reservation (and above a cap): money
        already spent is never dropped. Zero is allowed for a launch that billed nothing. A
        released reservation that turns out to have been spent is charged too, for the same reason.
        """
        key = _key(key, "charge: key")
        _amount(amount_micros, "charge: amount_micros", allow_zero=True)
        with self._tx() as s:
            row = _locked(s, key)
            if row.state == CHARGED:
                return row
            held = row.amount_micros if row.state == HELD else 0
            _lock_balances(s, row.scopes)
            _bump(s, row.scopes, reserved=-held, spent=amount_micros)
            now = utcnow()
            s.execute(_CLOSE_RESERVATION, {"r_id": row.id, "r_state": CHARGED, "r_charged": amount_micros,
                                           "r_now": now})
            return dataclasses.replace(row, state=CHARGED, charged_micros=amount_micros, closed_at=now)

    def release(self, key: str) -> ReservationInfo:
        """Give a held reservation's money back (the launch never happened); otherwise a no-op."""
        key = _key(key, "release: key")
        with self._tx() as s:
            row = _locked(s, key)
            if row.state != HELD:
                return row
            _lock_balances(s, row.scopes)
            _bump(s, row.scopes, reserved=-row.amount_micros)
            now = utcnow()
            s.execute(_CLOSE_RESERVATION, {"r_id": row.id, "r_state": RELEASED, "r_charged": None, "r_now": now})
            return dataclasses.replace(row, state=RELEASED, closed_at=now)

    def extend(self, key: str, extra_micros: int) -> ReservationInfo:
        """Grow a held reservation (a promotion to the next rung) under the same cap rule.

        Raises ``CapExceeded`` and leaves the reservation as it was if the extra does not fit.
        Not idempotent: each call adds ``extra_micros``.
        """
        key = _key(key, "extend: key")
        _amount(extra_micros, "extend: extra_micros")
        with self._tx() as s:
            row = _locked(s, key)
            if row.state != HELD:
                raise StoreError(f"extend: reservation {key!r} is {row.state}, only a held one can grow")
            balances = _lock_balances(s, row.scopes)
            _admit(s, balances, extra_micros)
            _bump(s, row.scopes, reserved=extra_micros)
            s.execute(_GROW_RESERVATION, {"r_id": row.id, "r_extra": extra_micros})
            return dataclasses.replace(row, amount_micros=row.amount_micros + extra_micros)

    def balance(self, scope: str) -> Balance:
        """``(cap or None, spent, reserved)`` of one scope, in micro-dollars."""
        scope = _scope(scope, "balance: scope")
        with self._tx() as s:
            cap = s.get(ScopeCapRow, scope)
            bal = s.get(ScopeBalanceRow, scope)
            return Balance(
                cap.cap_micros if cap else None,
                bal.spent_micros if bal else 0,
                bal.reserved_micros if bal else 0,
            )

    def balances(self) -> dict[str, Balance]:
        """Every scope the ledger knows (capped or with money booked): spend queries by scope."""
        with self._tx() as s:
            caps = dict(s.execute(select(_CAP.c.scope, _CAP.c.cap_micros)).all())
            held = {scope: (int(spent), int(reserved)) for scope, reserved, spent in s.execute(
                select(_BAL.c.scope, _BAL.c.reserved_micros, _BAL.c.spent_micros)).all()}
        return {scope: Balance(caps.get(scope), *held.get(scope, (0, 0))) for scope in sorted(set(caps) | set(held))}

    def reservation(self, key: str) -> ReservationInfo | None:
        with self._tx() as s:
            return _find(s, _key(key, "reservation: key"))

    def open_reservations(self, scope: str | None = None) -> list[ReservationInfo]:
        """Held reservations, oldest first; only those counting against ``scope`` if given."""
        with self._tx() as s:
            rows = s.exec(
                select(ReservationRow).where(ReservationRow.state == HELD).order_by(col(ReservationRow.id))
            ).all()
            held = [_info(r) for r in rows]
        return held if scope is None else [r for r in held if scope in r.scopes]


# -- helpers, all inside the caller's transaction ---------------------------------------------------


# The hot path as precompiled Core statements: every launch reserves and every attempt is charged,
# and the ORM's per-statement work would cost more than the SQL. Both backends speak all of these.
_BAL = ScopeBalanceRow.__table__  # type: ignore[attr-defined]
_CAP = ScopeCapRow.__table__  # type: ignore[attr-defined]
_RES = ReservationRow.__table__  # type: ignore[attr-defined]
_ENSURE_BALANCE = text(
    f"INSERT INTO {ScopeBalanceRow.__tablename__} (scope, reserved_micros, spent_micros) "
    "VALUES (:scope, 0, 0) ON CONFLICT (scope) DO NOTHING"
)
_SELECT_BALANCE = select(_BAL.c.scope, _BAL.c.reserved_micros, _BAL.c.spent_micros).where(
    _BAL.c.scope == bindparam("scope"))
_SELECT_BALANCE_LOCKED = _SELECT_BALANCE.with_for_update()
_BUMP_BALANCE = (
    update(_BAL).where(_BAL.c.scope == bindparam("b_scope"))
    .values(reserved_micros=_BAL.c.reserved_micros + bindparam("b_reserved"),
            spent_micros=_BAL.c.spent_micros + bindparam("b_spent"))
)
_SELECT_CAPS = select(_CAP.c.scope, _CAP.c.cap_micros).where(_CAP.c.scope.in_(bindparam("scopes", expanding=True)))
_RES_COLUMNS = (_RES.c.id, _RES.c.key, _RES.c.scopes_json, _RES.c.amount_micros, _RES.c.state, _RES.c.attempt_id,
                _RES.c.charged_micros, _RES.c.created_at, _RES.c.closed_at)
_SELECT_RESERVATION = select(*_RES_COLUMNS).where(_RES.c.key == bindparam("key"))
_SELECT_RESERVATION_LOCKED = _SELECT_RESERVATION.with_for_update()
_INSERT_RESERVATION = insert(_RES).values(
    key=bindparam("key"), scopes_json=bindparam("scopes_json"), amount_micros=bindparam("amount_micros"),
    attempt_id=bindparam("attempt_id"), state=bindparam("state"), created_at=bindparam("created_at"),
).returning(_RES.c.id)
_CLOSE_RESERVATION = update(_RES).where(_RES.c.id == bindparam("r_id")).values(
    state=bindparam("r_state"), charged_micros=bindparam("r_charged"), closed_at=bindparam("r_now"))
_GROW_RESERVATION = update(_RES).where(_RES.c.id == bindparam("r_id")).values(
    amount_micros=_RES.c.amount_micros + bindparam("r_extra"))


def _lock_balances(s: Session, scopes: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Create missing balance rows and lock each, in sorted order (the anti-deadlock rule).

    Returns scope -> (reserved, spent) as locked.
    """
    out = {}
    for scope in sorted(set(scopes)):
        s.execute(_ENSURE_BALANCE, {"scope": scope})
        _scope_name, reserved, spent = s.execute(_SELECT_BALANCE_LOCKED, {"scope": scope}).one()
        out[scope] = (int(reserved), int(spent))
    return out


_UPSERT_CAP = text(
    f"INSERT INTO {ScopeCapRow.__tablename__} (scope, cap_micros, updated_at) VALUES (:scope, :cap, :now) "
    f"ON CONFLICT (scope) DO UPDATE SET cap_micros = excluded.cap_micros, updated_at = excluded.updated_at "
    f"WHERE {ScopeCapRow.__tablename__}.cap_micros <> excluded.cap_micros"
)
_COUNT_HELD = text(
    f"SELECT count(*) FROM {ReservationRow.__tablename__} WHERE state = 'held' "
    "AND scopes_json LIKE :pattern ESCAPE '!'"
)


def _held_under(s: Session, prefix: str) -> int:
    """Held reservations counting against a scope that starts with ``prefix``."""
    escaped = prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return int(s.execute(_COUNT_HELD, {"pattern": f'%"{escaped}%'}).scalar_one())


def _bump(s: Session, scopes: Sequence[str], *, reserved: int = 0, spent: int = 0) -> None:
    for scope in sorted(set(scopes)):
        s.execute(_BUMP_BALANCE, {"b_scope": scope, "b_reserved": reserved, "b_spent": spent})


def _admit(s: Session, balances: dict[str, tuple[int, int]], amount: int) -> None:
    """Raise ``CapExceeded`` for the first capped scope that ``amount`` more would break."""
    caps = dict(s.execute(_SELECT_CAPS, {"scopes": list(balances)}).all())
    for scope, (reserved, spent) in balances.items():
        cap = caps.get(scope)
        if cap is not None and spent + reserved + amount > cap:
            raise CapExceeded(scope, cap, spent, reserved, amount)


def _find(s: Session, key: str) -> ReservationInfo | None:
    row = s.execute(_SELECT_RESERVATION, {"key": key}).first()
    return None if row is None else _info(row)


def _locked(s: Session, key: str) -> ReservationInfo:
    row = s.execute(_SELECT_RESERVATION_LOCKED, {"key": key}).first()
    if row is None:
        raise StoreError(f"reservation {key!r} does not exist")
    return _info(row)


def _same_or_conflict(info: ReservationInfo, scopes: list[str], amount: int) -> ReservationInfo:
    if list(info.scopes) != scopes or info.amount_micros < amount:
        raise StoreError(
            f"reserve: key {info.key!r} already holds a reservation of {info.amount_micros} micro-dollars "
            f"in {list(info.scopes)}; asked for {amount} in {scopes}"
        )
    return info


def _info(row: Any) -> ReservationInfo:
    return ReservationInfo(
        id=row.id,
        key=row.key,
        scopes=tuple(json.loads(row.scopes_json)),
        amount_micros=int(row.amount_micros),
        state=row.state,
        attempt_id=row.attempt_id,
        charged_micros=row.charged_micros,
        created_at=row.created_at,
        closed_at=row.closed_at,
    )


# -- argument checks: money is an int, never a float or a bool --------------------------------------


def _amount(value: Any, name: str, *, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"{name}: must be an int of micro-dollars {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def _scope(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > SCOPE_MAX:
        raise InputError(f"{name}: must be a non-empty string of at most {SCOPE_MAX} characters, got {value!r}")
    return value


def _key(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > KEY_MAX:
        raise InputError(f"{name}: must be a non-empty string of at most {KEY_MAX} characters, got {value!r}")
    return value


def _scopes(values: Any) -> list[str]:
    """The scopes as stored: sorted, without duplicates (a scope counted twice would double-book)."""
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        raise InputError(f"reserve: scopes must be a non-empty list of scope keys, got {values!r}")
    return sorted({_scope(v, f"reserve: scopes[{i}]") for i, v in enumerate(values)})
