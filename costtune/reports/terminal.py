"""`costtune report` in the terminal: the cost report's tables, fitted to the console width.

Every table is a ``FittedTable`` (whole columns are left out on a narrow console, numbers are never
cut); money columns share one number of decimals (``costtune.money.usd_places``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from rich.text import Text

from costtune.history import History
from costtune.money import format_usd, format_usd_column, format_usd_decimals
from costtune.reports.cost import cost_per_improvement, pareto_front
from costtune.reports.fmt import format_number
from costtune.reports.sections import SECTIONS
from costtune.reports.spend import (
    CLASS_LABELS,
    CLASSES,
    SHORT_LABELS,
    class_trials,
    preemption_summary,
    shown_classes,
    spend_by_placement,
    spend_summary,
    steps_per_dollar,
    waste_by_trial,
)
from costtune.reports.table import Column, FittedTable
from costtune.store.reads import AttemptCostRow, TrialCost
from costtune.words import plural, shown


def improvement_table(history: History, title: str) -> FittedTable:
    rows = cost_per_improvement(history)
    return FittedTable([
        Column("trial", [str(r["trial"]) for r in rows], keep=0),
        Column(history.metric, [format_number(r["value"]) for r in rows], keep=1),
        Column("previous", [format_number(r["previous_best"]) for r in rows], keep=5),
        Column("gain", [format_number(Decimal(g) if isinstance(g := r["gain"], str) else g) for r in rows], keep=4),
        Column("spent so far", format_usd_column([r["cumulative_micros"] for r in rows]), keep=2),
        Column("cost of gain", format_usd_column([r["cost_of_gain_micros"] for r in rows]), keep=3),
        Column("$ / unit", format_usd_decimals([r["usd_per_unit_gain"] for r in rows]), keep=6),
    ], title=title, empty=f"no rows: no trial has a value of {history.metric} yet")


def param_columns(param_rows: Sequence[Mapping[str, Any]], *, keep: int = 10) -> list[Column]:
    """One column per parameter (in first-seen order), floats to four significant digits."""
    names = list(dict.fromkeys(k for p in param_rows for k in p))
    return [Column(name, [format_number(p.get(name), 4) for p in param_rows], keep=keep + i)
            for i, name in enumerate(names)]


def pareto_table(history: History, title: str) -> FittedTable:
    front = pareto_front(history)
    return FittedTable([
        Column("trial", [str(t.number) for t in front], keep=0),
        Column(history.metric, [format_number(t.value) for t in front], keep=1),
        Column("cost", format_usd_column([t.cost_micros for t in front]), keep=2),
        *param_columns([t.params for t in front]),
    ], title=title, empty=f"no rows: no trial has a value of {history.metric} yet")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def classes_table(history: History, attempts: Sequence[AttemptCostRow] | None) -> FittedTable:
    """Where the money went: one row per class that holds money or trials, then the total."""
    s = spend_summary(history, attempts)
    kinds = shown_classes(s)
    money = format_usd_column([s["classes"][k]["micros"] for k in kinds] + [s["total_micros"]])
    return FittedTable([
        Column("money spent on", [*(CLASS_LABELS[k] for k in kinds), Text("total", style="bold")], keep=0,
               justify="left", wrap=14),
        Column("trials", [*(class_trials(s, k) for k in kinds), str(len(history.trials))], keep=2),
        Column("spend", money, keep=1),
        Column("share", [*(_pct(s["classes"][k]["pct_of_spend"]) for k in kinds),
                         "100.0%" if s["total_micros"] else "-"], keep=3),
    ], title="where the money went")


def _preemption_line(history: History, attempts: Sequence[AttemptCostRow]) -> list[Text]:
    p = preemption_summary(history, attempts)
    if not (p["preemptions"] or p["interruptions"]):
        return []
    return [Text(f"preemptions: {p['preemptions']} in {plural(p['trials_preempted'], 'trial')}, "
                 f"{plural(p['interruptions'], 'interrupted attempt')}; re-running their work cost "
                 f"{format_usd(p['waste_micros'])} ({_pct(p['waste_pct_of_spend'])} of "
                 f"{format_usd(p['spend_micros'])})")]


def spend_table(history: History, attempts: Sequence[AttemptCostRow]) -> FittedTable:
    groups = spend_by_placement(history, attempts)
    kinds = [k for k in CLASSES if any(g[f"{k}_micros"] for g in groups)]
    return FittedTable([
        Column("where", [g["label"] for g in groups], keep=0, justify="left", wrap=16),
        Column("trials", [str(g["trials"]) for g in groups], keep=4),
        Column("attempts", [str(g["attempts"]) for g in groups], keep=5),
        Column("preempt", [str(g["preemptions"]) for g in groups], keep=6),
        Column("spend", format_usd_column([g["cost_micros"] for g in groups]), keep=1),
        *(Column(SHORT_LABELS[k], format_usd_column([g[f"{k}_micros"] for g in groups]), keep=2)
          for k in kinds),
    ], title="spend by instance type and market", empty="no rows: nothing spent yet")


def steps_table(history: History, costs: Mapping[int, TrialCost]) -> FittedTable:
    per_type = steps_per_dollar(history, costs)
    return FittedTable([
        Column("instance", [r["instance_type"] or "-" for r in per_type], keep=0, justify="left"),
        Column("trials", [str(r["trials"]) for r in per_type], keep=3),
        Column("median last step", [f"{r['median_steps']:g}" for r in per_type], keep=2),
        Column("median cost", format_usd_column([round(r["median_cost_micros"]) for r in per_type]), keep=4),
        Column("steps / $", [f"{r['median_steps_per_usd']:,.1f}" for r in per_type], keep=1),
    ], title="steps per dollar (median over finished trials)",
        empty="no rows: no finished trial reported a step and cost money")


def waste_table(history: History, attempts: Sequence[AttemptCostRow], costs: Mapping[int, TrialCost],
                top: int = 10) -> list[FittedTable]:
    ranked = waste_by_trial(history, costs, attempts)
    worst = ranked[:top]
    if not worst:
        return []
    return [FittedTable([
        Column("trial", [str(r["trial"]) for r in worst], keep=0),
        Column("instance", [r["instance_type"] or "-" for r in worst], keep=4, justify="left"),
        Column("attempts", [str(r["attempts"]) for r in worst], keep=5),
        Column("preempt", [str(r["preemptions"]) for r in worst], keep=3),
        Column("re-run", format_usd_column([r["waste_micros"] for r in worst]), keep=1),
        Column("cost", format_usd_column([r["cost_micros"] for r in worst]), keep=2),
        Column("re-run %", [_pct(r["waste_pct_of_cost"]) for r in worst], keep=6),
    ], title="re-run money by trial, most first",
        note=shown(len(worst), len(ranked), "costtune report STUDY --format csv --section waste for all"))]


def sections(history: History, attempts: Sequence[AttemptCostRow], costs: Mapping[int, TrialCost], label: str,
             only: str | None = None) -> list[FittedTable | Text]:
    """The terminal report: every section in ``SECTIONS`` order, or only the one named ``only``.

    Raises ``ValueError`` for a name not in ``SECTIONS`` (the CLI's choice list refuses it first).
    """
    if only is not None and only not in SECTIONS:
        raise ValueError(f"unknown report section {only!r}; one of {', '.join(SECTIONS)}")
    build = {
        "improvements": lambda: [improvement_table(history, f"cost per improvement: {label}")],
        "pareto": lambda: [pareto_table(history, f"Pareto front, {history.metric} vs cost: {label}")],
        "classes": lambda: [classes_table(history, attempts), *_preemption_line(history, attempts)],
        "spend": lambda: [spend_table(history, attempts)],
        "steps": lambda: [steps_table(history, costs)],
        "waste": lambda: waste_table(history, attempts, costs),
    }
    return [part for name in SECTIONS if only in (None, name) for part in build[name]()]


def placement_tables(history: History, attempts: Sequence[AttemptCostRow], costs: Mapping[int, TrialCost],
                     top: int = 10) -> list[FittedTable | Text]:
    """Terminal views: spend by class, the re-run line, spend by placement, steps per dollar, worst trials."""
    return [classes_table(history, attempts), *_preemption_line(history, attempts), spend_table(history, attempts),
            steps_table(history, costs), *waste_table(history, attempts, costs, top)]
