"""Where a trial really ran, beside the placement its params proposed.

A searched instance type or market is a parameter (``instance_type``, ``market``), but a launch can
land elsewhere: a spend policy's amend on a relaunch (before the first launch the controller writes
the amended placement into the params, ``runner/admission.py``), a cloud fail-over to on-demand. The
params are then history; reports show the real placement (the trial's last attempt, as the
leaderboard's instance and market columns) and mark it with ``MARK``, explained by ``MARK_NOTE``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from costtune.spec.resources import INSTANCE_PARAM, MARKET_PARAM
from costtune.store.reads import TrialCost

MARK = "*"
MARK_NOTE = (f"{MARK} where the trial really ran (its last attempt): its params proposed another placement "
             "(a spend policy amended a relaunch, or the cloud placed it elsewhere); see costtune trials STUDY N")


def moved_to(params: Mapping[str, Any], instance_type: str | None, market: str | None) -> dict[str, Any]:
    """The searched placement params (those of ``instance_type`` and ``market`` in ``params``) that differ
    from where an attempt ran (``instance_type``, ``market``), mapped to the real value."""
    real = {INSTANCE_PARAM: instance_type, MARKET_PARAM: market}
    return {name: value for name, value in real.items()
            if name in params and value is not None and str(params[name]) != value}


def real_placement(params: Mapping[str, Any], cost: TrialCost | None) -> dict[str, Any]:
    """``moved_to`` for the trial's last attempt (``cost``); empty when nothing ran."""
    return {} if cost is None else moved_to(params, cost.instance_type, cost.market)


def marked(params: Mapping[str, Any], moved: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with each placement in ``moved`` replaced by where it ran, marked (``t3.large*``)."""
    return {k: f"{moved[k]}{MARK}" if k in moved else v for k, v in params.items()}


def shown_params(params: Mapping[str, Any], cost: TrialCost | None) -> tuple[dict[str, Any], bool]:
    """``params`` with a searched placement replaced by the real one (its last attempt's), marked; and
    whether any was."""
    moved = real_placement(params, cost)
    return marked(params, moved), bool(moved)
