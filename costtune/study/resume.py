"""The one rule for continuing a study: what must match the stored study, and what may change.

Running a sweep file whose study exists and ``create_study(..., load_if_exists=True)`` both
continue the stored study, and both check it with :func:`check_unchanged`. Fixed for a study's
life, because its stored trials were judged and proposed by them: ``objective.metric``,
``objective.mode``, the ``space``, the sampler's type (and a grid's ``points``) and the scheduler
(its type and dollar rungs: ``min_usd``, ``max_usd``, ``eta``; curve's ``min_points``, ``confidence``,
``ratio`` and ``min_usd``; bohb's ``min_points``). Everything else may change between
runs: ``budget.trials``, the command, env, workers and resources, a sampler's other settings; the
dollar cap only as an explicit, recorded act (``--change-cap`` / ``change_cap=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from costtune.errors import InputError, SpecError
from costtune.schedulers import scheduler_config
from costtune.space import SearchSpace
from costtune.store.records import StudyInfo

# what a scheduler judged the study's trials by: its type, dollar rungs, and curve's (and bohb's) settings; eta
# before the rungs, as the rungs costtune chooses from budget.usd follow from it (a changed eta is named, not them)
_RUNGS = ("type", "eta", "min_usd_micros", "max_usd_micros", "min_points", "confidence", "ratio")


@dataclass(frozen=True)
class Asked:
    """What a caller asks of a study; None means "not given" (keep what is stored)."""

    metric: str | None = None
    mode: str | None = None
    space: SearchSpace | None = None
    sampler: dict[str, Any] | None = None  # a normalised sampler config
    scheduler: dict[str, Any] | None = None  # a normalised scheduler config ({"type": "fifo"} for none)


def stored_scheduler(info: StudyInfo) -> dict[str, Any]:
    """The study's normalised scheduler config (``{"type": "fifo"}`` when none was stored)."""
    raw = info.spec.get("scheduler") if isinstance(info.spec, dict) else None
    try:
        return scheduler_config(raw if isinstance(raw, dict) else {"type": "fifo"})
    except SpecError:  # pragma: no cover - a stored config was validated when it was stored
        return {"type": "fifo"}


def check_unchanged(info: StudyInfo, asked: Asked, *, says: str, fix: str, api: bool = False) -> None:
    """Raise ``InputError`` naming the first field ``asked`` changes, with the stored and asked values.

    ``says`` words the caller ("the file says", "create_study asks for"); ``fix`` is the advice that
    ends the message; ``api`` names fields as ``create_study`` arguments (``metric``, not
    ``objective.metric``; ``scheduler.min_usd`` for a key of its dict, as every dotted path is spelled).
    Fields left None are not checked.
    """
    what = f"study {info.name!r} already exists"

    def refuse(field: str, stored: Any, given: Any) -> None:
        if api:  # create_study(metric=..., sampler={"type": ...})
            field = field.removeprefix("objective.")
        raise InputError(f"{field}: {what} with {field} {stored}, {says} {given}; {fix}")

    if asked.metric is not None and asked.metric != info.metric:
        refuse("objective.metric", info.metric, asked.metric)
    if asked.mode is not None and str(asked.mode) != str(info.mode):
        refuse("objective.mode", str(info.mode), str(asked.mode))
    if asked.space is not None and info.space and SearchSpace.from_dict(info.space) != asked.space:
        stored = SearchSpace.from_dict(info.space)
        changed = sorted(set(stored.names) ^ set(asked.space.names)) or [
            n for n in asked.space.names if stored[n] != asked.space[n]]
        raise InputError(f"space: {what} with a different search space (changed: {', '.join(changed)}); {fix}")
    if asked.sampler is not None:
        if info.sampler.get("type") != asked.sampler.get("type"):
            refuse("sampler.type", info.sampler.get("type"), asked.sampler.get("type"))
        if info.sampler.get("points") != asked.sampler.get("points"):
            refuse("sampler.points", info.sampler.get("points"), asked.sampler.get("points"))
    if asked.scheduler is not None:
        stored_cfg = stored_scheduler(info)
        for key in _RUNGS:
            if stored_cfg.get(key) != asked.scheduler.get(key):
                name = key.removesuffix("_micros")
                refuse(f"scheduler.{name}", _shown(stored_cfg.get(name)), _shown(asked.scheduler.get(name)))


def _shown(value: Any) -> Any:
    """A setting as a message names it: ``none`` for one not set."""
    return "none" if value is None else value
