"""What the money bought: cost per improvement, best value vs spend, the cost/metric Pareto front.

Everything is computed from a ``History`` alone (the store's attempts come in through a callable),
so a report can be rebuilt from a hand-made history in a test. Time runs in the order trials
*finished*: that is when their money was spent and when their value became known. Money stays in
integer micro-dollars; ratios go out as exact ``Decimal`` strings. Non-finite objective values
(nan, inf) are left out of bests and fronts because no improvement can be measured against them.
The placement views (preemption waste, spend by instance type and market, steps per dollar) read
the study's attempts, fetched once for the whole study (``costtune.store.reads.attempt_rows``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any, Protocol

from rich.table import Table

from costtune.history import FrozenTrial, History, Mode, TrialState
from costtune.money import format_usd, micros_to_usd
from costtune.store.reads import PREEMPTED, AttemptCostRow, TrialCost


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


def attempts_by_trial(attempts: Iterable[AttemptCostRow]) -> AttemptsFn:
    """An ``AttemptsFn`` over attempts already read, so re-run waste costs no query per trial."""
    grouped: dict[int, list[AttemptCostRow]] = {}
    for a in attempts:
        grouped.setdefault(a.trial, []).append(a)
    return lambda number: grouped.get(number, [])


def _pct(part: int, whole: int) -> float | None:
    return None if whole <= 0 else round(100 * part / whole, 2)


# -- what preemptions cost, where the money went, what it bought per instance type --------------
def preemption_summary(history: History, attempts: Sequence[AttemptCostRow]) -> dict[str, Any]:
    """The sweep's preemptions and the money they threw away (work after the last checkpoint)."""
    total = sum(t.cost_micros for t in history.trials)
    waste = sum(a.waste_micros for a in attempts)
    preempted = [a for a in attempts if a.exit_reason == PREEMPTED]
    return {"preemptions": len(preempted), "trials_preempted": len({a.trial for a in preempted}),
            "waste_micros": waste, "waste_usd": str(micros_to_usd(waste)), "spend_micros": total,
            "waste_pct_of_spend": _pct(waste, total)}


def waste_by_trial(history: History, costs: Mapping[int, TrialCost]) -> list[dict[str, Any]]:
    """Trials that were preempted or wasted money, most waste first."""
    out = []
    for t in history.trials:
        c = costs.get(t.number)
        if c is None or (c.preemptions == 0 and c.waste_micros == 0):
            continue
        out.append({"trial": t.number, "state": str(t.state), "instance_type": c.instance_type, "market": c.market,
                    "attempts": c.attempts, "preemptions": c.preemptions, "waste_micros": c.waste_micros,
                    "waste_usd": str(micros_to_usd(c.waste_micros)), "cost_micros": t.cost_micros,
                    "cost_usd": str(micros_to_usd(t.cost_micros)),
                    "waste_pct_of_cost": _pct(c.waste_micros, t.cost_micros)})
    return sorted(out, key=lambda r: (-r["waste_micros"], r["trial"]))


def spend_by_placement(history: History, attempts: Sequence[AttemptCostRow]) -> list[dict[str, Any]]:
    """Attempt spend per (instance type, market), useful vs wasted, dearest first.

    Spend the attempts do not account for (a trial booked without attempt rows) gets its own row
    with no instance type, so the rows always add up to the sweep's total spend.
    """
    groups: dict[tuple[str | None, str | None], dict[str, Any]] = {}
    trials: dict[tuple[str | None, str | None], set[int]] = {}
    for a in attempts:
        key = (a.instance_type, a.market)
        g = groups.setdefault(key, {"instance_type": a.instance_type, "market": a.market, "attempts": 0,
                                    "preemptions": 0, "cost_micros": 0, "waste_micros": 0})
        g["attempts"] += 1
        g["preemptions"] += a.exit_reason == PREEMPTED
        g["cost_micros"] += a.cost_micros
        g["waste_micros"] += a.waste_micros
        trials.setdefault(key, set()).add(a.trial)
    rest = sum(t.cost_micros for t in history.trials) - sum(g["cost_micros"] for g in groups.values())
    if rest:
        g = groups.setdefault((None, None), {"instance_type": None, "market": None, "attempts": 0,
                                             "preemptions": 0, "cost_micros": 0, "waste_micros": 0})
        g["cost_micros"] += rest
    out = []
    for key, g in groups.items():
        g["trials"] = len(trials.get(key, ()))
        g["useful_micros"] = g["cost_micros"] - g["waste_micros"]
        for name in ("cost", "waste", "useful"):
            g[f"{name}_usd"] = str(micros_to_usd(g[f"{name}_micros"]))
        out.append(g)
    return sorted(out, key=lambda g: (-g["cost_micros"], str(g["instance_type"]), str(g["market"])))


