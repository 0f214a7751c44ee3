"""What the money bought: cost per improvement, best value vs spend, the cost/metric Pareto front.

Everything is computed from a ``History`` (and, for where the money went, the study's attempts,
read once: ``costtune.store.reads.attempt_rows``), so a report can be rebuilt from a hand-made
history in a test. Time runs in the order trials *finished*: that is when their money was spent
and when their value became known. Money stays in integer micro-dollars; ratios go out as exact
``Decimal`` strings. Non-finite objective values (nan, inf) are left out of bests and fronts
because no improvement can be measured against them. Where the money went (useful, stopped
early, failed, re-run) is ``costtune.reports.spend``; terminal tables are in ``terminal.py``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

from costtune.history import FrozenTrial, History, Mode, TrialState
from costtune.money import micros_to_usd
from costtune.reports.placed import real_placement
from costtune.reports.sections import SECTIONS
from costtune.reports.spend import (
    CLASSES,
    placement,
    spend_by_placement,
    spend_summary,
    steps_per_dollar,
    waste_by_trial,
)
from costtune.store.reads import AttemptCostRow, TrialCost

_SIGNIFICANT_DIGITS = 12  # enough for a $/unit ratio; keeps 1/3 from printing 28 digits


def _scored(trial: FrozenTrial) -> bool:
    """A trial that can be a best: it finished with a finite objective value."""
    return (trial.state in (TrialState.COMPLETE, TrialState.STOPPED) and trial.value is not None
            and math.isfinite(trial.value))


def _better(mode: Mode, a: float, b: float | None) -> bool:
    return b is None or (a < b if mode == Mode.MIN else a > b)


def finish_order(history: History) -> list[FrozenTrial]:
    """Finished trials (failed included) in the order they finished; ties by trial number."""
    done = [t for t in history.trials if t.state.finished]
    return sorted(done, key=lambda t: (t.finished_at is None, t.finished_at or datetime.min, t.number))


def _dec(value: float) -> Decimal:
    """The float as written (``0.1`` -> ``Decimal('0.1')``), so gains subtract exactly."""
    return Decimal(repr(value))


def _plain(value: Decimal) -> str:
    """A decimal without exponent notation (``150``, not ``1.5E+2``)."""
    return format(value.normalize(), "f")


def cost_per_improvement(history: History) -> list[dict[str, Any]]:
    """One row per new best: what it gained and what the spend since the previous best was."""
    out: list[dict[str, Any]] = []
    cumulative = 0
    best: float | None = None
    spent_at_best = 0
    for trial in finish_order(history):
        cumulative += trial.cost_micros
        if not _scored(trial) or not _better(history.mode, trial.value, best):  # type: ignore[arg-type]
            continue
        value: float = trial.value  # type: ignore[assignment]
        cost_of_gain = cumulative - spent_at_best
        gain = per_unit = None
        if best is not None:
            gain_dec = abs(_dec(value) - _dec(best))
            gain = float(gain_dec) if math.isfinite(float(gain_dec)) else _plain(gain_dec)  # 1.7e308 - -1.7e308
            with localcontext() as ctx:
                ctx.prec = _SIGNIFICANT_DIGITS
                per_unit = _plain(micros_to_usd(cost_of_gain) / gain_dec)
        out.append({
            "trial": trial.number,
            "value": value,
            "previous_best": best,
            "gain": gain,
            "cumulative_micros": cumulative,
            "cumulative_usd": str(micros_to_usd(cumulative)),
            "cost_of_gain_micros": cost_of_gain,
            "cost_of_gain_usd": str(micros_to_usd(cost_of_gain)),
            "usd_per_unit_gain": per_unit,
        })
        best, spent_at_best = value, cumulative
    return out


def best_vs_spend(history: History) -> list[dict[str, Any]]:
    """The step curve: after each finished trial, total spend and the best value so far (or None)."""
    out: list[dict[str, Any]] = []
    cumulative = 0
    best: float | None = None
    for trial in finish_order(history):
        cumulative += trial.cost_micros
        if _scored(trial) and _better(history.mode, trial.value, best):  # type: ignore[arg-type]
            best = trial.value
        out.append({"trial": trial.number, "cumulative_micros": cumulative, "best": best})
    return out


def pareto_front(history: History) -> list[FrozenTrial]:
    """Trials no other trial beats on both value and cost, cheapest first.

    Two trials with the same value and the same cost are both on the front (neither dominates).
    """
    sign = 1 if history.mode == Mode.MIN else -1
    ranked = sorted((t for t in history.trials if _scored(t)),
                    key=lambda t: (t.cost_micros, sign * t.value, t.number))  # type: ignore[operator]
    front: list[FrozenTrial] = []
    for trial in ranked:
        score = sign * trial.value  # type: ignore[operator]
        if not front:
            front.append(trial)
            continue
        last = front[-1]
        last_score = sign * last.value  # type: ignore[operator]
        if score < last_score or (score == last_score and trial.cost_micros == last.cost_micros):
            front.append(trial)
    return front


def pareto_rows(history: History, costs: Mapping[int, TrialCost] | None = None) -> list[dict[str, Any]]:
    """The front's trials; ``ran_on``: the searched placement params whose real placement (the last
    attempt's, from ``costs``) differs from what the params proposed, with where it ran."""
    return [{"trial": t.number, "value": t.value, "cost_micros": t.cost_micros,
             "cost_usd": str(micros_to_usd(t.cost_micros)), "params": t.params,
             "ran_on": real_placement(t.params, (costs or {}).get(t.number))} for t in pareto_front(history)]


