"""Queue a configuration for a study by name: the one path of ``costtune enqueue`` and the dashboard."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from costtune.errors import InputError

if TYPE_CHECKING:
    from costtune.store import Store


@dataclass(frozen=True)
class Queued:
    """The queued trial: its number, the typed configuration, the budget.trials before any raise."""

    study: str
    number: int
    params: dict[str, Any]
    limit: int | None


CLI = ("--raise-trials", "costtune enqueue --raise-trials")
"""(how the raise is spelled, the audit trail's reason) of ``costtune enqueue``."""
DASHBOARD = ("raise_trials", "dashboard enqueue (raise_trials)")
"""The same for the dashboard's ``POST /api/v1/studies/NAME/enqueue``."""


def check_raise_trials(value: Any, field: str = CLI[0]) -> int | None:
    """The one rule for a raise of budget.trials, CLI flag and API field alike: None, or an integer
    (never a bool) from 1 to 2**63-1; else ``SpecError`` naming ``field`` and the value."""
    from costtune.limits import INT64_MAX
    from costtune.spec.fields import integer

    return None if value is None else integer(value, field, minimum=1, maximum=INT64_MAX)


def enqueue_config(store: Store, study: str, config: Mapping[str, Any], *, raise_trials: int | None = None,
                   origin: tuple[str, str] = CLI, actor: str | None = None) -> Queued:
    """Check ``config`` against the study's space (names by the sweep file's rule, values typed and
    range-checked; CLI strings are coerced) and queue it.

    ``origin``: ``CLI`` or ``DASHBOARD``, how errors name the raise and what the audit trail says
    it came from; ``actor``: who the audit trail names for a raise (default: this process's user).
    Raises ``StudyNotFound`` for an unknown study, ``InputError`` when the study has no declared
    space, ``SpecError`` naming ``config.<param>`` for a bad name or value or the raise field for a
    bad ``raise_trials``, and ``SpecError`` naming budget.trials when the study is full (see
    ``Store.enqueue``); nothing is queued then.
    """
    from costtune.names import check_config_names
    from costtune.space import SearchSpace

    field, reason = origin
    raise_trials = check_raise_trials(raise_trials, field)

    info = store.get_study(study)
    if not info.space:
        raise InputError(f"study {study!r} has no declared search space to check the configuration against")
    check_config_names(config, info.space, "config")  # the sweep file's parameter-name rule and message
    typed = SearchSpace.from_dict(info.space).coerce_config(config, path="config")
    limit = (info.spec.get("budget") or {}).get("trials")  # an enqueued trial counts toward budget.trials
    limit = limit if isinstance(limit, int) else None
    number = store.enqueue(info.id, typed, max_trials=limit, raise_trials=raise_trials, field=field, reason=reason,
                           actor=actor)
    return Queued(info.name, number, typed, limit)


__all__ = ["CLI", "DASHBOARD", "Queued", "check_raise_trials", "enqueue_config"]
