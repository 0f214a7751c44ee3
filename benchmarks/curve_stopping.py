"""What learning-curve stopping (``scheduler: {type: curve}``) saves, with the sampler's luck taken out.

A seeded cost-aware Bayesian run with FIFO picks its configurations (and instance types); those
configurations are then replayed in the same order (sampler ``manual``) under FIFO and under the
curve scheduler, on the same simulated cloud as ``vs_optuna.py`` (us-east-1 spot, per-second billing
with a 60 s minimum, 60 s start-up, 4 workers, a fixed dollar budget). Same proposals, so the only
difference is what the scheduler stops. Reported per workload, median [IQR] over seeds: dollars until
the best loss reaches the target (inf: never), best loss at the end, trials run, trials stopped.

    python benchmarks/curve_stopping.py --seeds 6     # both workloads (about 3 runs a seed each)
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from optuna_sim import MARKET, REGION, STARTUP_SECONDS
from vs_optuna import BUDGETS_USD

from costtune.demo.bench_workloads import INSTANCES, MAX_STEPS, SPACES, TARGETS
from costtune.history import History, TrialState


def sweep(workload: str, seed: int, sampler: dict[str, Any], scheduler: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": f"curve-{workload}-{seed}", "objective": {"metric": "loss", "mode": "min"},
        "space": SPACES[workload], "sampler": sampler, "scheduler": scheduler,
        "budget": {"usd": BUDGETS_USD[workload]},
        "resources": {
            "provider": "simulated", "region": REGION, "market": MARKET, "workers": 4,
            "instance_type": {"type": "categorical", "choices": list(INSTANCES[workload])},
            "simulation": {"workload": f"costtune.demo.bench_workloads:{workload}", "max_steps": MAX_STEPS[workload],
                           "startup_seconds": int(STARTUP_SECONDS), "preemptions_per_hour": 0, "seed": seed},
        },
    }


def run(cfg: dict[str, Any]) -> History:
    from costtune.runner.simulate import run_simulated
    from costtune.spec import parse_sweep
    from costtune.store import Store

    with tempfile.TemporaryDirectory(prefix="costtune-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'x.db'}"
        run_simulated(parse_sweep(cfg), url)
        store = Store(url)
        try:
            (study,) = store.list_studies()
            return store.history(study.id)
        finally:
            store.close()


def to_target(history: History, target: float) -> float:
    """Dollars spent (trials in the order they ended) when a finished trial first reached ``target``."""
    from costtune.reports.cost import best_vs_spend

    return next((row["cumulative_micros"] / 1e6 for row in best_vs_spend(history)
                 if row["best"] is not None and row["best"] <= target), math.inf)


def _cell(xs: list[float], digits: int = 3) -> str:
    q = np.percentile(np.minimum(xs, 1e18), [25, 50, 75])
    return " ".join("inf" if v > 1e17 else f"{v:.{digits}f}" for v in (q[1], q[0], q[2]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--workloads", default="mlp_tabular,xgb_like",
                        help=f"comma-separated, of {', '.join(BUDGETS_USD)}")
    args = parser.parse_args(argv)
    for workload in [w for w in args.workloads.split(",") if w]:
        got: dict[str, list[tuple[float, float, int, int]]] = {"fifo": [], "curve": []}
        for seed in range(args.seeds):
            bayes = run(sweep(workload, seed, {"type": "bayes", "seed": seed, "cost_aware": True}, {"type": "fifo"}))
            configs = [dict(t.params) for t in sorted(bayes.trials, key=lambda t: t.number)]
            for kind in got:  # twice the list: money a stop saves buys the next configurations
                history = run(sweep(workload, seed, {"type": "manual", "configs": configs + configs}, {"type": kind}))
                best = min((t.value for t in history.completed() if t.value is not None), default=math.inf)
                stopped = sum(1 for t in history.trials if t.state == TrialState.STOPPED)
                ran = sum(1 for t in history.trials if t.state.finished)  # the list's unused tail stays queued
                got[kind].append((to_target(history, TARGETS[workload]), best, ran, stopped))
                print(f"{workload} seed {seed} {kind}: to target ${got[kind][-1][0]:.4f}, best {best:.4f}, "
                      f"{ran} trials, {stopped} stopped", file=sys.stderr, flush=True)
        print(f"\n{workload}: budget ${BUDGETS_USD[workload]:.2f}, target {TARGETS[workload]}, {args.seeds} seeds; "
              "median [p25 p75]")
        print(f"{'scheduler':<10} {'$ to target':<24} {'best':<24} {'trials':<16} stopped")
        for kind, rows in got.items():
            cols = list(zip(*rows, strict=True))
            print(f"{kind:<10} {_cell(list(cols[0])):<24} {_cell(list(cols[1]), 4):<24} "
                  f"{_cell([float(x) for x in cols[2]], 0):<16} {_cell([float(x) for x in cols[3]], 0)}")
        ratio = [c[0] / f[0] for f, c in zip(got["fifo"], got["curve"], strict=True) if math.isfinite(f[0])]
        print(f"curve / fifo dollars to target, per seed: {' '.join(f'{r:.2f}' for r in ratio)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