# -- terminal / JSON / CSV ----------------------------------------------------------------------
def to_json(history: History, study: str, attempts: Sequence[AttemptCostRow] | None = None,
            costs: Mapping[int, TrialCost] | None = None, section: str | None = None) -> str:
    """Without ``attempts`` the placement block is left out (in-memory histories have none); with
    ``section`` (a key of ``JSON_KEYS``) only that section's keys follow the study, metric and mode."""
    doc: dict[str, Any] = {"study": study, "metric": history.metric, "mode": str(history.mode),
                           "cost_per_improvement": cost_per_improvement(history), "pareto": pareto_rows(history, costs),
                           "summary": spend_summary(history, attempts)}
    if attempts is not None:
        doc.update(placement(history, attempts, costs or {}))
    if section is not None:
        keep = {"study", "metric", "mode", *JSON_KEYS[section]}
        doc = {k: v for k, v in doc.items() if k in keep}
    return json.dumps(doc, indent=2, default=str)


_CSV_COLUMNS = ("trial", "value", "previous_best", "gain", "cumulative_micros", "cumulative_usd",
                "cost_of_gain_micros", "cost_of_gain_usd", "usd_per_unit_gain")


CSV_SECTIONS = SECTIONS
JSON_KEYS = {"improvements": ("cost_per_improvement",), "pareto": ("pareto",), "classes": ("summary", "preemption"),
             "spend": ("spend_by_placement",), "steps": ("steps_per_dollar",), "waste": ("waste_by_trial",)}
"""Which keys of the full JSON document each report section is (``--format json --section NAME``)."""


def to_csv(history: History, section: str = "improvements", attempts: Sequence[AttemptCostRow] = (),
           costs: Mapping[int, TrialCost] | None = None) -> str:
    """One CSV table per call: a CSV file has one header, so the sections cannot share one."""
    if section == "improvements":
        data, fields = cost_per_improvement(history), list(_CSV_COLUMNS)
    elif section == "pareto":
        front = pareto_rows(history, costs)
        names = list(dict.fromkeys(k for r in front for k in r["params"]))
        ran = list(dict.fromkeys(k for r in front for k in r["ran_on"]))  # real placement where params differ
        data = [{**{k: v for k, v in r.items() if k not in ("params", "ran_on")},
                 **{f"param.{n}": r["params"].get(n) for n in names},
                 **{f"ran_on.{n}": r["ran_on"].get(n) for n in ran}}
                for r in front]
        fields = ["trial", "value", "cost_micros", "cost_usd", *(f"param.{n}" for n in names),
                  *(f"ran_on.{n}" for n in ran)]
    elif section == "classes":
        data = [{"class": k, **v} for k, v in spend_summary(history, attempts)["classes"].items()]
        fields = ["class", "label", "trials", "micros", "usd", "pct_of_spend"]
    elif section == "waste":
        data = waste_by_trial(history, costs or {}, attempts)
        fields = ["trial", "state", "instance_type", "market", "attempts", "preemptions", "interruptions",
                  "waste_micros", "waste_usd", "cost_micros", "cost_usd", "waste_pct_of_cost"]
    elif section == "spend":
        data = spend_by_placement(history, attempts)
        fields = ["label", "provider", "instance_type", "market", "rate_micros_per_hour", "trials", "attempts",
                  "preemptions", "cost_micros", "cost_usd", *(f"{k}_{u}" for k in CLASSES for u in ("micros", "usd")),
                  "waste_micros", "waste_usd"]
    elif section == "steps":
        data = steps_per_dollar(history, costs or {})
        fields = ["instance_type", "trials", "median_steps", "median_cost_micros", "median_steps_per_usd"]
    else:
        raise ValueError(f"unknown CSV section {section!r}; one of {', '.join(CSV_SECTIONS)}")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(data)
    return buf.getvalue()


