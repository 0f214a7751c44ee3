"""The study report as one self-contained HTML file: inline CSS, hand-drawn SVG, no network.

A report gets mailed, attached to tickets and opened offline years later, so it cannot depend on a
CDN or a plotting library. Every piece of user-controlled text (study name, metric, parameters,
errors) goes through ``html.escape``; numbers are formatted by us.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from costtune.history import History
from costtune.money import format_usd
from costtune.reports import leaderboard
from costtune.reports.cost import (
    AttemptsFn,
    best_vs_spend,
    cost_per_improvement,
    format_params,
    pareto_front,
    preemption_summary,
    spend_by_placement,
    spend_summary,
    steps_per_dollar,
    waste_by_trial,
)
from costtune.store.reads import AttemptCostRow, trial_costs

_NO_TRIAL = '<p class="empty">no finished trial yet</p>'
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;
 color:#1d2330;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde;padding-bottom:4px}
.facts{display:flex;flex-wrap:wrap;gap:8px 28px;margin:10px 0}.facts div span{display:block;color:#667;font-size:12px}
table{border-collapse:collapse;font-size:13px;margin:4px 0}th,td{padding:3px 10px;border-bottom:1px solid #eef}
th{text-align:left;background:#f4f5fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
.failed{color:#b42318}.complete{color:#146c2e}.stopped{color:#8a6100}.running{color:#1559a8}
.empty{color:#667;font-style:italic}.charts{display:flex;flex-wrap:wrap;gap:16px}
svg{background:#fff;border:1px solid #e3e5ee}svg text{font:11px system-ui,sans-serif;fill:#333}
svg .title{font-size:13px;font-weight:600}svg .grid{stroke:#eceef4}svg .axis{stroke:#555}
svg .curve{fill:none;stroke:#2f6fde;stroke-width:2}svg .dot{fill:#9aa3b8;fill-opacity:.75}
svg .best{fill:#2f6fde}svg .pareto{fill:#e4572e}svg .front{fill:none;stroke:#e4572e;stroke-width:1.5}
svg .useful{fill:#3b9c6b}svg .waste{fill:#d9822b}.key{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
"""
USEFUL_RGB, WASTE_RGB = (0x3B, 0x9C, 0x6B), (0xD9, 0x82, 0x2B)  # the bar colours above, for screenshot tests


# -- a small SVG plotter ------------------------------------------------------------------------
def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick positions (1, 2 or 5 times a power of ten) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("ticks need finite bounds")
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step + 1e-9) * step
    ticks = []
    i = 0
    while True:
        tick = first + i * step
        ticks.append(round(tick, 12))
        if tick >= hi - 1e-9 * step:
            return ticks
        i += 1


