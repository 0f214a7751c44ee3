"""costtune: cost-aware hyperparameter tuning. Dollars are the budget and a second objective.

The names below load lazily, so a training script that only calls ``costtune.report`` does not
pay for the store, the samplers or numpy's model code at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "report": "costtune.protocol",
    "params": "costtune.protocol",
    "log_artifact": "costtune.artifacts",
    "create_study": "costtune.study",
    "load_study": "costtune.study",
    "Study": "costtune.study",
    "Trial": "costtune.study",
    "Store": "costtune.store",
    "SearchSpace": "costtune.space",
    "TrialState": "costtune.history",
    "FrozenTrial": "costtune.history",
    "StopTrial": "costtune.errors",
    "TrialFailed": "costtune.errors",
    "BudgetExhausted": "costtune.errors",
    "CosttuneError": "costtune.errors",
    "InputError": "costtune.errors",
    "SpecError": "costtune.errors",
    "SamplerExhausted": "costtune.errors",
    "load_sweep": "costtune.spec",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from costtune.artifacts import log_artifact
    from costtune.errors import (
        BudgetExhausted,
        CosttuneError,
        InputError,
        SamplerExhausted,
        SpecError,
        StopTrial,
        TrialFailed,
    )
    from costtune.history import FrozenTrial, TrialState
    from costtune.protocol import params, report
    from costtune.space import SearchSpace
    from costtune.spec import load_sweep
    from costtune.store import Store
    from costtune.study import Study, create_study, load_study
    from costtune.study.trial import Trial


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'costtune' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
