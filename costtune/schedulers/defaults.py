"""Rung levels chosen for a sweep that gives no ``scheduler.min_usd`` / ``max_usd``.

The choice is made once, when a sweep starts, from what the sweep file already says: the rates of
its placements, its start-up estimate (a simulated sweep's ``startup_seconds``) and its budget. It
is written into the study's stored sweep (``min_usd``, ``max_usd`` and a ``chosen`` note saying
why), and a resumed sweep keeps the stored values (``adopt_stored``), so a price-table update or a
``--change-cap`` never moves a running sweep's rungs.

- ``max_usd`` = the highest rung ``min_usd * eta**k`` (k >= 1) within ``budget.usd / TRIALS_IN_BUDGET``: the
  budget holds at least that many trials run to the top rung (Hyperband's plan then holds many more, most
  stopped early), and the top rung is ``eta`` times the one below it, not a few percent above it
  (``$0.0080 -> $0.0240 -> $0.025`` was a near-useless last rung). A file giving ``max_usd`` but no
  ``min_usd`` gets ``min_usd`` raised onto that ladder instead (``max_usd / eta**k``).
- ``min_usd`` = the money of ``max(FIRST_RUNG_S, start-up)`` seconds at the median placement rate
  (billing minimum included). Rungs count money spent after a trial's first report (its start-up is
  not counted), so this is training time, a few steps' worth for most workloads; a trial with a long
  start-up is judged on as much training as one with a short one. It is lowered to
  ``max_usd / eta`` when the budget is so small that the ladder would have fewer than two rungs.
"""

from __future__ import annotations

import statistics
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from costtune.errors import SpecError
from costtune.money import format_usd, format_usd_exact

if TYPE_CHECKING:
    from costtune.spec.resources import Resources

TRIALS_IN_BUDGET = 20
FIRST_RUNG_S = 120


class RungsNeedABudget(SpecError):
    """``scheduler.max_usd`` is left to be chosen and there is no ``budget.usd`` to choose it from. A resumed
    study has stored rungs to keep instead (``with_stored_rungs``); a new one is refused with this error."""


def _text(micros: int) -> str:
    return f"{Decimal(micros).scaleb(-6).normalize():f}"