class Plot:
    """One chart: axes with ticks and labels, then step lines, polylines and dots in data space."""

    def __init__(self, xs: Sequence[float], ys: Sequence[float], *, xlabel: str, ylabel: str,
                 xfmt: Callable[[float], str], yfmt: Callable[[float], str],
                 width: int = 520, height: int = 330) -> None:
        self.w, self.h = width, height
        self.left, self.right, self.top, self.bottom = 64, 34, 30, 46  # right: room for the last tick label
        self.xticks = nice_ticks(min(xs), max(xs))
        self.yticks = nice_ticks(min(ys), max(ys))
        self.xlabel, self.ylabel, self.xfmt, self.yfmt = xlabel, ylabel, xfmt, yfmt
        self.parts: list[str] = []

    def x(self, v: float) -> float:
        lo, hi = self.xticks[0], self.xticks[-1]
        return self.left + (v - lo) / (hi - lo) * (self.w - self.left - self.right)

    def y(self, v: float) -> float:
        lo, hi = self.yticks[0], self.yticks[-1]
        return self.h - self.bottom - (v - lo) / (hi - lo) * (self.h - self.top - self.bottom)

    def step(self, points: Sequence[tuple[float, float]], cls: str = "curve") -> None:
        """Hold each y until the next x, then jump: a best-so-far curve."""
        if not points:
            return
        d = [f"M{self.x(points[0][0]):.1f},{self.y(points[0][1]):.1f}"]
        for px, py in points[1:]:
            d.append(f"H{self.x(px):.1f}V{self.y(py):.1f}")
        self.parts.append(f'<path class="{cls}" d="{"".join(d)}"/>')

    def line(self, points: Sequence[tuple[float, float]], cls: str) -> None:
        coords = " ".join(f"{self.x(px):.1f},{self.y(py):.1f}" for px, py in points)
        self.parts.append(f'<polyline class="{cls}" points="{coords}"/>')

    def dots(self, points: Sequence[tuple[float, float, str, str]], r: float = 4) -> None:
        """Points as (x, y, css class, tooltip text); the tooltip is escaped here."""
        for px, py, cls, tip in points:
            self.parts.append(f'<circle class="{cls}" cx="{self.x(px):.1f}" cy="{self.y(py):.1f}" r="{r}">'
                              f"<title>{escape(tip)}</title></circle>")

    def svg(self, title: str, ident: str) -> str:
        axes = []
        x0, x1 = self.left, self.w - self.right
        y0, y1 = self.h - self.bottom, self.top
        for t in self.xticks:
            px = self.x(t)
            axes.append(f'<line class="grid" x1="{px:.1f}" y1="{y0}" x2="{px:.1f}" y2="{y1}"/>'
                        f'<text x="{px:.1f}" y="{y0 + 15}" text-anchor="middle">{escape(self.xfmt(t))}</text>')
        for t in self.yticks:
            py = self.y(t)
            axes.append(f'<line class="grid" x1="{x0}" y1="{py:.1f}" x2="{x1}" y2="{py:.1f}"/>'
                        f'<text x="{x0 - 6}" y="{py + 4:.1f}" text-anchor="end">{escape(self.yfmt(t))}</text>')
        axes.append(f'<line class="axis" x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}"/>'
                    f'<line class="axis" x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}"/>')
        labels = (f'<text class="title" x="{x0}" y="18">{escape(title)}</text>'
                  f'<text x="{(x0 + x1) / 2:.0f}" y="{self.h - 8}" text-anchor="middle">{escape(self.xlabel)}</text>'
                  f'<text x="14" y="{(y0 + y1) / 2:.0f}" text-anchor="middle" '
                  f'transform="rotate(-90 14 {(y0 + y1) / 2:.0f})">{escape(self.ylabel)}</text>')
        return (f'<svg id="{ident}" xmlns="http://www.w3.org/2000/svg" width="{self.w}" height="{self.h}" '
                f'viewBox="0 0 {self.w} {self.h}" role="img" aria-label="{escape(title)}">'
                f'{"".join(axes)}{labels}{"".join(self.parts)}</svg>')


def _usd_tick(usd: float) -> str:
    """Plain decimals, never ``$5e-05``: sweeps of tiny local trials cost fractions of a cent."""
    text = f"{usd:.8f}".rstrip("0").rstrip(".")
    return f"${text or '0'}"


def _num(value: float) -> str:
    return f"{value:.4g}"


# -- the report ---------------------------------------------------------------------------------
def best_chart(history: History) -> str:
    curve = [(p["cumulative_micros"] / 1_000_000, p["best"]) for p in best_vs_spend(history)
             if p["best"] is not None]
    if not curve:
        return _NO_TRIAL
    xs = [0.0] + [c[0] for c in curve]
    plot = Plot(xs, [c[1] for c in curve], xlabel="cumulative spend (USD)", ylabel=f"best {history.metric}",
                xfmt=_usd_tick, yfmt=_num)
    plot.step(curve)
    plot.dots([(r["cumulative_micros"] / 1_000_000, r["value"], "best",
                f"trial {r['trial']}: {history.metric}={r['value']:.6g} after {format_usd(r['cumulative_micros'])}")
               for r in cost_per_improvement(history)], r=3.5)
    return plot.svg(f"best {history.metric} vs cumulative dollars", "best-vs-spend")


def scatter_chart(history: History) -> str:
    trials = [t for t in history.completed() if math.isfinite(t.value)]  # type: ignore[arg-type]
    if not trials:
        return _NO_TRIAL
    front = pareto_front(history)
    on_front = {t.number for t in front}
    trials.sort(key=lambda t: t.number in on_front)  # front dots drawn last, on top
    xs = [0.0] + [t.cost_micros / 1_000_000 for t in trials]
    plot = Plot(xs, [t.value for t in trials], xlabel="trial cost (USD)",  # type: ignore[misc]
                ylabel=history.metric, xfmt=_usd_tick, yfmt=_num)
    plot.line([(t.cost_micros / 1_000_000, t.value) for t in front], "front")  # type: ignore[misc]
    plot.dots([(t.cost_micros / 1_000_000, t.value, "pareto" if t.number in on_front else "dot",  # type: ignore[misc]
                f"trial {t.number}: {history.metric}={t.value:.6g} cost {format_usd(t.cost_micros)} "
                f"{format_params(t.params)}") for t in trials])
    return plot.svg(f"{history.metric} vs cost (Pareto front in red)", "metric-vs-cost")


