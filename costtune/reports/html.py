"""The study report as one self-contained HTML file: inline CSS, hand-drawn SVG, no network.

A report gets mailed, attached to tickets and opened offline years later, so it cannot depend on a
CDN or a plotting library. Every piece of user-controlled text (study name, metric, parameters,
errors) goes through ``html.escape``; numbers are formatted by us, money by the one rule of
``costtune.money.usd_places`` and durations by ``costtune.reports.fmt.format_duration``. Where the
money went comes from ``costtune.reports.spend.classify`` for every table and the bar chart alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from decimal import Decimal
from html import escape
from typing import Any

from costtune.history import History, Outcomes, TrialState
from costtune.money import MICROS_PER_USD, format_usd, format_usd_column, format_usd_decimals
from costtune.reports import leaderboard
from costtune.reports.cost import best_vs_spend, cost_per_improvement, pareto_front
from costtune.reports.fmt import format_duration, format_number, format_params
from costtune.reports.placed import MARK, MARK_NOTE
from costtune.reports.spend import (
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
from costtune.reports.svg import Plot, format_tick, nice_ticks, stacked_bars
from costtune.spec.resources import INSTANCE_PARAM, MARKET_PARAM
from costtune.store.reads import AttemptCostRow, trial_costs
from costtune.words import plural, shown

__all__ = ["RERUN_RGB", "USEFUL_RGB", "WASTE_RGB", "nice_ticks", "render_html"]

_NO_TRIAL = '<p class="empty">no trial with a result yet</p>'
# Bar colours per spend class (kept in step with the CSS below; screenshot tests look for two of them).
CLASS_COLOURS = {"useful": "#3b9c6b", "stopped": "#8fb3d9", "failed": "#c0392b", "rerun": "#d9822b",
                 "unfinished": "#b8bcc8"}
USEFUL_RGB, RERUN_RGB = (0x3B, 0x9C, 0x6B), (0xD9, 0x82, 0x2B)
WASTE_RGB = RERUN_RGB  # the name older tests use for re-run money
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;
 color:#1d2330;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde;padding-bottom:4px}
.facts{display:flex;flex-wrap:wrap;gap:8px 28px;margin:10px 0}.facts div span{display:block;color:#667;font-size:12px}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:13px;margin:4px 0}th,td{padding:3px 10px;border-bottom:1px solid #eef}
th{text-align:left;background:#f4f5fa;white-space:nowrap}td.n{text-align:right;font-variant-numeric:tabular-nums;
 white-space:nowrap}
td.failed{color:#b42318}td.complete{color:#146c2e}td.stopped{color:#8a6100}td.running{color:#1559a8}
.empty{color:#667;font-style:italic}.charts{display:flex;flex-wrap:wrap;gap:16px}
svg{background:#fff;border:1px solid #e3e5ee}svg text{font:11px system-ui,sans-serif;fill:#333}
svg .title{font-size:13px;font-weight:600}svg .grid{stroke:#eceef4}svg .axis{stroke:#555}
svg .curve{fill:none;stroke:#2f6fde;stroke-width:2}svg .best{fill:#2f6fde}
svg .complete{fill:#2f6fde;fill-opacity:.8}svg .stopped{fill:#fff;stroke:#c98a00;stroke-width:1.8}
svg .failed{fill:none;stroke:#b42318;stroke-width:2}svg .ring{fill:none;stroke:#e4572e;stroke-width:2}
svg .front{fill:none;stroke:#e4572e;stroke-width:1.5}
""" + "".join(f"svg .{k}-bar{{fill:{c}}}" for k, c in CLASS_COLOURS.items())


def _usd_tick(value: Decimal) -> str:
    """An axis tick by the one money rule (``$0.05``, ``$0.000043``), never ``$5e-05``; a tick finer
    than a micro-dollar (a chart of tiny local trials) keeps its plain decimals."""
    micros = value * MICROS_PER_USD
    if micros == micros.to_integral_value():
        return format_usd(int(micros))
    return f"${format(value.normalize(), 'f')}"


