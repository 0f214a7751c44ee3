"""A small SVG plotter for the HTML report: axes, step curves, marked points, stacked bars.

Any finite float can be plotted: axis arithmetic runs on exact ``Decimal`` values, so a range from
-1.7e308 to 1.7e308 does not overflow and one from 5e-324 to 1e-323 does not underflow; equal values
get an axis around them; non-finite values are never drawn (callers filter them, ``Plot`` refuses
them). Tick labels carry as many digits as it takes to tell neighbouring ticks apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from html import escape

_PREC = 40  # digits of axis arithmetic: far more than a float holds (17), so ticks are exact


def finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def axis_ticks(lo: float | Decimal, hi: float | Decimal, count: int = 5) -> list[Decimal]:
    """Round tick positions (1, 2 or 5 times a power of ten) covering [lo, hi], as exact decimals.

    Raises ``ValueError`` for a non-finite bound. Equal bounds get a tenth of their size (or 1 at
    zero) on each side.
    """
    with localcontext() as ctx:
        ctx.prec = _PREC
        low, high = Decimal(lo), Decimal(hi)
        if not (low.is_finite() and high.is_finite()):
            raise ValueError("ticks need finite bounds")
        if high < low:
            low, high = high, low
        if high == low:
            pad = abs(low) / 10 or Decimal(1)
            low, high = low - pad, high + pad
        raw = (high - low) / max(1, count)
        power = Decimal(1).scaleb(raw.adjusted())
        step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
        first = (low / step).to_integral_value(rounding=ROUND_FLOOR) * step
        last = (high / step).to_integral_value(rounding=ROUND_CEILING) * step
        n = int((last - first) / step)
        return [first + i * step for i in range(n + 1)]


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """``axis_ticks`` as floats (for tests and callers that only meet moderate ranges)."""
    return [float(t) for t in axis_ticks(lo, hi, count)]


def tick_labels(ticks: Sequence[Decimal]) -> list[Decimal]:
    """Ticks rounded to the digits that tell neighbours apart (exact values, ready to format)."""
    if len(ticks) < 2:
        return list(ticks)
    step = abs(ticks[1] - ticks[0])
    with localcontext() as ctx:
        ctx.prec = _PREC
        return [t.quantize(Decimal(1).scaleb(step.adjusted())) if t else Decimal(0) for t in ticks]


def format_tick(value: Decimal) -> str:
    """``0.25``, ``1500``, ``-3.2``, ``2e+308``, ``5e-324``: plain between 1e-5 and 1e9, else scientific."""
    if not value:
        return "0"
    value = value.normalize()
    if -5 <= value.adjusted() <= 8:
        return format(value, "f")
    return format(value, "e")


class Plot:
    """One chart: axes with ticks and labels, then step lines, polylines and marks in data space."""

    def __init__(self, xs: Sequence[float], ys: Sequence[float], *, xlabel: str, ylabel: str,
                 xfmt: Callable[[Decimal], str] = format_tick, yfmt: Callable[[Decimal], str] = format_tick,
                 width: int = 520, height: int = 330) -> None:
        xs, ys = finite(xs), finite(ys)
        if not xs or not ys:
            raise ValueError("a plot needs at least one finite x and y")
        self.w, self.h = width, height
        self.left, self.right, self.top, self.bottom = 70, 34, 30, 46  # right: room for the last tick label
        self.xticks = axis_ticks(min(xs), max(xs))
        self.yticks = axis_ticks(min(ys), max(ys))
        self.xlabel, self.ylabel, self.xfmt, self.yfmt = xlabel, ylabel, xfmt, yfmt
        self.parts: list[str] = []

    @staticmethod
    def _frac(v: float | Decimal, ticks: Sequence[Decimal]) -> float:
        """Where ``v`` sits between the first and last tick, 0..1, computed exactly."""
        with localcontext() as ctx:
            ctx.prec = _PREC
            return float((Decimal(v) - ticks[0]) / (ticks[-1] - ticks[0]))

    def x(self, v: float | Decimal) -> float:
        return self.left + self._frac(v, self.xticks) * (self.w - self.left - self.right)

    def y(self, v: float | Decimal) -> float:
        return self.h - self.bottom - self._frac(v, self.yticks) * (self.h - self.top - self.bottom)

    def step(self, points: Sequence[tuple[float, float]], cls: str = "curve") -> None:
        """Hold each y until the next x, then jump: a best-so-far curve. Non-finite points are skipped."""
        points = [p for p in points if math.isfinite(p[0]) and math.isfinite(p[1])]
        if not points:
            return
        d = [f"M{self.x(points[0][0]):.1f},{self.y(points[0][1]):.1f}"]
        for px, py in points[1:]:
            d.append(f"H{self.x(px):.1f}V{self.y(py):.1f}")
        self.parts.append(f'<path class="{cls}" d="{"".join(d)}"/>')

    def line(self, points: Sequence[tuple[float, float]], cls: str) -> None:
        coords = " ".join(f"{self.x(px):.1f},{self.y(py):.1f}" for px, py in points
                          if math.isfinite(px) and math.isfinite(py))
        if coords:
            self.parts.append(f'<polyline class="{cls}" points="{coords}"/>')

    def dots(self, points: Sequence[tuple[float, float, str, str]], r: float = 4) -> None:
        """Points as (x, y, css class, tooltip text); a class with ``cross`` draws an x; tooltips are escaped."""
        for px, py, cls, tip in points:
            if not (math.isfinite(px) and math.isfinite(py)):
                continue
            cx, cy = self.x(px), self.y(py)
            title = f"<title>{escape(tip)}</title>"
            if "cross" in cls.split():
                self.parts.append(f'<path class="{cls}" d="M{cx - r:.1f},{cy - r:.1f}L{cx + r:.1f},{cy + r:.1f}'
                                  f'M{cx - r:.1f},{cy + r:.1f}L{cx + r:.1f},{cy - r:.1f}">{title}</path>')
            else:
                self.parts.append(f'<circle class="{cls}" cx="{cx:.1f}" cy="{cy:.1f}" r="{r}">{title}</circle>')

    def legend(self, items: Sequence[tuple[str, str]]) -> None:
        """A key along the top right: (css class of the mark, text)."""
        x = self.w - self.right
        for cls, text in reversed(items):
            x -= 14 + 6.5 * len(text)
            mark = (f'<path class="{cls}" d="M{x - 3},{12}L{x + 3},{18}M{x - 3},{18}L{x + 3},{12}"/>'
                    if "cross" in cls.split() else f'<circle class="{cls}" cx="{x}" cy="15" r="4"/>')
            self.parts.append(f'{mark}<text x="{x + 8}" y="19">{escape(text)}</text>')

    def svg(self, title: str, ident: str) -> str:
        axes = []
        x0, x1 = self.left, self.w - self.right
        y0, y1 = self.h - self.bottom, self.top
        for t, label in zip(self.xticks, tick_labels(self.xticks), strict=True):
            px = self.x(t)
            axes.append(f'<line class="grid" x1="{px:.1f}" y1="{y0}" x2="{px:.1f}" y2="{y1}"/>'
                        f'<text x="{px:.1f}" y="{y0 + 15}" text-anchor="middle">{escape(self.xfmt(label))}</text>')
        for t, label in zip(self.yticks, tick_labels(self.yticks), strict=True):
            py = self.y(t)
            axes.append(f'<line class="grid" x1="{x0}" y1="{py:.1f}" x2="{x1}" y2="{py:.1f}"/>'
                        f'<text x="{x0 - 6}" y="{py + 4:.1f}" text-anchor="end">{escape(self.yfmt(label))}</text>')
        axes.append(f'<line class="axis" x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}"/>'
                    f'<line class="axis" x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}"/>')
        labels = (f'<text class="title" x="{x0}" y="18">{escape(title)}</text>'
                  f'<text x="{(x0 + x1) / 2:.0f}" y="{self.h - 8}" text-anchor="middle">{escape(self.xlabel)}</text>'
                  f'<text x="14" y="{(y0 + y1) / 2:.0f}" text-anchor="middle" '
                  f'transform="rotate(-90 14 {(y0 + y1) / 2:.0f})">{escape(self.ylabel)}</text>')
        return (f'<svg id="{ident}" xmlns="http://www.w3.org/2000/svg" width="{self.w}" height="{self.h}" '
                f'viewBox="0 0 {self.w} {self.h}" role="img" aria-label="{escape(title)}">'
                f'{"".join(axes)}{labels}{"".join(self.parts)}</svg>')


def stacked_bars(rows: Sequence[tuple[str, Sequence[tuple[str, int]], str]], *, title: str, ident: str,
                 key: Sequence[tuple[str, str]], width: int = 560) -> str:
    """Horizontal bars, one per (label, [(css class, amount)], text at its end), scaled to the longest.

    Amounts are integers (micro-dollars); each bar's segments are drawn in order, and the key
    (css class, text) is drawn underneath.
    """
    bar, gap, top, left, right = 22, 10, 34, 170, 80
    height = top + len(rows) * (bar + gap) + 34
    longest = max((sum(max(0, a) for _, a in parts) for _, parts, _ in rows), default=0) or 1
    scale = (width - left - right) / longest
    out = []
    for i, (label, parts, end) in enumerate(rows):
        y = top + i * (bar + gap)
        x = float(left)
        segs = []
        for cls, amount in parts:
            w = max(0, amount) * scale
            if w > 0:
                segs.append(f'<rect class="{cls}" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar}"/>')
            x += w
        out.append(f'<text x="{left - 6}" y="{y + bar / 2 + 4:.1f}" text-anchor="end">{escape(label)}</text>'
                   f'<g><title>{escape(label)}: {escape(end)}</title>{"".join(segs)}</g>'
                   f'<text x="{x + 4:.1f}" y="{y + bar / 2 + 4:.1f}">{escape(end)}</text>')
    kx, ky = float(left), height - 14
    for cls, text in key:
        out.append(f'<rect class="{cls}" x="{kx:.0f}" y="{ky - 9}" width="10" height="10"/>'
                   f'<text x="{kx + 14:.0f}" y="{ky}">{escape(text)}</text>')
        kx += 24 + 6.2 * len(text)
    return (f'<svg id="{ident}" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
            f'<text class="title" x="{left}" y="18">{escape(title)}</text>{"".join(out)}</svg>')