def spend_bars(rows: Sequence[dict[str, Any]], width: int = 520) -> str:
    """Horizontal bars of spend per instance type and market, useful money then preemption waste."""
    if not rows:
        return '<p class="empty">no attempt records</p>'
    bar, gap, top, left, right = 22, 10, 34, 150, 70
    height = top + len(rows) * (bar + gap) + 34
    scale = (width - left - right) / (max(r["cost_micros"] for r in rows) or 1)
    parts = []
    for i, r in enumerate(rows):
        y = top + i * (bar + gap)
        label = f"{r['instance_type'] or 'unattributed'} / {r['market'] or '-'}"
        useful, waste = max(0, r["useful_micros"]) * scale, max(0, r["waste_micros"]) * scale
        tip = (f"{label}: {format_usd(r['cost_micros'])} spent, {format_usd(r['waste_micros'])} lost to "
               f"{r['preemptions']} preemptions")
        parts.append(f'<text x="{left - 6}" y="{y + bar / 2 + 4:.1f}" text-anchor="end">{escape(label)}</text>'
                     f'<g><title>{escape(tip)}</title>'
                     f'<rect class="useful" x="{left}" y="{y}" width="{useful:.1f}" height="{bar}"/>'
                     f'<rect class="waste" x="{left + useful:.1f}" y="{y}" width="{waste:.1f}" height="{bar}"/></g>'
                     f'<text x="{left + useful + waste + 4:.1f}" y="{y + bar / 2 + 4:.1f}">'
                     f"{escape(format_usd(r['cost_micros']))}</text>")
    key_y = height - 14
    parts.append(f'<rect class="useful" x="{left}" y="{key_y - 9}" width="10" height="10"/>'
                 f'<text x="{left + 14}" y="{key_y}">useful</text>'
                 f'<rect class="waste" x="{left + 70}" y="{key_y - 9}" width="10" height="10"/>'
                 f'<text x="{left + 84}" y="{key_y}">lost to preemptions</text>')
    title = "spend by instance type and market"
    return (f'<svg id="spend-by-instance" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{title}">'
            f'<text class="title" x="{left}" y="18">{title}</text>{"".join(parts)}</svg>')


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], numeric: set[int]) -> str:
    """Cells are escaped; a cell given as ``(text, css class)`` gets the class."""
    out = ["<table><thead><tr>", *(f"<th>{escape(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>")
        for i, cell in enumerate(row):
            text, cls = cell if isinstance(cell, tuple) else (cell, "")
            classes = " ".join(c for c in (cls, "n" if i in numeric else "") if c)
            attr = f' class="{classes}"' if classes else ""
            out.append(f"<td{attr}>{escape(str(text))}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _dash(value: Any, fmt: Callable[[Any], str] = str) -> str:
    return "-" if value is None else fmt(value)


def leaderboard_html(history: History, limit: int = 50, costs: leaderboard.Costs | None = None) -> str:
    data = leaderboard.rows(history, costs)
    if not data:
        return '<p class="empty">no trial yet</p>'
    total = sum(t.cost_micros for t in history.trials) or 1
    rows = [[_dash(r["rank"]), r["trial"], (r["state"], r["state"]), _dash(r["value"], lambda v: f"{v:.6g}"),
             format_params(r["params"]), format_usd(r["cost_micros"]), f"{100 * r['cost_micros'] / total:.1f}%",
             _dash(r["instance_type"]), _dash(r["preemptions"]), _dash(r["waste_micros"], format_usd),
             _dash(r["duration_s"], lambda s: f"{s:.1f}s"), r["attempts"], r["error"] or ""]
            for r in data[:limit]]
    more = f'<p class="empty">{len(data) - limit} more trials not shown</p>' if len(data) > limit else ""
    head = ["#", "trial", "state", history.metric, "params", "cost", "share of spend", "instance", "preempted",
            "waste", "time", "tries", "error"]
    return _table(head, rows, {0, 1, 3, 5, 6, 8, 9, 10, 11}) + more


def placement_html(history: History, attempts: Sequence[AttemptCostRow] | None, top: int = 20) -> str:
    """Preemption waste (sweep and worst trials), spend by instance type and market, steps per dollar."""
    if attempts is None:
        return '<p class="empty">no attempt records</p>'
    costs = trial_costs(attempts)
    p = preemption_summary(history, attempts)
    share = _dash(p["waste_pct_of_spend"], lambda v: f"{v}%")
    line = (f"<p>{p['preemptions']} preemptions in {p['trials_preempted']} trials lost "
            f"{escape(format_usd(p['waste_micros']))}: {escape(share)} of {escape(format_usd(p['spend_micros']))} "
            "spent (work done after a trial's last checkpoint, paid for and run again).</p>")
    spend = _table(["instance type", "market", "trials", "attempts", "preemptions", "spend", "useful", "waste"],
                   [[_dash(g["instance_type"]), _dash(g["market"]), g["trials"], g["attempts"], g["preemptions"],
                     format_usd(g["cost_micros"]), format_usd(g["useful_micros"]), format_usd(g["waste_micros"])]
                    for g in spend_by_placement(history, attempts)], {2, 3, 4, 5, 6, 7})
    steps = _table(["instance type", "finished trials", "median steps", "median cost", "median steps per USD"],
                   [[_dash(r["instance_type"]), r["trials"], f"{r['median_steps']:g}",
                     format_usd(round(r["median_cost_micros"])), f"{r['median_steps_per_usd']:,.1f}"]
                    for r in steps_per_dollar(history, costs)], {1, 2, 3, 4})
    worst = waste_by_trial(history, costs)[:top]
    worst_html = _table(["trial", "state", "instance type", "attempts", "preemptions", "waste", "trial cost",
                         "waste share"],
                        [[r["trial"], (r["state"], r["state"]), _dash(r["instance_type"]), r["attempts"],
                          r["preemptions"], format_usd(r["waste_micros"]), format_usd(r["cost_micros"]),
                          _dash(r["waste_pct_of_cost"], lambda v: f"{v}%")] for r in worst],
                        {0, 3, 4, 5, 6, 7}) if worst else '<p class="empty">no trial was preempted</p>'
    return (f"{line}{spend}<h2>steps per dollar by instance type</h2><p>Rungs are dollar levels: an instance "
            f"that reaches fewer steps per dollar gets less training done before each rung judges it.</p>{steps}"
            f"<h2>preemption waste by trial (top {top})</h2>{worst_html}")


def improvements_html(history: History) -> str:
    data = cost_per_improvement(history)
    if not data:
        return _NO_TRIAL
    rows = [[r["trial"], f"{r['value']:.6g}", _dash(r["previous_best"], lambda v: f"{v:.6g}"),
             _dash(r["gain"], lambda v: f"{v:.6g}"), format_usd(r["cumulative_micros"]),
             format_usd(r["cost_of_gain_micros"]), _dash(r["usd_per_unit_gain"], lambda v: f"${float(v):,.6g}")]
            for r in data]
    head = ["trial", history.metric, "previous best", "gain", "spent so far", "cost of gain", "USD per unit gain"]
    return _table(head, rows, set(range(7)))


def spend_html(history: History, attempts_fn: AttemptsFn | None) -> str:
    s = spend_summary(history, attempts_fn)
    total = s["total_micros"] or 1
    rows = [[(state, state), v["trials"], format_usd(v["micros"]), f"{100 * v['micros'] / total:.1f}%"]
            for state, v in s["by_state"].items()]
    table = _table(["state", "trials", "spend", "share"], rows, {1, 2, 3}) if rows else '<p class="empty">no spend</p>'
    waste = "unknown" if s["waste_micros"] is None else format_usd(s["waste_micros"])
    return (f"{table}<p>failed trials cost {escape(format_usd(s['failed_micros']))}; "
            f"{s['interrupted_attempts']} attempts were cut short and re-run "
            f"({s['retried_trials']} trials); those earlier attempts cost {escape(waste)} "
            "(what preemptions lost after the last checkpoint is below).</p>")


def render_html(study_name: str, history: History, attempts_fn: AttemptsFn | None = None,
                attempts: Sequence[AttemptCostRow] | None = None) -> str:
    """The whole report as one HTML document string; ``attempts`` adds the placement and waste views."""
    best = history.best()
    total = sum(t.cost_micros for t in history.trials)
    finished = sum(t.state.finished for t in history.trials)
    improvements = cost_per_improvement(history)
    facts = [("objective", f"{history.metric} ({history.mode})"), ("trials", f"{finished} finished / "
             f"{len(history.trials)}"), ("total spend", format_usd(total))]
    if best is None:
        facts.append(("best", "no finished trial yet"))
    else:
        reached = next((r["cumulative_micros"] for r in improvements if r["trial"] == best.number), None)
        facts += [("best", f"{best.value:.6g} (trial {best.number})"), ("best trial's cost",
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
        f"<h2>spend by state</h2>{spend_html(history, attempts_fn)}"
        f"<h2>spend by instance type and preemption waste</h2>{placement_html(history, attempts)}"
        f"<h2>leaderboard (top 50)</h2>{leaderboard_html(history, costs=costs)}"
        "</body></html>\n"
    )
