"""costtune against Optuna when dollars are the budget, on simulated cloud prices.

Every method tunes the workload's space plus the instance type (a categorical over the workload's
``INSTANCES``: m5.large, c5.xlarge, g4dn.xlarge, and for cnn_vision / finetune_startup also r5.xlarge
and g5.xlarge; us-east-1 spot, bundled prices, AWS per-second billing with a 60 s minimum, 60 s boot
per trial) until a fixed dollar budget is spent, one trial at a time. Optuna does not know about
money, so its trials are billed by ``optuna_sim``; costtune runs its own simulated provider.

Workloads (``costtune.demo.bench_workloads``; deterministic ``(params, step, instance) -> (loss, s)``):

- ``mlp_tabular``, ``xgb_like``: made-up MLP / boosted trees; a GPU pays off only for big configs.
- ``cnn_vision``: width and resolution set both quality and seconds (~width**2 * res**2); a GPU pays
  off only for big nets, r5.xlarge (32 GiB) only for big batches at high resolution.
- ``finetune_startup``: 2-5 minutes of image pull and data download in the first step (by the
  instance's network), short epochs, an interior optimum on every axis.
- ``sklearn_mlp``: a real recorded scikit-learn sweep (``benchmarks/record_sklearn.py``): an
  MLPClassifier on digits over a 324-point grid, per-epoch validation log loss and CPU seconds.

Methods: Optuna ``optuna-random``, ``optuna-tpe``, ``optuna-tpe+hyperband``, ``optuna-tpe+sha``,
``optuna-gp`` (GPSampler, needs torch), ``optuna-tpe/5`` when asked; costtune recipes ``default``
(the sweep file with ``budget.usd``, no scheduler and only ``sampler: {seed: N}``: costtune's defaults),
``cost`` (cost-aware Bayesian sampler, FIFO), ``cost/N`` (the same with N random start-up trials),
``cost+curve`` (``cost`` with the learning-curve stopping scheduler),
``asha`` (``cost`` plus dollar-rung ASHA, eta 3: first rung twice the median, over configurations,
of the priciest instance's bill for boot plus first step; a trial at most 1/20 of the budget, or
three rungs if that is more).
costtune runs ``--workers`` trials at once (default 1, like Optuna's sequential loop).

Budgets, one rule: about 3x the median dollars Optuna's random search (20 seeds) spends before its
best reaches the target, 2 significant digits (``--calibrate`` prints them). Targets: about the 2nd
percentile of random configurations' final loss (tests/test_bench_workloads.py).

Output per workload, median [IQR] over seeds: hit rate (share of runs reaching the target), dollars
until the best loss reached the target ("never": not within the budget), best loss after 25/50/100%
of the budget, trials. Then per costtune recipe: its median $ to target / the best Optuna method's
(lowest median $ to target), its hits vs that method's, and whether its median best loss is at least
as good as the best Optuna median (of any method) at 25/50/100% of the budget. Progress on stderr.

    python benchmarks/vs_optuna.py                            # 20 seeds, all workloads (an hour or more)
    python benchmarks/vs_optuna.py --seeds 6 --costtune default,cost,asha --jobs 2 --json runs.json
    python benchmarks/vs_optuna.py --calibrate                # the budget rule's numbers
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from bench_report import Curve, dollars_to, print_workload
from optuna_sim import EXTRA_METHODS, MARKET, METHODS, REGION, STARTUP_SECONDS, first_report_usd, run_optuna

from costtune.demo.bench_workloads import INSTANCES, MAX_STEPS, SPACES, TARGETS

# By the rule in the docstring (``--calibrate``, 20 seeds, on this code).
BUDGETS_USD: dict[str, float] = {
    "mlp_tabular": 0.94, "xgb_like": 0.85, "cnn_vision": 6.4, "finetune_startup": 0.37, "sklearn_mlp": 0.89,
}
RECIPES = ("default", "cost", "cost/10", "asha")  # costtune configurations, described in ``sweep``


def rung_usd(workload: str, budget_usd: float) -> tuple[float, float]:
    """A rule a user can apply, not a fit to the workload: the first rung buys twice a typical first
    report on the priciest instance choice (so every trial reports before it is judged), a trial may
    spend at most 1/20 of the budget but never less than three rungs (``9 * min_usd``; with a big
    start-up and a small budget ASHA then stops little)."""
    min_usd = round(2 * first_report_usd(workload), 4)
    return min_usd, round(max(budget_usd / 20, 9 * min_usd), 4)


def sweep(workload: str, seed: int, budget_usd: float, recipe: str, workers: int = 1) -> dict[str, Any]:
    """The costtune sweep file (as a mapping) for one run.

    ``default``: no scheduler section and a sampler section holding only the seed (``sampler: {seed:
    N}``: costtune's default sampler type, seeded so runs repeat); ``cost``: every trial
    runs to its end, proposed by the cost-aware Bayesian sampler with its defaults; ``cost/N``: the
    same with N random start-up trials; ``cost+curve``: ``cost`` plus learning-curve stopping (no
    dollar figures); ``asha``: ``cost`` plus dollar-rung ASHA (``rung_usd``).
    Raises ValueError for another recipe.
    """
    curve = recipe.endswith("+curve")
    base, _, startup = recipe.removesuffix("+curve").partition("/")
    known = ("default", "cost", "asha", "hb")  # hb: dollar Hyperband
    if base not in known or (startup and not startup.isdigit()) or (curve and base != "cost"):
        raise ValueError(
            f"unknown costtune recipe {recipe!r}; known: {', '.join(RECIPES)}, cost+curve (cost/N for any N)"
        )
    spec: dict[str, Any] = {
        "name": f"bench-{workload}-{seed}",
        "objective": {"metric": "loss", "mode": "min"},
        "space": SPACES[workload],
        "budget": {"usd": budget_usd},
        "resources": {
            "provider": "simulated", "region": REGION, "market": MARKET, "workers": workers,
            "instance_type": {"type": "categorical", "choices": list(INSTANCES[workload])},
            "simulation": {
                "workload": f"costtune.demo.bench_workloads:{workload}", "max_steps": MAX_STEPS[workload],
                "startup_seconds": int(STARTUP_SECONDS), "preemptions_per_hour": 0, "seed": seed,
            },
        },
    }
    if base == "default":
        return {**spec, "sampler": {"seed": seed}}
    sampler: dict[str, Any] = {"type": "bayes", "seed": seed, "cost_aware": True}
    if startup:
        sampler["n_startup"] = int(startup)
    scheduler: dict[str, Any] = {"type": "curve"} if curve else {"type": "fifo"}
    if base in ("asha", "hb"):  # hb: dollar Hyperband on the same rungs
        min_usd, max_usd = rung_usd(workload, budget_usd)
        kind = "hyperband" if base == "hb" else "asha"
        scheduler = {"type": kind, "min_usd": min_usd, "max_usd": max_usd, "eta": 3}
    return {**spec, "sampler": sampler, "scheduler": scheduler}


def run_costtune(workload: str, seed: int, budget_usd: float, recipe: str, workers: int = 1) -> Curve:
    """One budgeted costtune run in a throw-away SQLite store; the best-so-far curve in dollars."""
    from costtune.reports.cost import best_vs_spend
    from costtune.runner.simulate import run_simulated
    from costtune.spec import parse_sweep
    from costtune.store import Store

    spec = parse_sweep(sweep(workload, seed, budget_usd, recipe, workers))
    with tempfile.TemporaryDirectory(prefix="costtune-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'x.db'}"
        run_simulated(spec, url)
        store = Store(url)
        try:
            (study,) = store.list_studies()  # a fresh store: its one study is this run's
            history = store.history(study.id)
        finally:
            store.close()
    return [
        (row["cumulative_micros"] / 1_000_000, math.inf if row["best"] is None else float(row["best"]))
        for row in best_vs_spend(history)
    ]


def run_one(task: tuple[str, str, int, float, int]) -> dict[str, Any]:
    """One (workload, method, seed, budget, workers) run; its curve and the CPU seconds it took.
    ``workers == 0`` marks a calibration run: Optuna stops at the target."""
    workload, method, seed, budget, workers = task
    t0 = time.process_time()
    if method.startswith("costtune-"):
        curve = run_costtune(workload, seed, budget, method.removeprefix("costtune-"), workers)
    else:
        curve = run_optuna(workload, seed, budget, method, stop_at=TARGETS[workload] if workers == 0 else None)
    return {"workload": workload, "method": method, "seed": seed, "curve": curve,
            "cpu_s": round(time.process_time() - t0, 2)}


def _weight(task: tuple[str, str, int, float, int]) -> int:
    """Rough cost order, so the slow runs start first and the pool does not end on one long run."""
    method = task[1]
    return 3 if "asha" in method else 2 if method.startswith("costtune-") or method == "optuna-gp" else 1


def run_all(tasks: list[tuple[str, str, int, float, int]], jobs: int,
            done: Callable[[list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
    """Every task, in a process pool of ``jobs`` (inline for 1), with one progress line per run on stderr
    and ``done(runs so far)`` after each. Seed by seed (slow methods first within a seed), so a run
    stopped early still holds whole seeds."""
    tasks = sorted(tasks, key=lambda t: (t[2], -_weight(t)))
    out: list[dict[str, Any]] = []
    start = time.perf_counter()

    def progress(r: dict[str, Any]) -> None:
        out.append(r)
        if done is not None:
            done(out)
        target = TARGETS[r["workload"]]
        usd = dollars_to(r["curve"], target)
        print(f"[{len(out)}/{len(tasks)} {time.perf_counter() - start:.0f}s] {r['workload']} seed {r['seed']} "
              f"{r['method']}: to target {'never' if math.isinf(usd) else f'${usd:.3f}'}, "
              f"{len(r['curve'])} trials, {r['cpu_s']:.1f} CPU s", file=sys.stderr, flush=True)

    if jobs <= 1:
        for task in tasks:
            progress(run_one(task))
        return out
    ctx = multiprocessing.get_context("fork")  # the workers inherit this script's sys.path and imports
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        for fut in concurrent.futures.as_completed([pool.submit(run_one, t) for t in tasks]):
            progress(fut.result())
    return out


def calibrate(workloads: list[str], seeds: int, jobs: int) -> None:
    """Print each workload's budget by the rule: 3x random search's median $ to target, 2 significant digits."""
    cap = 100.0  # dollars: random search runs until the target or this much
    runs = run_all([(w, "optuna-random", s, cap, 0) for w in workloads for s in range(seeds)], jobs)
    for w in workloads:
        spent = [dollars_to(r["curve"], TARGETS[w]) for r in runs if r["workload"] == w]
        median = float(np.median(spent))
        budget = float(f"{3 * median:.2g}") if math.isfinite(median) else math.inf
        print(f"{w}: random search reaches {TARGETS[w]} after ${median:.3f} (median of {seeds}); "
              f"budget ${budget:g} (table: ${BUDGETS_USD.get(w, math.nan):g})")


def report(doc: dict[str, Any]) -> None:
    """Print the tables for ``doc`` (the --json layout, curves as lists of (usd, best)); a workload whose
    seeds did not all finish for every method is reported on the seeds that did."""
    methods = doc.get("methods") or sorted({r["method"] for r in doc["runs"]}, key=lambda m: (m[:9] == "costtune-", m))
    print(f"cells: median [IQR] over seeds; {doc['region']} {doc['market']}, billed per second with a 60 s "
          f"minimum, {doc['startup_seconds']:.0f} s boot per trial; costtune workers: {doc['workers']}")
    for w, info in doc["workloads"].items():
        by_seed: dict[int, dict[str, Curve]] = {}
        for r in doc["runs"]:
            if r["workload"] == w:
                by_seed.setdefault(r["seed"], {})[r["method"]] = r["curve"]
        whole = sorted(s for s, got in by_seed.items() if all(m in got for m in methods))
        print()
        print(f"instance types ({w}): {', '.join(info['instances'])}; seeds: {len(whole)} of {doc['seeds']}")
        if not whole:
            continue
        curves = {m: [by_seed[s][m] for s in whole] for m in methods}
        print_workload(w, curves, info["target"], info["budget_usd"], info["max_steps"])


def merged(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """One --json layout from several (parts of one benchmark: other seeds, other methods); a run
    (workload, method, seed) in a later file replaces the same run in an earlier one."""
    doc = dict(docs[0])
    runs = {(r["workload"], r["method"], r["seed"]): r for d in docs for r in d["runs"]}
    methods = [m for d in docs for m in d.get("methods") or ()]
    doc["methods"] = list(dict.fromkeys(m for m in methods if not m.startswith("costtune-"))) + list(
        dict.fromkeys(m for m in methods if m.startswith("costtune-")))
    doc["workloads"] = {w: info for d in docs for w, info in d["workloads"].items()}
    doc["seeds"] = len({r["seed"] for r in runs.values()})
    doc["runs"] = list(runs.values())
    return doc


def _json_curve(curve: Curve) -> list[list[float | None]]:
    return [[usd, None if math.isinf(best) else best] for usd, best in curve]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20, help="repetitions per method and workload (default 20)")
    parser.add_argument("--workloads", default=",".join(BUDGETS_USD), help="comma-separated subset")
    parser.add_argument("--costtune", default=",".join(RECIPES),
                        help=f"costtune recipes, comma-separated, or none (default {','.join(RECIPES)})")
    parser.add_argument("--optuna", default=",".join(METHODS),
                        help=f"Optuna methods, comma-separated, or none (default {','.join(METHODS)}; "
                             f"also {','.join(EXTRA_METHODS)})")
    parser.add_argument("--workers", type=int, default=1, help="costtune trials at once (default 1)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="runs at once in a process pool (default: the number of cores)")
    parser.add_argument("--json", type=Path,
                        help="write every run's best-so-far curve to this file (rewritten after each run)")
    parser.add_argument("--report", type=Path, metavar="JSON", nargs="+",
                        help="print the tables of files --json wrote (parts merged: other seeds or methods; whole "
                             "seeds only) and exit")
    parser.add_argument("--calibrate", action="store_true", help="print the budget rule's numbers and exit")
    parser.add_argument("--quick", action="store_true", help="3 seeds (overrides --seeds)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds run from here (default 0): add seeds to an earlier --json file in parts")
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # one thread per run (GPSampler's
        os.environ.setdefault(var, "1")  # torch reads it when first imported, in the pool's workers)
    seeds = 3 if args.quick else args.seeds
    for flag, value in (("--seeds", seeds), ("--workers", args.workers), ("--jobs", args.jobs)):
        if value < 1:
            parser.error(f"{flag} must be at least 1, got {value}")
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for w in workloads:
        if w not in BUDGETS_USD:
            parser.error(f"unknown workload {w!r}; known: {', '.join(BUDGETS_USD)}")
    if args.calibrate:
        calibrate(workloads, 20, args.jobs)
        return 0
    if args.report:
        doc = merged([json.loads(path.read_text()) for path in args.report])
        for r in doc["runs"]:
            r["curve"] = [(usd, math.inf if best is None else best) for usd, best in r["curve"]]
        report(doc)
        return 0
    methods = [m.strip() for m in args.optuna.split(",") if m.strip() and m.strip() != "none"]
    for m in methods:
        if m not in METHODS + EXTRA_METHODS:
            parser.error(f"unknown Optuna method {m!r}; known: {', '.join(METHODS + EXTRA_METHODS)}")
    for r in (r.strip() for r in args.costtune.split(",") if r.strip() and r.strip() != "none"):
        try:
            sweep(workloads[0] if workloads else "mlp_tabular", 0, 1.0, r)
        except ValueError as err:
            parser.error(f"--costtune: {err}")
        methods.append(f"costtune-{r}")

    tasks = [(w, m, s, BUDGETS_USD[w], args.workers) for w in workloads
             for s in range(args.first_seed, args.first_seed + seeds) for m in methods]
    doc: dict[str, Any] = {
        "seeds": seeds, "workers": args.workers, "region": REGION, "market": MARKET,
        "startup_seconds": STARTUP_SECONDS, "methods": methods,
        "workloads": {w: {"budget_usd": BUDGETS_USD[w], "target": TARGETS[w], "max_steps": MAX_STEPS[w],
                          "instances": list(INSTANCES[w])} for w in workloads},
        "runs": [],
    }

    def save(runs: list[dict[str, Any]]) -> None:
        if args.json:
            doc["runs"] = [{**r, "curve": _json_curve(r["curve"])} for r in runs]
            tmp = args.json.with_name(args.json.name + ".tmp")
            tmp.write_text(json.dumps(doc, indent=1))
            tmp.replace(args.json)

    runs = run_all(tasks, args.jobs, save)
    report(doc | {"runs": runs})
    if args.json:
        print(f"wrote {args.json} ({len(runs)} runs)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
