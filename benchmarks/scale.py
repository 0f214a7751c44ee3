"""How costtune holds up at scale; prints figures, asserts nothing.

    python benchmarks/scale.py [--trials 10000] [--workers 100] [--reports 3000]

1. A simulated ASHA sweep of ``--trials`` trials with ``--workers`` concurrent instances (hartmann6
   workload, three instance types, spot preemptions), through the real controller, SQLite store
   and ledger: wall time and trials per second.
2. Scheduler decision time: ``judge`` calls at 10,000 trials for ASHA and Hyperband.
3. Report ingest: stored intermediate reports per second, costtune's store against Optuna's RDB
   storage, both on the same SQLite file (Optuna optional: skipped when not installed).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from costtune.history import Mode
from costtune.runner.simulate import run_simulated
from costtune.schedulers import AshaScheduler, Hyperband, plan_brackets, rung_ladder
from costtune.spec import parse_sweep
from costtune.store import Proposal, Store


def simulated_sweep(trials: int, workers: int, db: str) -> None:
    spec = parse_sweep({
        "name": "scale", "objective": {"metric": "loss", "mode": "min"},
        "space": {f"x{i}": {"type": "uniform", "low": 0.0, "high": 1.0} for i in range(1, 7)},
        "sampler": {"type": "random", "seed": 1},
        "scheduler": {"type": "asha", "min_usd": 0.004, "max_usd": 0.108, "eta": 3},
        "budget": {"trials": trials},
        "resources": {"provider": "simulated", "region": "us-east-1", "market": "spot", "workers": workers,
                      "instance_type": {"type": "categorical", "choices": ["m5.large", "c5.xlarge", "g4dn.xlarge"]},
                      "simulation": {"workload": "costtune.demo.workloads:hartmann6", "max_steps": 30,
                                     "startup_seconds": 60, "preemptions_per_hour": 0.2, "seed": 0}},
    })
    started = time.perf_counter()
    status = run_simulated(spec, db)
    wall = time.perf_counter() - started
    print(f"simulated sweep: {trials} trials, {workers} concurrent: {wall:.1f} s wall "
          f"({trials / wall:.0f} trials/s), {status.launched} launches, {status.preemptions} preemptions, "
          f"${status.spend_micros / 1e6:.2f} simulated spend, {status.sim_seconds / 3600:.1f} simulated hours")


def decision_time(n: int) -> None:
    rng = np.random.default_rng(0)
    ladder = rung_ladder(10_000, 810_000, 3)
    asha = AshaScheduler(ladder, 3, mode=Mode.MIN)
    values = rng.random(n)
    started = time.perf_counter()
    for number, value in enumerate(values):
        asha.judge(number, ladder[0], float(value))
    asha_us = (time.perf_counter() - started) / n * 1e6
    plan = plan_brackets("hyperband", 10_000, 810_000, 3, 10_000 * n)
    hyperband = Hyperband(plan, mode=Mode.MIN)
    judged = 0
    started = time.perf_counter()
    for number in range(min(n, plan.total_trials)):
        ladder_n = hyperband.ladder(number)
        if ladder_n:
            hyperband.judge(number, ladder_n[0], float(values[number % n]))
            judged += 1
    hb_us = (time.perf_counter() - started) / max(judged, 1) * 1e6
    print(f"scheduler decision time at {n} trials: asha {asha_us:.1f} us/decision, hyperband {hb_us:.1f} us/decision")


def ingest(reports: int, path: Path) -> None:
    url = f"sqlite:///{path}"
    store = Store(url)
    info = store.create_study("ingest", metric="loss", mode=Mode.MIN, space={}, sampler={"type": "random"})
    claimed = store.claim_next(info.id, lambda h, n, s: Proposal({}), owner="bench")
    assert claimed is not None
    attempt = store.start_attempt(claimed.id, 1, idempotency_key="bench-1", provider="bench",
                                  rate_micros_per_hour=1000)
    rates: dict[str, float] = {}
    started = time.perf_counter()
    for step in range(reports):
        store.add_report(claimed.id, attempt, step, {"loss": 1.0 / (step + 1)}, objective="loss")
    rates["costtune add_report (one transaction each)"] = reports / (time.perf_counter() - started)
    started = time.perf_counter()
    with store.batch():  # what the controller does within one tick
        for step in range(reports):
            store.book_report(claimed.id, attempt, step, {"loss": 0.5}, merged={"loss": 0.5}, value=0.5,
                              elapsed_s=float(step), trial_cost_micros=step, attempt_ms=step, attempt_cost_micros=step)
    rates["costtune controller path (batched tick)"] = reports / (time.perf_counter() - started)
    store.close()
    try:
        import optuna
    except ImportError:
        print("optuna not installed: `pip install optuna` for its figure")
    else:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = optuna.storages.RDBStorage(url)
        study = optuna.create_study(storage=storage, study_name="ingest")
        trial = study.ask()
        started = time.perf_counter()
        for step in range(reports):
            trial.report(1.0 / (step + 1), step)
        rates[f"optuna {optuna.__version__} RDBStorage trial.report"] = reports / (time.perf_counter() - started)
    for name, rate in rates.items():
        print(f"report ingest, same SQLite file: {name}: {rate:,.0f} reports/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--reports", type=int, default=3_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        simulated_sweep(args.trials, args.workers, f"sqlite:///{Path(tmp) / 'scale.db'}")
        decision_time(10_000)
        ingest(args.reports, Path(tmp) / "ingest.db")


if __name__ == "__main__":
    main()