def choose_rungs(cfg: dict[str, Any], resources: Resources, budget_micros: int | None) -> dict[str, Any]:
    """``cfg`` (a normalised rung config) with ``min_usd``/``max_usd`` (and their micros) filled in where
    it gives none, plus ``chosen``: the one-line reason. A config that gives both is returned as is.

    Raises ``SpecError("scheduler.max_usd", ...)`` when max_usd is missing and there is no budget.usd
    to derive it from.
    """
    if cfg.get("min_usd") is not None and cfg.get("max_usd") is not None:
        return cfg
    eta = cfg["eta"]
    rates = sorted(set(resources.rates.values()) or {resources.usd_per_hour_micros})
    rate = round(statistics.median(rates))
    sim = resources.simulation
    startup_s = sim.startup_seconds if sim is not None else 0.0
    why: list[str] = []
    out = dict(cfg)
    if cfg.get("max_usd") is None and budget_micros is None:
        raise RungsNeedABudget("scheduler.max_usd", "is required without budget.usd (it is chosen as a share "
                               "of the budget when not given)")
    share = None if budget_micros is None else max(1, budget_micros // TRIALS_IN_BUDGET)
    high = cfg["max_usd_micros"] if cfg.get("max_usd") is not None else share
    lowered = False
    if cfg.get("min_usd") is None:
        seconds = max(float(FIRST_RUNG_S), startup_s)
        low = resources.billing.charge(round(seconds * 1000), rate)
        lowered = low * eta > high
        low = max(1, min(low, high // eta))
        basis = "its start-up" if startup_s > FIRST_RUNG_S else f"{FIRST_RUNG_S} s"
        min_why = (f"min_usd {{}} = {basis} on the median rate {format_usd(rate)}/h, counted after each trial's first "
                   "report" + (f", lowered to max_usd / {eta}" if lowered else ""))
    else:
        low, min_why = cfg["min_usd_micros"], None
    if share is not None and cfg.get("max_usd") is None:
        # the top rung on min_usd's ladder: min_usd * eta**k, the highest within the share (at least one step up),
        # so the last rung is eta times the one below it, never a few percent above it
        assert budget_micros is not None
        k = max(1, _steps(low, share, eta))
        high = low * eta**k
        out["max_usd"], out["max_usd_micros"] = _text(high), high
        why.append(f"max_usd {format_usd_exact(high)} = min_usd x {eta}^{k}, the highest rung within budget.usd "
                   f"{format_usd(budget_micros)} / {TRIALS_IN_BUDGET} = {format_usd_exact(share)} (room for "
                   f"at least {TRIALS_IN_BUDGET} trials run to the top)")
    elif min_why is not None and not lowered and low * eta ** (k := _steps(low, high, eta)) != high:
        low = -(-high // eta**k)  # the file's max_usd: min_usd raised onto its ladder, so the rungs end on it
        min_why += f", raised to max_usd / {eta}^{k} so each rung is {eta}x the one below"
    if min_why is not None:
        out["min_usd"], out["min_usd_micros"] = _text(low), low
        why.append(min_why.format(format_usd_exact(low)))
    out["chosen"] = "; ".join(why)
    return out


def _steps(low: int, high: int, eta: int) -> int:
    """The largest k with ``low * eta**k <= high`` (0 when high < low * eta)."""
    k = 0
    while low * eta ** (k + 1) <= high:
        k += 1
    return k


def _chosen_names(chosen: Any) -> set[str]:
    """The fields a ``chosen`` note explains: each "; "-separated part starts with the field's name."""
    return {part.split(" ", 1)[0] for part in str(chosen).split("; ")}


def adopt_stored(cfg: dict[str, Any], stored: dict[str, Any] | None) -> dict[str, Any]:
    """A resumed sweep's rungs: for each of ``min_usd``/``max_usd`` the file does not give (``cfg`` chose it),
    the study's stored value, whether it was chosen when the study began or given by a file since;
    ``cfg`` unchanged when there is nothing to keep (another type or eta is refused by the resume check)."""
    from costtune.schedulers import scheduler_config

    if not isinstance(stored, dict) or "chosen" not in cfg:
        return cfg
    try:
        was = scheduler_config(stored, choose=True)  # the stored sweep's scheduler, with what was chosen
    except SpecError:
        return cfg
    if was["type"] != cfg["type"] or was.get("eta") != cfg["eta"]:
        return cfg
    out = dict(cfg)
    now = _chosen_names(cfg["chosen"])
    parts: list[str] = []
    reasons = {part.split(" ", 1)[0]: part for part in str(was.get("chosen", "")).split("; ") if part}  # by field
    for name in ("min_usd", "max_usd"):  # not given now: the stored value; given now: the file's own
        if name in now and was.get(name) is not None:
            out[name], out[f"{name}_micros"] = was[name], was[f"{name}_micros"]
            exact = format_usd_exact(was[f"{name}_micros"])
            parts.append(reasons.get(name) or f"{name} {exact} as stored with the study")
    if not parts:
        return cfg
    out["chosen"] = "; ".join(parts)
    return out


def with_stored_rungs(section: dict[str, Any], stored: Any) -> dict[str, Any] | None:
    """The file's ``scheduler`` section with each of ``min_usd``/``max_usd`` it leaves out taken from the study's
    ``stored`` section (same type and eta), and a ``chosen`` note giving the stored reason for each (or "as
    stored with the study"): what a resume keeps anyway (``adopt_stored``), for a file that gives no budget.usd
    to choose them from. None when the stored section has no such rungs (another type or eta, none stored)."""
    from costtune.schedulers import scheduler_config

    if not isinstance(stored, dict):
        return None
    try:
        now = scheduler_config(section, choose=True)
        was = scheduler_config(stored, choose=True)
    except SpecError:
        return None
    if was["type"] != now["type"] or was.get("eta") != now.get("eta"):
        return None
    reasons = {part.split(" ", 1)[0]: part for part in str(was.get("chosen", "")).split("; ") if part}
    out, parts = dict(section), []
    for name in ("min_usd", "max_usd"):
        if now.get(name) is None:
            if was.get(name) is None:
                return None
            out[name] = was[name]
            exact = format_usd_exact(was[f"{name}_micros"])
            parts.append(reasons.get(name) or f"{name} {exact} as stored with the study")
    out["chosen"] = "; ".join(parts)
    return out


def rung_below_minimum(cfg: dict[str, Any], resources: Resources, *, resumed: bool = False,
                       startup_s: float | None = None) -> str | None:
    """A warning when the first rung costtune chose (``cfg``'s ``chosen`` note names ``min_usd``: lowered to
    ``max_usd / eta`` for a small budget) is below the minimum charge of the cheapest placement (micro-dollars,
    the billing rule's charge for a launch: AWS bills 60 s at least). Every launch is charged more than the rung
    before it can report, so the rung judges start-up, not training. None when the rung is at or above it.
    ``resumed``: the study keeps its stored rungs, so the advice is for a new study. ``startup_s``: the seconds
    a launch is billed before its first report (default a simulated sweep's ``startup_seconds``); rungs count the
    money after that report, so a start-up that already covers the minimum leaves nothing to warn about."""
    from costtune.schedulers import RUNG_TYPES

    if cfg.get("type") not in RUNG_TYPES or not cfg.get("min_usd_micros") or "min_usd" not in _chosen_names(
            cfg.get("chosen", "")):
        return None
    placements = resources.rates or {f"{resources.instance_type or resources.provider}/{resources.market or '-'}":
                                     resources.usd_per_hour_micros}
    where, rate = min(placements.items(), key=lambda item: (resources.billing.least_charge(item[1]), item[0]))
    floor = resources.billing.least_charge(rate)
    low, eta = cfg["min_usd_micros"], cfg["eta"]
    held = resources.billing.least_s
    if startup_s is None and resources.simulation is not None:
        startup_s = resources.simulation.startup_seconds
    if low >= floor or (startup_s is not None and startup_s >= held):
        return None
    # amounts a user may copy into the file: exact, never rounded below what they must reach
    fix = (f"raise budget.usd to at least {format_usd_exact(floor * eta * TRIALS_IN_BUDGET)} (max_usd at most "
           f"budget.usd / {TRIALS_IN_BUDGET}, min_usd = max_usd / {eta}) or give scheduler.min_usd of at least "
           f"{format_usd_exact(floor)}")
    return (f"scheduler.min_usd: the first rung, {format_usd_exact(low)} (chosen from budget.usd), is below the "
            f"minimum charge of the cheapest placement, {format_usd_exact(floor)} ({held} s at {format_usd(rate)}/h on "
            f"{where.replace('/', ' ')}): every launch is charged more than the rung before it can report, so its "
            f"first rung is passed at launch and the rungs judge start-up, not training; "
            + (f"this study keeps its rungs; for a new study, {fix}" if resumed else fix))
