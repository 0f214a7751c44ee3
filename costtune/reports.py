"""What the money bought: cost per improvement, best value vs spend, the cost/metric Pareto front.

Everything is computed from a ``History`` alone (the store's attempts come in through a callable),
so a report can be rebuilt from a hand-made history in a test. Time runs in the order trials
*finished*: that is when their money was spent and when their value became known. Money stays in
integer micro-dollars; ratios go out as exact ``Decimal`` strings. Non-finite objective values
(nan, inf) are left out of bests and fronts because no improvement can be measured against them.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any, Protocol

from rich.table import Table

from costtune.history import FrozenTrial, History, Mode, TrialState
from costtune.money import format_usd, micros_to_usd


class AttemptCost(Protocol):
    number: int
    cost_micros: int


# trial number -> that trial's attempts (``Store.attempts`` bound to one study)
AttemptsFn = Callable[[int], Sequence[AttemptCost]]

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
            gain = float(gain_dec)
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


def spend_summary(history: History, attempts_fn: AttemptsFn | None = None) -> dict[str, Any]:
    """Where the money went: by state, on failures, and on attempts that were cut short and re-run.

    ``waste_micros`` is the cost of every attempt but the last of each re-run trial; without
    ``attempts_fn`` it is None when some trial was re-run (unknown), 0 when none was.
    """
    by_state: dict[str, dict[str, int]] = {}
    for trial in history.trials:
        entry = by_state.setdefault(str(trial.state), {"trials": 0, "micros": 0})
        entry["trials"] += 1
        entry["micros"] += trial.cost_micros
    retried = [t for t in history.trials if t.attempts > 1]
    waste: int | None = 0
    if retried and attempts_fn is None:
        waste = None
    elif retried and attempts_fn is not None:
        waste = 0
        for trial in retried:
            attempts = sorted(attempts_fn(trial.number), key=lambda a: a.number)
            waste += sum(a.cost_micros for a in attempts[:-1])
    total = sum(t.cost_micros for t in history.trials)
    failed = by_state.get(str(TrialState.FAILED), {"micros": 0})["micros"]
    return {
        "total_micros": total,
        "total_usd": str(micros_to_usd(total)),
        "by_state": dict(sorted(by_state.items())),
        "failed_micros": failed,
        "interrupted_attempts": sum(t.attempts - 1 for t in retried),
        "retried_trials": len(retried),
        "waste_micros": waste,
    }


def pareto_rows(history: History) -> list[dict[str, Any]]:
    return [{"trial": t.number, "value": t.value, "cost_micros": t.cost_micros,
             "cost_usd": str(micros_to_usd(t.cost_micros)), "params": t.params} for t in pareto_front(history)]


# -- terminal / JSON / CSV ----------------------------------------------------------------------
def to_json(history: History, study: str, attempts_fn: AttemptsFn | None = None) -> str:
    doc = {"study": study, "metric": history.metric, "mode": str(history.mode),
           "cost_per_improvement": cost_per_improvement(history), "pareto": pareto_rows(history),
           "summary": spend_summary(history, attempts_fn)}
    return json.dumps(doc, indent=2, default=str)


_CSV_COLUMNS = ("trial", "value", "previous_best", "gain", "cumulative_micros", "cumulative_usd",
                "cost_of_gain_micros", "cost_of_gain_usd", "usd_per_unit_gain")


def to_csv(history: History) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(cost_per_improvement(history))
    return buf.getvalue()


def improvement_table(history: History, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for name in ("trial", history.metric, "previous", "gain", "spent so far", "cost of gain", "$ / unit"):
        table.add_column(name, justify="right")
    for r in cost_per_improvement(history):
        table.add_row(str(r["trial"]), f"{r['value']:.6g}", _num(r["previous_best"]), _num(r["gain"]),
                      format_usd(r["cumulative_micros"]), format_usd(r["cost_of_gain_micros"]),
                      "-" if r["usd_per_unit_gain"] is None else f"${r['usd_per_unit_gain']}")
    return table


def pareto_table(history: History, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for name, justify in (("trial", "right"), (history.metric, "right"), ("cost", "right"), ("params", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for t in pareto_front(history):
        table.add_row(str(t.number), _num(t.value), format_usd(t.cost_micros), format_params(t.params))
    return table


def format_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"
