"""Three simulated nights of a schedule whose optimum drifts: what does warm start save?

Each seed makes a fresh SQLite store and a schedule (Bayesian sampler, ``--trials`` per night) on
the simulated cloud, runs night 1 on ``costtune.demo.drift:night_1``, then nights 2 and 3 on
``night_2`` / ``night_3`` (every coordinate of the optimum moves by 0.02 a night; the optimal value is
the same). For nights 2 and 3 it measures the spend until a trial first reaches night 1's final best
value (trials in the order they were numbered), against night 1's whole spend. Two baselines run
night 2 beside it: cold (warm start off) and top-k only (the queued configurations, no prior).

    python benchmarks/nightly_warm_start.py --seeds 10

Prints one line per seed, then the medians and the acceptance check (median <= 50% of night 1).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from costtune.history import History
from costtune.schedules.daemon import SchedulerDaemon
from costtune.spec.schedule_settings import ScheduleSettings
from costtune.spec.schedule_timing import make_trigger
from costtune.store import Store


def sweep(night: int, seed: int, trials: int) -> dict[str, Any]:
    return {
        "name": "bench", "objective": {"metric": "loss", "mode": "min"},
        "space": {f"x{i}": {"type": "uniform", "low": 0, "high": 1} for i in range(1, 7)},
        "sampler": {"type": "bayes", "seed": seed, "n_startup": 8}, "budget": {"trials": trials, "usd": 50},
        "resources": {"provider": "simulated", "region": "us-east-1", "instance_type": "m5.large",
                      "market": "on-demand", "workers": 2,
                      "simulation": {"workload": f"costtune.demo.drift:night_{night}", "max_steps": 20,
                                     "startup_seconds": 0}},
    }


def spend_to_reach(history: History, target: float) -> float:
    """Micro-dollars spent (trial order) until a finished trial's value is <= target; inf if never."""
    spent = 0
    for t in sorted(history.trials, key=lambda t: t.number):
        spent += t.cost_micros
        if t.value is not None and t.state.finished and t.value <= target + 1e-12:
            return float(spent)
    return math.inf


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> float:
        return float(self.now)


def one_seed(seed: int, trials: int, folder: Path) -> dict[str, float]:
    store = Store(f"sqlite:///{folder / f'seed{seed}.db'}")
    start = int(datetime(2026, 3, 6, tzinfo=UTC).timestamp())
    trigger = make_trigger(cron="0 2 * * *", every=None, tz="UTC", anchor=datetime.fromtimestamp(start, UTC))
    settings = ScheduleSettings(artifact_root=str(folder / "models"), summary_dir=str(folder / "summaries"))
    variants = (("warm", settings), ("cold", replace(settings, warm_start=0)),
                ("topk", replace(settings, prior_runs=0)))
    for name, warm in variants:
        store.add_schedule(name, trigger=trigger, sweep=sweep(1, seed, trials), sweep_source=None,
                           settings=warm, now_s=start)
    clock = Clock(start)
    daemon = SchedulerDaemon(store, clock=clock, owner="bench", say=lambda _m: None)
    studies: dict[tuple[str, int], History] = {}
    for night in (1, 2, 3):
        for name, _ in variants:
            store.update_schedule(name, now_s=clock.now, sweep=sweep(night, seed * 10 + night, trials))
        if night == 3:  # the baselines are measured on night 2 only
            for name in ("cold", "topk"):
                store.update_schedule(name, now_s=clock.now, paused=True)
        clock.now = start + night * 86400 + 2 * 3600 + 5
        for run in daemon.run_pending():
            name = run.study_name.split("-")[0]  # type: ignore[union-attr]
            studies[(name, night)] = store.history(store.get_study(run.study_name).id)  # type: ignore[arg-type]
    night1 = studies[("warm", 1)]
    target = night1.best().value  # type: ignore[union-attr]
    store.close()
    return {"night1": float(night1.spent_micros), "night1_reach": spend_to_reach(night1, target),
            "night2": spend_to_reach(studies[("warm", 2)], target),
            "night3": spend_to_reach(studies[("warm", 3)], target),
            "cold2": spend_to_reach(studies[("cold", 2)], target),
            "topk2": spend_to_reach(studies[("topk", 2)], target)}


def usd(micros: float) -> str:
    return "never" if math.isinf(micros) else f"${micros / 1e6:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=30, help="trials per night")
    args = parser.parse_args()
    cpu0 = time.process_time()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            r = one_seed(seed, args.trials, Path(tmp))
            rows.append(r)
            print(f"seed {seed}: night 1 spent {usd(r['night1'])} (best reached at {usd(r['night1_reach'])}); "
                  f"to reach night 1's best: night 2 warm {usd(r['night2'])}, night 3 warm {usd(r['night3'])}, "
                  f"night 2 cold {usd(r['cold2'])}, night 2 top-k only {usd(r['topk2'])}", flush=True)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    ratio2, ratio3 = med["night2"] / med["night1"], med["night3"] / med["night1"]
    print(f"\nmedian over {args.seeds} seeds: night 1 spent {usd(med['night1'])}; spend to reach night 1's final best: "
          f"night 2 {usd(med['night2'])} ({ratio2:.0%} of night 1), night 3 {usd(med['night3'])} ({ratio3:.0%}), "
          f"cold night 2 {usd(med['cold2'])} ({med['cold2'] / med['night1']:.0%}), "
          f"night 2 with top-k only {usd(med['topk2'])} ({med['topk2'] / med['night1']:.0%})")
    ok = ratio2 <= 0.5 and ratio3 <= 0.5
    print(f"acceptance (nights 2 and 3 at most 50% of night 1's spend): {'PASS' if ok else 'FAIL'}; "
          f"CPU {time.process_time() - cpu0:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