# -- charts -------------------------------------------------------------------------------------
def best_chart(history: History) -> str:
    curve = [(p["cumulative_micros"] / 1_000_000, p["best"]) for p in best_vs_spend(history)
             if p["best"] is not None and math.isfinite(p["best"])]
    if not curve:
        return _NO_TRIAL
    xs = [0.0] + [c[0] for c in curve]
    plot = Plot(xs, [c[1] for c in curve], xlabel="cumulative spend (USD)", ylabel=f"best {history.metric}",
                xfmt=_usd_tick, yfmt=format_tick)
    plot.step(curve)
    plot.dots([(r["cumulative_micros"] / 1_000_000, r["value"], "best",
                f"trial {r['trial']}: {history.metric}={r['value']:.6g} after {format_usd(r['cumulative_micros'])}")
               for r in cost_per_improvement(history)], r=3.5)
    return plot.svg(f"best {history.metric} vs cumulative dollars", "best-vs-spend")


_MARKS = {TrialState.COMPLETE: "complete", TrialState.STOPPED: "stopped", TrialState.FAILED: "failed cross"}
_MARK_TEXT = {TrialState.COMPLETE: "complete", TrialState.STOPPED: "stopped early", TrialState.FAILED: "failed"}


def scatter_chart(history: History) -> str:
    """Every finished trial with a finite value: filled (complete), hollow (stopped), x (failed); front ringed."""
    trials = [t for t in history.trials if t.state in _MARKS and t.value is not None and math.isfinite(t.value)]
    if not trials:
        return _NO_TRIAL
    front = pareto_front(history)
    on_front = {t.number for t in front}
    xs = [0.0] + [t.cost_micros / 1_000_000 for t in trials]
    plot = Plot(xs, [t.value for t in trials], xlabel="trial cost (USD)",  # type: ignore[misc]
                ylabel=history.metric, xfmt=_usd_tick, yfmt=format_tick)
    plot.line([(t.cost_micros / 1_000_000, t.value) for t in front], "front")  # type: ignore[misc]
    plot.dots([(t.cost_micros / 1_000_000, t.value, "ring", "") for t in front], r=7)  # type: ignore[misc]
    plot.dots([(t.cost_micros / 1_000_000, t.value, _MARKS[t.state],  # type: ignore[misc]
                f"trial {t.number} ({_MARK_TEXT[t.state]}{', on the Pareto front' if t.number in on_front else ''})"
                f": {history.metric}={t.value:.6g} cost {format_usd(t.cost_micros)} {format_params(t.params)}")
               for t in trials])
    shown = {t.state for t in trials}
    plot.legend([*((_MARKS[s], _MARK_TEXT[s]) for s in _MARKS if s in shown), ("ring", "Pareto front")])
    return plot.svg(f"{history.metric} vs cost", "metric-vs-cost")


def spend_bars(groups: Sequence[dict[str, Any]]) -> str:
    """Spend per instance type / market (or price source), split into the spend classes."""
    if not groups:
        return '<p class="empty">no attempt records</p>'
    kinds = [k for k in CLASSES if any(g[f"{k}_micros"] for g in groups)]
    ends = format_usd_column([g["cost_micros"] for g in groups])
    rows = [(g["label"], [(f"{k}-bar", g[f"{k}_micros"]) for k in kinds], end) for g, end in zip(groups, ends,
                                                                                             strict=True)]
    return stacked_bars(rows, title="where the money went, by instance type and market", ident="spend-by-instance",
                        key=[(f"{k}-bar", SHORT_LABELS[k]) for k in kinds])


