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


def enqueue_config(store: Store, study: str, config: Mapping[str, Any], *, raise_trials: int | None = None) -> Queued:
    """Check ``config`` against the study's space (names by the sweep file's rule, values typed and
    range-checked; CLI strings are coerced) and queue it.

    Raises ``StudyNotFound`` for an unknown study, ``InputError`` when the study has no declared
    space, ``SpecError`` naming ``config.<param>`` for a bad name or value, and ``SpecError`` naming
    budget.trials when the study is full (see ``Store.enqueue``); nothing is queued then.
    """
    from costtune.names import check_config_names
    from costtune.space import SearchSpace

    info = store.get_study(study)
    if not info.space:
        raise InputError(f"study {study!r} has no declared search space to check the configuration against")
    check_config_names(config, info.space, "config")  # the sweep file's parameter-name rule and message
    typed = SearchSpace.from_dict(info.space).coerce_config(config, path="config")
    limit = (info.spec.get("budget") or {}).get("trials")  # an enqueued trial counts toward budget.trials
    limit = limit if isinstance(limit, int) else None
    number = store.enqueue(info.id, typed, max_trials=limit, raise_trials=raise_trials)
    return Queued(info.name, number, typed, limit)


__all__ = ["Queued", "enqueue_config"]