def steps_per_dollar(history: History, costs: Mapping[int, TrialCost]) -> list[dict[str, Any]]:
    """Per instance type, the median steps a finished trial reached per dollar it cost.

    Rungs are dollar levels, so a slower or pricier instance reaches fewer steps by each rung; this
    puts a number on it. Trials that cost nothing or reported no step are left out.
    """
    per_type: dict[str | None, list[tuple[int, int]]] = {}
    for t in history.trials:
        c = costs.get(t.number)
        if not t.state.finished or t.last_step is None or t.cost_micros <= 0 or c is None:
            continue
        per_type.setdefault(c.instance_type, []).append((t.last_step, t.cost_micros))
    out = []
    for kind, pairs in per_type.items():
        ratios = [steps * 1_000_000 / micros for steps, micros in pairs]
        out.append({"instance_type": kind, "trials": len(pairs),
                    "median_steps": statistics.median(s for s, _ in pairs),
                    "median_cost_micros": statistics.median(m for _, m in pairs),
                    "median_steps_per_usd": round(statistics.median(ratios), 3)})
    return sorted(out, key=lambda r: (-r["median_steps_per_usd"], str(r["instance_type"])))


def placement(history: History, attempts: Sequence[AttemptCostRow], costs: Mapping[int, TrialCost]) -> dict[str, Any]:
    """The JSON block with every placement view."""
    return {"preemption": preemption_summary(history, attempts), "waste_by_trial": waste_by_trial(history, costs),
            "spend_by_placement": spend_by_placement(history, attempts),
            "steps_per_dollar": steps_per_dollar(history, costs)}


# -- terminal / JSON / CSV ----------------------------------------------------------------------
def to_json(history: History, study: str, attempts_fn: AttemptsFn | None = None,
            attempts: Sequence[AttemptCostRow] | None = None, costs: Mapping[int, TrialCost] | None = None) -> str:
    """Without ``attempts`` the placement block is left out (in-memory histories have none)."""
    doc: dict[str, Any] = {"study": study, "metric": history.metric, "mode": str(history.mode),
                           "cost_per_improvement": cost_per_improvement(history), "pareto": pareto_rows(history),
                           "summary": spend_summary(history, attempts_fn)}
    if attempts is not None:
        doc.update(placement(history, attempts, costs or {}))
    return json.dumps(doc, indent=2, default=str)


_CSV_COLUMNS = ("trial", "value", "previous_best", "gain", "cumulative_micros", "cumulative_usd",
                "cost_of_gain_micros", "cost_of_gain_usd", "usd_per_unit_gain")


CSV_SECTIONS = ("improvements", "waste", "spend", "steps")


