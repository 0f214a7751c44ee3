"""The tables ``vs_optuna.py`` prints: per method, then each costtune recipe against the best Optuna method.

A run is a best-so-far curve: ``[(cumulative usd, best loss so far), ...]`` after each finished trial.
Cells are median [25th, 75th percentile] over seeds; "never" / "-" where a run had not got there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Curve = list[tuple[float, float]]
FRACTIONS = (0.25, 0.5, 1.0)
_INF_STANDIN = 1e18  # percentiles of lists holding inf, without inf - inf = nan


def dollars_to(curve: Curve, target: float) -> float:
    """Spend when the best loss first reached ``target``; inf if it never did."""
    return next((usd for usd, best in curve if best <= target), math.inf)


def best_at(curve: Curve, usd: float) -> float:
    """The best loss known once ``usd`` was spent (trials finishing by then); inf before any."""
    return min((best for spent, best in curve if spent <= usd + 1e-9), default=math.inf)


def quartiles(xs: Sequence[float]) -> tuple[float, float, float]:
    """25th, 50th, 75th percentiles (linear interpolation); a percentile reaching into inf values is inf."""
    arr = np.minimum(np.asarray(xs, dtype=float), _INF_STANDIN)
    q = np.percentile(arr, [25, 50, 75])
    finite = arr[arr < _INF_STANDIN]
    top = float(finite.max()) if finite.size else -math.inf
    # between the last finite value and an inf one: inf (not a huge number interpolated towards the stand-in)
    return tuple(math.inf if v > top + 1e-12 else float(v) for v in q)  # type: ignore[return-value]


def _fmt(x: float, usd: bool) -> str:
    if math.isinf(x):
        return "never" if usd else "-"
    return f"${x:.3f}" if usd else f"{x:.4f}"


def _cell(xs: Sequence[float], usd: bool = False) -> str:
    q25, q50, q75 = quartiles(xs)
    return f"{_fmt(q50, usd)} [{_fmt(q25, usd)}, {_fmt(q75, usd)}]"


def summarize(curves: list[Curve], target: float, budget: float) -> dict[str, float]:
    """Per-method numbers over seeds: hit rate, hits, median $ to target, median best at each fraction."""
    to_target = [dollars_to(c, target) for c in curves]
    out = {
        "hit": sum(math.isfinite(x) for x in to_target) / len(curves),
        "hits": float(sum(math.isfinite(x) for x in to_target)),
        "to_target": quartiles(to_target)[1],
        "trials": float(np.median([len(c) for c in curves])),
    }
    for f in FRACTIONS:
        out[f"best@{f}"] = quartiles([best_at(c, f * budget) for c in curves])[1]
    return out


def best_optuna(stats: dict[str, dict[str, float]]) -> str | None:
    """The Optuna method with the lowest median $ to target (ties: more hits, then lower final best)."""
    optuna = [m for m in stats if not m.startswith("costtune-")]
    if not optuna:
        return None
    return min(optuna, key=lambda m: (stats[m]["to_target"], -stats[m]["hits"], stats[m]["best@1.0"]))


def print_workload(name: str, curves_by_method: dict[str, list[Curve]], target: float, budget: float,
                   max_steps: int) -> None:
    """The per-method table, then one comparison line per costtune recipe."""
    print()
    print(f"{name}: budget ${budget:.2f}, target loss {target}, max steps {max_steps}")
    header = (
        f"{'method':<22} {'hit':>5}  {'$ to target':<28} "
        + " ".join(f"{f'best @{f:.0%}':<26}" for f in FRACTIONS)
        + f" {'trials':>6}"
    )
    print(header)
    print("-" * len(header))
    stats: dict[str, dict[str, float]] = {}
    for method, curves in curves_by_method.items():
        stats[method] = summarize(curves, target, budget)
        to_target = [dollars_to(c, target) for c in curves]
        bests = " ".join(f"{_cell([best_at(c, f * budget) for c in curves]):<26}" for f in FRACTIONS)
        print(f"{method:<22} {stats[method]['hit']:>5.0%}  {_cell(to_target, usd=True):<28} {bests} "
              f"{stats[method]['trials']:>6.0f}")
    ref = best_optuna(stats)
    if ref is None:
        return
    optuna = [m for m in stats if not m.startswith("costtune-")]
    best_per_fraction = {f: min(stats[m][f"best@{f}"] for m in optuna) for f in FRACTIONS}
    for method in (m for m in stats if m.startswith("costtune-")):
        mine, theirs = stats[method], stats[ref]
        if math.isfinite(theirs["to_target"]) and theirs["to_target"] > 0:
            ratio = f"{mine['to_target'] / theirs['to_target']:.2f}"
        else:
            ratio = "n/a (best Optuna median: never)"
        verdicts = " ".join(
            f"{f:.0%}:{'yes' if mine[f'best@{f}'] <= best_per_fraction[f] else 'no'}" for f in FRACTIONS
        )
        print(f"{method}: $ to target / {ref} = {ratio}; hits {mine['hits']:.0f} vs {theirs['hits']:.0f}; "
              f"median best at least as good as every Optuna method's at {verdicts}")
