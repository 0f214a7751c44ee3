"""costtune against Optuna when dollars are the budget, on simulated cloud prices.

Every method tunes the workload's space plus the instance type (m5.large, c5.xlarge, g4dn.xlarge,
us-east-1 spot, bundled prices, AWS per-second billing with a 60 s minimum, 60 s start-up per trial)
until a fixed dollar budget is spent. Optuna does not know about money, so its trials are billed
by ``optuna_sim``; costtune runs its own simulated provider. Reported per method, median [IQR] over
seeds: dollars until the best loss reaches the workload's target (inf: never), the best loss after
25/50/100% of the budget, and the number of trials.

    python benchmarks/vs_optuna.py             # 10 seeds, both workloads (a few minutes)
    python benchmarks/vs_optuna.py --quick     # 3 seeds
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from optuna_sim import INSTANCE_TYPES, MARKET, METHODS, REGION, STARTUP_SECONDS, Curve, bill_micros, run_optuna

from costtune.demo.bench_workloads import MAX_STEPS, SPACES, TARGETS

# About 3x what random search spends (median) before its best reaches the target: every method can
# get there, and the 25/50/100% columns still tell fast from slow. A full trial with a random instance
# type averages ~$0.008 (mlp_tabular) and ~$0.006 (xgb_like).
BUDGETS_USD: dict[str, float] = {"mlp_tabular": 1.0, "xgb_like": 0.75}
FRACTIONS = (0.25, 0.5, 1.0)
_INF_STANDIN = 1e18  # percentiles of lists holding inf, without inf - inf = nan


RECIPES = ("cost", "cost/10", "asha")  # costtune configurations, described in ``sweep``


def rung_usd(budget_usd: float) -> tuple[float, float]:
    """A rule a user can apply, not a fit to the workload: the first rung buys twice the start-up of the
    priciest instance choice (so every trial reports before it is judged), a trial may spend at most
    1/20 of the budget."""
    startup = max(bill_micros(STARTUP_SECONDS, instance) for instance in INSTANCE_TYPES) / 1_000_000
    return round(2 * startup, 4), round(budget_usd / 20, 4)


def sweep(workload: str, seed: int, budget_usd: float, recipe: str) -> dict:
    """The costtune sweep file (as a mapping) for one run.

    ``cost``: every trial runs to its end, proposed by the cost-aware Bayesian sampler (expected
    improvement per predicted dollar, cooling as the budget is spent; instance type chosen per
    configuration) with its defaults (5 random start-up trials); ``cost/N``: the same with N random
    start-up trials; ``asha``: ``cost`` plus dollar-rung ASHA.
    """
    sampler: dict = {"type": "bayes", "seed": seed, "cost_aware": True}
    if "/" in recipe:
        sampler["n_startup"] = int(recipe.split("/", 1)[1])
    scheduler: dict = {"type": "fifo"}
    if recipe.startswith("asha") or recipe == "hb":  # hb: dollar Hyperband on the same rungs
        min_usd, max_usd = rung_usd(budget_usd)
        kind = "hyperband" if recipe == "hb" else "asha"
        scheduler = {"type": kind, "min_usd": min_usd, "max_usd": max_usd, "eta": 3}
    return {
        "name": f"bench-{workload}-{seed}",
        "objective": {"metric": "loss", "mode": "min"},
        "space": SPACES[workload],
        "sampler": sampler,
        "scheduler": scheduler,
        "budget": {"usd": budget_usd},
        "resources": {
            "provider": "simulated", "region": REGION, "market": MARKET, "workers": 4,
            "instance_type": {"type": "categorical", "choices": list(INSTANCE_TYPES)},
            "simulation": {
                "workload": f"costtune.demo.bench_workloads:{workload}", "max_steps": MAX_STEPS[workload],
                "startup_seconds": int(STARTUP_SECONDS), "preemptions_per_hour": 0, "seed": seed,
            },
        },
    }


def run_costtune(workload: str, seed: int, budget_usd: float, recipe: str) -> Curve:
    """One budgeted costtune run in a throw-away SQLite store; the best-so-far curve in dollars."""
    from costtune.reports.cost import best_vs_spend
    from costtune.runner.simulate import run_simulated
    from costtune.spec import parse_sweep
    from costtune.store import Store

    spec = parse_sweep(sweep(workload, seed, budget_usd, recipe))
    with tempfile.TemporaryDirectory(prefix="costtune-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'x.db'}"
        run_simulated(spec, url)
        store = Store(url)
        try:
            # The store is fresh, so its one study is this run's (whatever name the spec settled on).
            (study,) = store.list_studies()
            history = store.history(study.id)
        finally:
            store.close()
    return [
        (row["cumulative_micros"] / 1_000_000, math.inf if row["best"] is None else float(row["best"]))
        for row in best_vs_spend(history)
    ]


def dollars_to(curve: Curve, target: float) -> float:
    """Spend when the best loss first reached ``target``; inf if it never did."""
    return next((usd for usd, best in curve if best <= target), math.inf)


def best_at(curve: Curve, usd: float) -> float:
    """The best loss known once ``usd`` was spent (trials finishing by then)."""
    return min((best for spent, best in curve if spent <= usd + 1e-9), default=math.inf)


def _quartiles(xs: list[float]) -> tuple[float, float, float]:
    arr = np.minimum(np.asarray(xs, dtype=float), _INF_STANDIN)
    q = np.percentile(arr, [25, 50, 75])
    return tuple(math.inf if v >= _INF_STANDIN / 2 else float(v) for v in q)  # type: ignore[return-value]


def _fmt(x: float, usd: bool) -> str:
    if math.isinf(x):
        return "never" if usd else "-"
    return f"${x:.3f}" if usd else f"{x:.4f}"


def _cell(xs: list[float], usd: bool = False) -> str:
    q25, q50, q75 = _quartiles(xs)
    return f"{_fmt(q50, usd)} [{_fmt(q25, usd)}, {_fmt(q75, usd)}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10, help="repetitions per method and workload (default 10)")
    parser.add_argument("--workloads", default=",".join(BUDGETS_USD), help="comma-separated subset")
    parser.add_argument("--costtune", default=",".join(RECIPES),
                        help=f"costtune recipes to run, comma-separated (default {','.join(RECIPES)})")
    parser.add_argument("--optuna", default=",".join(METHODS),
                        help=f"Optuna methods to run, comma-separated, or none (default {','.join(METHODS)})")
    parser.add_argument("--quick", action="store_true", help="3 seeds (overrides --seeds)")
    args = parser.parse_args(argv)
    seeds = 3 if args.quick else args.seeds
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for w in workloads:
        if w not in BUDGETS_USD:
            parser.error(f"unknown workload {w!r}; known: {', '.join(BUDGETS_USD)}")
    methods: list[str] = [m.strip() for m in args.optuna.split(",") if m.strip() and m.strip() != "none"]
    for m in methods:
        if m not in METHODS:
            parser.error(f"unknown Optuna method {m!r}; known: {', '.join(METHODS)}")
    methods += [f"costtune-{s.strip()}" for s in args.costtune.split(",") if s.strip()]

    results: dict[str, dict[str, list[Curve]]] = {}
    for workload in workloads:
        budget, target = BUDGETS_USD[workload], TARGETS[workload]
        results[workload] = {m: [] for m in methods}
        for seed in range(seeds):
            for method in methods:
                t0 = time.perf_counter()
                if method.startswith("costtune-"):
                    curve = run_costtune(workload, seed, budget, method.removeprefix("costtune-"))
                else:
                    curve = run_optuna(workload, seed, budget, method)
                results[workload][method].append(curve)
                print(
                    f"{workload} seed {seed} {method}: to target {_fmt(dollars_to(curve, target), True)}, "
                    f"best {_fmt(best_at(curve, budget), False)}, {len(curve)} trials, "
                    f"{time.perf_counter() - t0:.1f}s",
                    file=sys.stderr,
                    flush=True,
                )

    print(f"seeds: {seeds}; cells: median [IQR]; instance types {', '.join(INSTANCE_TYPES)} ({REGION} {MARKET}),")
    print(f"billed per second with a 60 s minimum, {STARTUP_SECONDS:.0f} s start-up per trial")
    for workload, by_method in results.items():
        budget, target = BUDGETS_USD[workload], TARGETS[workload]
        print()
        print(f"{workload}: budget ${budget:.2f}, target loss {target}, max steps {MAX_STEPS[workload]}")
        header = (
            f"{'method':<22} {'hit':>5}  {'$ to target':<28} "
            + " ".join(f"{f'best @{f:.0%}':<26}" for f in FRACTIONS)
            + f" {'trials':>6}"
        )
        print(header)
        print("-" * len(header))
        medians: dict[str, float] = {}
        for method, curves in by_method.items():
            to_target = [dollars_to(c, target) for c in curves]
            medians[method] = _quartiles(to_target)[1]
            hit = sum(math.isfinite(x) for x in to_target) / len(curves)
            bests = " ".join(f"{_cell([best_at(c, f * budget) for c in curves]):<26}" for f in FRACTIONS)
            trials = float(np.median([len(c) for c in curves]))
            print(f"{method:<22} {hit:>5.0%}  {_cell(to_target, usd=True):<28} {bests} {trials:>6.0f}")
        best_optuna = min((medians[m] for m in METHODS if m in medians), default=math.nan)
        for method in (m for m in by_method if m.startswith("costtune-")):
            ratio = medians[method] / best_optuna if math.isfinite(best_optuna) and best_optuna > 0 else math.nan
            print(f"{method}: median $ to target / best Optuna median = {ratio:.2f} (below 1: costtune cheaper)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