def to_csv(history: History, section: str = "improvements", attempts: Sequence[AttemptCostRow] = (),
           costs: Mapping[int, TrialCost] | None = None) -> str:
    """One CSV table per call: a CSV file has one header, so the sections cannot share one."""
    if section == "improvements":
        data, fields = cost_per_improvement(history), list(_CSV_COLUMNS)
    elif section == "waste":
        data = waste_by_trial(history, costs or {})
        fields = ["trial", "state", "instance_type", "market", "attempts", "preemptions", "waste_micros",
                  "waste_usd", "cost_micros", "cost_usd", "waste_pct_of_cost"]
    elif section == "spend":
        data = spend_by_placement(history, attempts)
        fields = ["instance_type", "market", "trials", "attempts", "preemptions", "cost_micros", "cost_usd",
                  "useful_micros", "useful_usd", "waste_micros", "waste_usd"]
    elif section == "steps":
        data = steps_per_dollar(history, costs or {})
        fields = ["instance_type", "trials", "median_steps", "median_cost_micros", "median_steps_per_usd"]
    else:
        raise ValueError(f"unknown CSV section {section!r}; one of {', '.join(CSV_SECTIONS)}")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(data)
    return buf.getvalue()


def improvement_table(history: History, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for name in ("trial", history.metric, "previous", "gain", "spent so far", "cost of gain", "$ / unit"):
        table.add_column(name, justify="right")
    for r in cost_per_improvement(history):
        table.add_row(str(r["trial"]), f"{r['value']:.6g}", _num(r["previous_best"]), _num(r["gain"]),
                      format_usd(r["cumulative_micros"]), format_usd(r["cost_of_gain_micros"]),
                      "-" if r["usd_per_unit_gain"] is None else f"${float(r['usd_per_unit_gain']):,.6g}")
    return table


def pareto_table(history: History, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for name, justify in (("trial", "right"), (history.metric, "right"), ("cost", "right"), ("params", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for t in pareto_front(history):
        table.add_row(str(t.number), _num(t.value), format_usd(t.cost_micros), format_params(t.params))
    return table


def placement_tables(history: History, attempts: Sequence[AttemptCostRow], costs: Mapping[int, TrialCost],
                     top: int = 10) -> list[Table | str]:
    """Terminal views: waste line, spend by instance type/market, steps per dollar, worst-hit trials."""
    p = preemption_summary(history, attempts)
    share = "-" if p["waste_pct_of_spend"] is None else f"{p['waste_pct_of_spend']}%"
    line = (f"preemptions: {p['preemptions']} in {p['trials_preempted']} trials, wasting "
            f"{format_usd(p['waste_micros'])} ({share} of {format_usd(p['spend_micros'])})")
    spend = Table(title="spend by instance type and market", title_justify="left")
    for name in ("instance", "market", "trials", "attempts", "preempt", "spend", "useful", "waste"):
        spend.add_column(name, justify="left" if name in ("instance", "market") else "right")
    for g in spend_by_placement(history, attempts):
        spend.add_row(_text(g["instance_type"]), _text(g["market"]), str(g["trials"]), str(g["attempts"]),
                      str(g["preemptions"]), format_usd(g["cost_micros"]), format_usd(g["useful_micros"]),
                      format_usd(g["waste_micros"]))
    steps = Table(title="steps per dollar (median over finished trials)", title_justify="left")
    for name in ("instance", "trials", "median steps", "median cost", "steps / $"):
        steps.add_column(name, justify="left" if name == "instance" else "right")
    for r in steps_per_dollar(history, costs):
        steps.add_row(_text(r["instance_type"]), str(r["trials"]), f"{r['median_steps']:g}",
                      format_usd(round(r["median_cost_micros"])), f"{r['median_steps_per_usd']:,.1f}")
    out: list[Table | str] = [line, spend, steps]
    worst = waste_by_trial(history, costs)[:top]
    if worst:
        table = Table(title=f"preemption waste by trial (top {top})", title_justify="left")
        for name in ("trial", "instance", "attempts", "preempt", "waste", "cost", "waste %"):
            table.add_column(name, justify="left" if name == "instance" else "right")
        for r in worst:
            table.add_row(str(r["trial"]), _text(r["instance_type"]), str(r["attempts"]), str(r["preemptions"]),
                          format_usd(r["waste_micros"]), format_usd(r["cost_micros"]),
                          "-" if r["waste_pct_of_cost"] is None else f"{r['waste_pct_of_cost']}%")
        out.append(table)
    return out


def _text(value: str | None) -> str:
    return "-" if value is None else value


def format_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"