# -- tables -------------------------------------------------------------------------------------
def _table(head: Sequence[str], columns: Sequence[Sequence[Any]], numeric: set[int]) -> str:
    """A table from columns of cells (escaped here); a cell given as ``(text, css class)`` gets the class."""
    out = ["<div class=\"scroll\"><table><thead><tr>", *(f"<th>{escape(h)}</th>" for h in head),
           "</tr></thead><tbody>"]
    for row in zip(*columns, strict=True):
        out.append("<tr>")
        for i, cell in enumerate(row):
            text, cls = cell if isinstance(cell, tuple) else (cell, "")
            classes = " ".join(c for c in (cls, "n" if i in numeric else "") if c)
            attr = f' class="{classes}"' if classes else ""
            out.append(f"<td{attr}>{escape(str(text))}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _dash(value: Any, fmt: Callable[[Any], str] = str) -> str:
    return "-" if value is None else fmt(value)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def leaderboard_html(history: History, limit: int = 50, costs: leaderboard.Costs | None = None,
                     ladder: Sequence[int] | None = None) -> str:
    """Best first, one column per parameter; cloud columns only when the study has them."""
    data = leaderboard.rows(history, costs, ladder)[:limit]
    if not data:
        return '<p class="empty">no trial yet</p>'
    total = history.spent_micros or 1
    params = list(dict.fromkeys(k for r in data for k in r["params"]))
    placed = any(r["instance_type"] for r in data)
    if placed:  # the instance and market columns show these search dimensions
        params = [p for p in params if p not in (INSTANCE_PARAM, MARKET_PARAM)]
    cols: list[tuple[str, list[Any], bool]] = [
        ("#", [_dash(r["rank"]) for r in data], True), ("trial", [r["trial"] for r in data], True),
        ("state", [(r["state"], r["state"]) for r in data], False),
        (history.metric, [format_number(r["value"]) for r in data], True),
        *((p, [format_number(r["params"].get(p), 4) for r in data], True) for p in params),
        ("cost", format_usd_column([r["cost_micros"] for r in data]), True),
        ("share of spend", [f"{100 * r['cost_micros'] / total:.1f}%" for r in data], True)]
    if ladder:
        cols.append(("$ at rung", format_usd_column([r["rung_micros"] for r in data]), True))
    if placed:
        def ran(r: dict[str, Any], name: str) -> str:  # where it ran, marked when its params proposed elsewhere
            return f"{_dash(r[name])}{MARK if name in r['ran_on'] else ''}"

        cols += [("instance", [ran(r, INSTANCE_PARAM) for r in data], False),
                 ("market", [ran(r, MARKET_PARAM) for r in data], False)]
    if any(r["preemptions"] for r in data):
        cols.append(("preempted", [_dash(r["preemptions"]) for r in data], True))
    if any(r["waste_micros"] for r in data):
        cols.append(("re-run $", format_usd_column([r["waste_micros"] for r in data]), True))
    cols += [("last step", [format_number(r["last_step"]) for r in data], True),
             (*leaderboard.time_cells(data), True),
             ("tries", [r["attempts"] for r in data], True), ("error", [r["error"] or "" for r in data], False)]
    more = shown(len(data), len(history.trials), "costtune leaderboard STUDY for all")
    note = f'<p class="empty">{escape(more)}</p>' if more else ""
    if placed and any(r["ran_on"] for r in data):
        note += f'<p class="empty">{escape(MARK_NOTE)}</p>'
    return _table([c[0] for c in cols], [c[1] for c in cols], {i for i, c in enumerate(cols) if c[2]}) + note


def spend_html(history: History, attempts: Sequence[AttemptCostRow] | None) -> str:
    """Where the money went, by class; the same classes as the bar chart and the placement table."""
    s = spend_summary(history, attempts)
    if not s["total_micros"]:
        return '<p class="empty">no spend</p>'
    kinds = shown_classes(s)
    money = format_usd_column([s["classes"][k]["micros"] for k in kinds] + [s["total_micros"]])
    table = _table(["money spent on", "trials", "spend", "share"],
                   [[*(s["classes"][k]["label"] for k in kinds), "total"],
                    [*(class_trials(s, k) for k in kinds), len(history.trials)], money,
                    [*(_pct(s["classes"][k]["pct_of_spend"]) for k in kinds), "100.0%"]], {1, 2, 3})
    rerun = s["classes"]["rerun"]
    cut = s["preempted_attempts"] + s["interrupted_attempts"]
    line = (f"<p>{plural(cut, 'attempt')} {'was' if cut == 1 else 'were'} cut short "
            f"({s['preempted_attempts']} preempted, {s['interrupted_attempts']} interrupted) in "
            f"{plural(s['retried_trials'], 'trial')}; the work they had to run "
            f"again cost {escape(format_usd(rerun['micros']))}. Money a cut-short attempt spent on work that a "
            "checkpoint kept counts where its trial ended.</p>") if attempts is not None and cut else ""
    return table + line


def placement_html(history: History, attempts: Sequence[AttemptCostRow] | None, top: int = 20) -> str:
    """Spend by instance type and market (split into the classes), steps per dollar, re-run money by trial."""
    if attempts is None:
        return '<p class="empty">no attempt records</p>'
    costs = trial_costs(attempts)
    p = preemption_summary(history, attempts)
    line = (f"<p>{plural(p['preemptions'], 'preemption')} in {plural(p['trials_preempted'], 'trial')} and "
            f"{plural(p['interruptions'], 'interruption')}: re-running their work cost "
            f"{escape(format_usd(p['waste_micros']))}, "
            f"{escape(_pct(p['waste_pct_of_spend']))} of {escape(format_usd(p['spend_micros']))} spent.</p>"
            if p["preemptions"] or p["interruptions"] else "<p>No attempt was preempted or interrupted.</p>")
    groups = spend_by_placement(history, attempts)
    kinds = [k for k in CLASSES if any(g[f"{k}_micros"] for g in groups)]
    spend = _table(["where", "trials", "attempts", "preemptions", "spend", *(SHORT_LABELS[k] for k in kinds)],
                   [[g["label"] for g in groups], [g["trials"] for g in groups], [g["attempts"] for g in groups],
                    [g["preemptions"] for g in groups], format_usd_column([g["cost_micros"] for g in groups]),
                    *(format_usd_column([g[f"{k}_micros"] for g in groups]) for k in kinds)],
                   set(range(1, 5 + len(kinds))))
    per_type = steps_per_dollar(history, costs)
    steps = _table(["instance type", "finished trials", "median last step", "median cost", "median steps per USD"],
                   [[_dash(r["instance_type"]) for r in per_type], [r["trials"] for r in per_type],
                    [f"{r['median_steps']:g}" for r in per_type],
                    format_usd_column([round(r["median_cost_micros"]) for r in per_type]),
                    [f"{r['median_steps_per_usd']:,.1f}" for r in per_type]], {1, 2, 3, 4})
    ranked = waste_by_trial(history, costs, attempts)
    worst = ranked[:top]
    note = shown(len(worst), len(ranked), "costtune report STUDY --format csv --section waste for all")
    worst_html = _table(["trial", "state", "instance type", "attempts", "preemptions", "re-run $", "trial cost",
                         "re-run share"],
                        [[r["trial"] for r in worst], [(r["state"], r["state"]) for r in worst],
                         [_dash(r["instance_type"]) for r in worst], [r["attempts"] for r in worst],
                         [r["preemptions"] for r in worst], format_usd_column([r["waste_micros"] for r in worst]),
                         format_usd_column([r["cost_micros"] for r in worst]),
                         [_pct(r["waste_pct_of_cost"]) for r in worst]],
                        {0, 3, 4, 5, 6, 7}) if worst else '<p class="empty">no trial was preempted or interrupted</p>'
    return (f"{line}{spend}<h2>steps per dollar by instance type</h2><p>Rungs are dollar levels: an instance "
            f"that reaches fewer steps per dollar gets less training done before each rung judges it.</p>{steps}"
            f"<h2>re-run money by trial, most first</h2>{worst_html}"
            + (f'<p class="empty">{escape(note)}</p>' if note else ""))


def improvements_html(history: History) -> str:
    data = cost_per_improvement(history)
    if not data:
        return _NO_TRIAL
    head = ["trial", history.metric, "previous best", "gain", "spent so far", "cost of gain", "USD per unit gain"]
    return _table(head, [[r["trial"] for r in data], [format_number(r["value"]) for r in data],
                         [format_number(r["previous_best"]) for r in data],
                         [format_number(Decimal(g) if isinstance(g := r["gain"], str) else g) for r in data],
                         format_usd_column([r["cumulative_micros"] for r in data]),
                         format_usd_column([r["cost_of_gain_micros"] for r in data]),
                         format_usd_decimals([r["usd_per_unit_gain"] for r in data])],
                  set(range(7)))


def policies_html(rows: Sequence[dict[str, Any]]) -> str:
    """The spend policies the study's launches ran under (``costtune.policies.status.study_verdicts``)."""
    if not rows:
        return "<p>No spend policy matched this study's launches.</p>"
    return _table(("policy", "allowed", "amended", "denied", "last denial"),
                  [[r["policy"] for r in rows], [r["allow"] for r in rows], [r["amend"] for r in rows],
                   [r["deny"] for r in rows], [r["last_denial"] or "-" for r in rows]], {1, 2, 3})


def render_html(study_name: str, history: History, attempts: Sequence[AttemptCostRow] | None = None, *,
                ladder: Sequence[int] | None = None, policies: Sequence[dict[str, Any]] | None = None) -> str:
    """The whole report as one HTML document string; ``attempts`` adds where the money went by placement,
    ``policies`` the spend policies its launches ran under and their denials."""
    best = history.best()
    outcomes = Outcomes.of(history.trials)  # a failed trial, or one stopped before a report, is no result
    improvements = cost_per_improvement(history)
    facts = [("objective", f"{history.metric} ({history.mode})"), ("trials", f"{len(history.trials)} "
             f"({outcomes.words()})"), ("total spend", format_usd(history.spent_micros))]
    if attempts is not None:
        billed = sum(a.charged_ms for a in attempts) / 1000
        simulated = any(a.provider == "simulated" for a in attempts)
        facts.append(("time billed (simulated)" if simulated else "time billed", format_duration(billed)))
    if best is None:
        facts.append(("best", "no trial with a result yet"))
    else:
        reached = next((r["cumulative_micros"] for r in improvements if r["trial"] == best.number), None)
        facts += [("best", f"{format_number(best.value)} (trial {best.number})"), ("best trial's cost",
                  format_usd(best.cost_micros))]
        if reached is not None:
            facts.append(("spent to reach it", format_usd(reached)))
    fact_html = "".join(f"<div><span>{escape(k)}</span>{escape(v)}</div>" for k, v in facts)
    title = escape(f"costtune report: {study_name}")
    costs = None if attempts is None else trial_costs(attempts)
    bars = "" if attempts is None else spend_bars(spend_by_placement(history, attempts))
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_CSS}</style></head><body>"
        f"<h1>{title}</h1><div class=\"facts\">{fact_html}</div>"
        f'<h2>charts</h2><div class="charts">{best_chart(history)}{scatter_chart(history)}{bars}</div>'
        f"<h2>cost per improvement</h2>{improvements_html(history)}"
        f"<h2>where the money went</h2>{spend_html(history, attempts)}"
        f"<h2>spend by instance type and market</h2>{placement_html(history, attempts)}"
        f"<h2>leaderboard (top 50)</h2>{leaderboard_html(history, costs=costs, ladder=ladder)}"
        + ("" if policies is None else f"<h2>spend policies</h2>{policies_html(policies)}")
        + "</body></html>\n"
    )
