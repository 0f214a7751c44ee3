"""Schedulers decide whether a trial runs on.

FIFO lets every trial run to its end. The dollar-rung schedulers (successive halving, Hyperband,
BOHB's Hyperband half, ASHA) judge a trial each time the money it has spent reaches a rung; they are
pure logic that the sweep controller and in-process studies (``costtune.study.books``) drive
(``make_rung_scheduler``; ``replay.py`` rebuilds their state from the store). A custom per-report
``Scheduler`` object can also be given to an in-process study.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Protocol

from costtune.errors import SpecError
from costtune.history import FrozenTrial, History, Mode
from costtune.money import POSITIVE, format_usd_exact, usd_to_micros
from costtune.schedulers.curve import CurveScheduler, curve_config
from costtune.schedulers.hyperband import (
    Bracket,
    Hyperband,
    HyperbandPlan,
    SuccessiveHalving,
    plan_brackets,
    study_plan,
)
from costtune.schedulers.rungs import AshaScheduler, RungDecision, RungScheduler, rung_ladder
from costtune.words import article

__all__ = [
    "RUNG_TYPES",
    "SCHEDULER_TYPES",
    "AshaScheduler",
    "Bracket",
    "CurveScheduler",
    "Decision",
    "FifoScheduler",
    "Hyperband",
    "HyperbandPlan",
    "RungDecision",
    "RungScheduler",
    "Scheduler",
    "SuccessiveHalving",
    "describe_scheduler",
    "make_curve_scheduler",
    "make_rung_scheduler",
    "plan_brackets",
    "rung_ladder",
    "scheduler_config",
    "study_plan",
]

SCHEDULER_TYPES = ("fifo", "sh", "hyperband", "asha", "bohb", "curve")
RUNG_TYPES = ("sh", "hyperband", "asha", "bohb")  # judged at dollar rungs (curve: at each trial's own checkpoints)
_FIELDS = {
    "fifo": ("type",),
    "sh": ("type", "min_usd", "max_usd", "eta"),
    "hyperband": ("type", "min_usd", "max_usd", "eta"),
    "asha": ("type", "min_usd", "max_usd", "eta"),
    "bohb": ("type", "min_usd", "max_usd", "eta", "min_points"),
}
# written by scheduler_config itself (and ``chosen`` by defaults.choose_rungs); accepted back on resume
_DERIVED = ("min_usd_micros", "max_usd_micros", "chosen", "plan_usd_micros")
DEFAULT_ETA = 3


class Decision(StrEnum):
    CONTINUE = "continue"
    STOP = "stop"


class Scheduler(Protocol):
    def on_report(self, trial: FrozenTrial, history: Callable[[], History]) -> Decision:
        """``history`` is a callable so schedulers that need no peers never pay for a read."""
        ...


class FifoScheduler:
    def on_report(self, trial: FrozenTrial, history: Callable[[], History]) -> Decision:
        return Decision.CONTINUE


def _dollars(value: Any, path: str) -> tuple[str, int]:
    """The amount as decimal text (``"0.05"``, kept as given) and in micros; at least one micro-dollar."""
    micros = usd_to_micros(value, path, minimum=POSITIVE)
    try:
        text = f"{Decimal(str(value).strip().lstrip('$')):f}"
    except InvalidOperation:  # pragma: no cover - usd_to_micros already parsed it
        raise SpecError(path, "must be a dollar amount", value) from None
    return text, micros


def scheduler_config(value: Any, *, choose: bool = False) -> dict[str, Any]:
    """Validate a sweep file's ``scheduler`` section and return a normalised, JSON-serialisable dict.

    fifo: ``{"type": "fifo"}``. Rung types: ``type``, ``min_usd``/``max_usd`` (decimal text as given)
    with ``min_usd_micros``/``max_usd_micros``, ``eta`` (default 3); bohb also ``min_points``
    (None = decided later from the space). Its own output validates to itself, so a stored config
    can be re-checked on resume. ``choose``: a sweep file may leave min_usd/max_usd out; they come back
    None, for ``defaults.choose_rungs`` to fill in (else leaving one out is a ``SpecError``).
    curve: ``costtune.schedulers.curve.curve_config``.
    """
    if not isinstance(value, dict):
        raise SpecError("scheduler", "must be a mapping such as {type: asha, min_usd: 0.05, max_usd: 1.35}", value)
    kind = value.get("type", "fifo")
    if kind not in SCHEDULER_TYPES:
        raise SpecError("scheduler.type", f"must be one of {', '.join(SCHEDULER_TYPES)}", kind)
    if kind == "curve":
        return curve_config(value)
    allowed = _FIELDS[kind]
    for key in value:
        if key not in allowed and not (kind != "fifo" and key in _DERIVED):
            raise SpecError(f"scheduler.{key}", f"unknown field for {kind}; allowed: {', '.join(allowed)}")
    if kind == "fifo":
        return {"type": "fifo"}
    for key in ("min_usd", "max_usd"):
        if value.get(key) is None and not choose:
            raise SpecError(f"scheduler.{key}", f"is required for {article(kind)} {kind} scheduler (dollars a trial "
                            "spends)")
    from costtune.spec.fields import integer  # here: costtune.spec imports this module

    eta = integer(value.get("eta", DEFAULT_ETA), "scheduler.eta", minimum=2)
    given = {key: _dollars(value[key], f"scheduler.{key}") for key in ("min_usd", "max_usd")
             if value.get(key) is not None}
    min_text, min_micros = given.get("min_usd", (None, 0))
    max_text, max_micros = given.get("max_usd", (None, 0))
    if len(given) == 2 and max_micros < min_micros * eta:
        raise SpecError(
            "scheduler.max_usd",
            f"must be >= scheduler.min_usd * eta = {Decimal(min_micros * eta).scaleb(-6).normalize():f} "
            "(at least two rungs)",
            value["max_usd"],
        )
    cfg: dict[str, Any] = {"type": kind, "min_usd": min_text, "max_usd": max_text, "eta": eta}
    for key, micros in (("min_usd_micros", min_micros), ("max_usd_micros", max_micros)):
        if key[:-7] in given:
            cfg[key] = micros
        if key in value and value[key] != micros:
            raise SpecError(f"scheduler.{key}", f"does not match scheduler.{key[:-7]} ({micros})", value[key])
    if kind == "bohb":
        min_points = value.get("min_points")
        cfg["min_points"] = None if min_points is None else integer(min_points, "scheduler.min_points", minimum=2)
    if isinstance(value.get("chosen"), str):
        cfg["chosen"] = value["chosen"]
    shaped = value.get("plan_usd_micros")
    if shaped is not None:
        if kind == "asha" or isinstance(shaped, bool) or not isinstance(shaped, int) or shaped < 1:
            raise SpecError("scheduler.plan_usd_micros", "is the budget (micro-dollars, an integer >= 1) a sh, "
                            "hyperband or bohb plan was fitted to when its study began", shaped)
        cfg["plan_usd_micros"] = shaped
    return cfg


def describe_scheduler(cfg: dict[str, Any]) -> str:
    """A normalised scheduler config in words: ``fifo``, ``curve (95% confidence, 5 points, ratio 2)``,
    ``asha ($0.002 to $0.018, eta 3)``."""
    kind = str(cfg.get("type", "fifo"))
    if kind == "curve":
        parts = [f"{round(cfg['confidence'] * 100, 6):g}% confidence", f"{cfg['min_points']} points",
                 f"ratio {cfg['ratio']:g}"]
        if cfg.get("min_usd_micros"):
            parts.append(f"from {format_usd_exact(cfg['min_usd_micros'])}")
        return f"curve ({', '.join(parts)})"
    if kind in RUNG_TYPES and cfg.get("min_usd_micros") and cfg.get("max_usd_micros"):
        # exact: the stored amounts, which a user may copy into the sweep file (resume compares micros)
        return (f"{kind} ({format_usd_exact(cfg['min_usd_micros'])} to {format_usd_exact(cfg['max_usd_micros'])}, "
                f"eta {cfg.get('eta', DEFAULT_ETA)})")
    return kind


def make_rung_scheduler(cfg: dict[str, Any], *, mode: str, budget_micros: int | None) -> RungScheduler | None:
    """The controller's scheduler for a normalised config: None for fifo and curve.

    asha -> ``AshaScheduler`` (no plan; the budget ends it); sh -> ``SuccessiveHalving``;
    hyperband and bohb -> ``Hyperband`` (the same decisions; BOHB differs only in its sampler).
    Raises ``SpecError("budget.usd", ...)`` when the budget cannot hold one trial run to max_usd.
    """
    cfg = scheduler_config(cfg)
    kind = cfg["type"]
    if kind not in RUNG_TYPES:
        return None
    if mode not in (Mode.MIN, Mode.MAX):
        raise SpecError("objective.mode", "must be min or max", mode)
    low, high, eta = cfg["min_usd_micros"], cfg["max_usd_micros"], cfg["eta"]
    if kind == "asha":
        return AshaScheduler(rung_ladder(low, high, eta), eta, mode=mode)
    plan = study_plan(kind, low, high, eta, budget_micros, cfg.get("plan_usd_micros"))
    return SuccessiveHalving(plan, mode=mode) if kind == "sh" else Hyperband(plan, mode=mode)


def make_curve_scheduler(cfg: dict[str, Any], *, mode: str, seed: int = 0) -> CurveScheduler | None:
    """Learning-curve stopping (``costtune.schedulers.curve``) for a ``{type: curve}`` config; None otherwise."""
    cfg = scheduler_config(cfg)
    return CurveScheduler(cfg, mode=mode, seed=seed) if cfg["type"] == "curve" else None
