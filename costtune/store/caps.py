"""A study's one dollar cap: stored on the study, mirrored in the ledger, changed only on purpose.

The study row holds the cap a user set (``budget.usd`` / ``budget_usd``). The ledger's
``study:ID`` scope enforces it: its cap is the study's cap minus what the study spent outside the
ledger (in-process trials or runs of older versions). Changing the cap is an explicit act that is
recorded in the audit trail; lowering it below what the study has spent and holds is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlmodel import Session

from costtune.errors import CapExceeded, InputError
from costtune.money import format_cap, format_usd
from costtune.store.audit import add_audit, current_actor
from costtune.store.records import lock_study
from costtune.words import plural

CAP_ACTION = "cap.set"


def cap_below_committed(field: str, cap_micros: int | None, name: str, committed_micros: int) -> InputError:
    """The error for a cap (micro-dollars) below what study ``name`` has spent and holds for running trials
    (``committed_micros``): what ``costtune run --change-cap`` and ``costtune plan --change-cap`` refuse with."""
    return InputError(
        f"{field}: {format_cap(cap_micros)} is below what study {name!r} has already spent and holds for "
        f"running trials ({format_usd(committed_micros)}); the lowest cap it can have now is that")


def study_scope(study_id: int) -> str:
    """The ledger scope of a study's own cap."""
    return f"study:{study_id}"


@dataclass(frozen=True)
class CapChange:
    study: str
    old_micros: int | None
    new_micros: int | None
    changed: bool  # False when the cap already had that value (nothing recorded)


class CapBook:
    """Mixed into ``Store``."""

    _tx: Callable[[], AbstractContextManager[Session]]

    if TYPE_CHECKING:  # provided by the other parts of Store
        def set_cap(self, scope: str, cap_micros: int | None, *, not_below_committed: bool = False) -> None: ...

        def unledgered_spend(self, study_id: int) -> int: ...

        def open_reservations(self, scope: str | None = None) -> list[Any]: ...

        def attempt_cost_by_key(self, key: str) -> tuple[int, bool] | None: ...

        def release(self, key: str) -> Any: ...

        def charge(self, key: str, amount_micros: int) -> Any: ...

    def settle_reservations(self, scope: str) -> None:
        """Close the held reservations in ``scope`` whose attempt ended (charged at its booked cost) or
        never started (released): what a dead controller or process left. Held ones of running
        attempts stay."""
        for reservation in self.open_reservations(scope):
            booked = self.attempt_cost_by_key(reservation.key)
            if booked is None:
                self.release(reservation.key)
            elif booked[1]:
                self.charge(reservation.key, booked[0])

    def sync_study_cap(self, study_id: int) -> int | None:
        """Set the ledger's cap of the study from the stored cap; returns the stored cap (micros)."""
        with self._tx() as s:
            cap = lock_study(s, study_id).budget_usd_micros
        outside = self.unledgered_spend(study_id)
        self.set_cap(study_scope(study_id), None if cap is None else max(0, cap - outside))
        return cap

    def change_study_cap(self, study_id: int, cap_micros: int | None, *, reason: str, field: str = "budget.usd",
                         actor: str | None = None) -> CapChange:
        """Make ``cap_micros`` the study's cap (None: no cap) and record who did it and why.

        The ledger's cap changes first, under the scope's lock, so a reservation is admitted under
        the old cap or the new one; a cap below what the study has spent plus what it holds for
        running trials raises ``InputError`` naming ``field`` and changes nothing. Two separate
        transactions, never both locks at once (a running controller takes them in either
        order); if the second fails, the next run sets the ledger back from the study row.
        """
        with self._tx() as s:
            row = lock_study(s, study_id)
            name, old = row.name, row.budget_usd_micros
        if old == cap_micros:
            return CapChange(name, old, cap_micros, changed=False)
        outside = self.unledgered_spend(study_id)
        try:
            if cap_micros is not None and cap_micros < outside:
                raise CapExceeded(study_scope(study_id), cap_micros, 0, 0, 0)
            self.set_cap(study_scope(study_id), None if cap_micros is None else cap_micros - outside,
                         not_below_committed=True)
        except CapExceeded as exc:
            raise cap_below_committed(field, cap_micros, name, exc.spent_micros + exc.reserved_micros + outside) \
                from None
        detail: dict[str, Any] = {"study": name, "field": field, "from_micros": old, "to_micros": cap_micros,
                                  "from": format_cap(old), "to": format_cap(cap_micros), "reason": reason}
        with self._tx() as s:
            lock_study(s, study_id).budget_usd_micros = cap_micros
            add_audit(s, CAP_ACTION, actor=actor or current_actor(), study_id=study_id, detail=detail)
        return CapChange(name, old, cap_micros, changed=True)


TRIALS_ACTION = "trials.set"


def raise_trial_budget(s: Session, row: Any, held: int, new: int, *, reason: str,
                       actor: str | None = None, field: str = "--raise-trials") -> int | None:
    """Make ``new`` the study's stored ``budget.trials`` (in its stored sweep) and record it in the audit
    trail, inside the caller's transaction with the study row locked; the old value.

    Raises ``InputError`` naming ``field`` (the CLI's flag, or an API request's field) when ``new``
    does not raise the stored value or leaves no room for one more trial than the ``held`` ones."""
    import json

    spec = json.loads(row.spec_json or "{}")
    budget = spec.get("budget") if isinstance(spec.get("budget"), dict) else {}
    old = budget.get("trials") if isinstance(budget.get("trials"), int) else None
    if old is None:
        raise InputError(f"{field}: study {row.name!r} has no budget.trials to raise, got {new}")
    if new <= old or new <= held:
        raise InputError(f"{field}: must be more than budget.trials ({old}) and than the "
                         f"{plural(held, 'trial')} study {row.name!r} holds, got {new}")
    spec["budget"] = {**budget, "trials": new}
    row.spec_json = json.dumps(spec)
    add_audit(s, TRIALS_ACTION, actor=actor or current_actor(), study_id=row.id,
              detail={"study": row.name, "field": "budget.trials", "from": old, "to": new, "reason": reason})
    return old
