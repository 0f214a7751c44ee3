"""Cost-aware BayesSampler against plain Bayes and random search at equal DOLLAR budgets.

Each trial's price depends on its configuration, so a method that learns where trials are cheap can run
more of them before the money runs out. The table gives the best value found by the time 25%, 50% and
100% of a fixed budget was spent (median [IQR] over seeds; a trial counts once it has been paid for
in full). All three methods share per-trial generators (``default_rng([seed, trial])``), so their random
start-up trials coincide and every seed is a paired comparison.

    python benchmarks/cost_aware_bayes.py            # about two minutes
    python benchmarks/cost_aware_bayes.py --seeds 3 --problems branin
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from costtune.history import FrozenTrial, History, Mode, TrialState
from costtune.samplers.bayes import BayesSampler
from costtune.space import Categorical, Int, LogUniform, SearchSpace, Uniform

Fn = Callable[[dict[str, Any]], float]
FRACTIONS = (0.25, 0.5, 1.0)


def branin(c: dict[str, Any]) -> float:
    x1, x2 = c["x1"], c["x2"]
    b, cc, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + cc * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def branin_cost(c: dict[str, Any]) -> float:
    """$0.50 at x1 = -5 up to $10 at x1 = 10: one of branin's three minima (x1 = -pi) sits in the cheap end."""
    return 0.5 * math.exp(3.0 * (c["x1"] + 5.0) / 15.0)


_PRICE = {"cpu": 1.0, "gpu": 3.0, "gpu-x4": 8.0}


def training(c: dict[str, Any]) -> float:
    """A training-run caricature: the instance type changes nothing but speed; more epochs help a little."""
    return (
        (math.log10(c["lr"]) + 3.0) ** 2
        + 4.0 * (c["dropout"] - 0.3) ** 2
        + 0.5 / math.sqrt(c["epochs"])
    )


def training_cost(c: dict[str, Any]) -> float:
    """Dollars per epoch depend on the instance; big instances are faster but not proportionally so."""
    return 0.02 * c["epochs"] * _PRICE[c["instance_type"]] ** 0.8


@dataclass(frozen=True)
class Problem:
    name: str
    space: SearchSpace
    fn: Fn
    cost: Fn
    budget_usd: float


def problems() -> list[Problem]:
    return [
        Problem("branin", SearchSpace({"x1": Uniform(-5, 10), "x2": Uniform(0, 15)}), branin, branin_cost, 150.0),
        Problem(
            "training",
            SearchSpace(
                {
                    "lr": LogUniform(1e-5, 1e-1),
                    "dropout": Uniform(0.0, 0.8),
                    "epochs": Int(1, 64, log=True),
                    "instance_type": Categorical(("cpu", "gpu", "gpu-x4")),
                }
            ),
            training,
            training_cost,
            60.0,
        ),
    ]


def run(sampler: BayesSampler | None, problem: Problem, seed: int, max_trials: int) -> tuple[list[float], int]:
    """Ask/tell until the budget is spent; the best value at each budget fraction, and the trial count."""
    budget = round(problem.budget_usd * 1_000_000)
    noise = np.random.default_rng([seed, 10**6])  # price jitter, identical across methods for a seed
    done: list[FrozenTrial] = []
    spent = 0
    best = [math.inf] * len(FRACTIONS)
    while spent < budget and len(done) < max_trials:
        rng = np.random.default_rng([seed, len(done)])
        history = History("y", Mode.MIN, tuple(done), budget_micros=budget)
        config = sampler.suggest(problem.space, history, rng) if sampler else problem.space.sample(rng)
        value = problem.fn(config)
        cost = max(1, round(1_000_000 * problem.cost(config) * math.exp(0.1 * noise.standard_normal())))
        spent += cost
        for i, frac in enumerate(FRACTIONS):
            if spent <= frac * budget:
                best[i] = min(best[i], value)
        done.append(FrozenTrial(len(done), TrialState.COMPLETE, config, value, cost_micros=cost))
    return best, len(done)


def _summary(xs: list[float]) -> str:
    q25, q50, q75 = np.percentile(xs, [25, 50, 75])
    return f"{q50:7.3f} [{q25:6.3f},{q75:6.3f}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10, help="paired repetitions per problem")
    parser.add_argument("--problems", default="branin,training", help="comma-separated subset")
    parser.add_argument("--max-trials", type=int, default=150, help="safety cap on trials per run")
    args = parser.parse_args(argv)
    wanted = {p.strip() for p in args.problems.split(",") if p.strip()}
    methods: list[tuple[str, Callable[[], BayesSampler | None]]] = [
        ("random", lambda: None),
        ("bayes", lambda: BayesSampler(n_startup=8)),
        ("bayes+cost", lambda: BayesSampler(n_startup=8, cost_aware=True)),
    ]
    t0 = time.perf_counter()
    rows = []
    for problem in problems():
        if problem.name not in wanted:
            continue
        for name, make in methods:
            bests, counts = [], []
            for seed in range(args.seeds):
                best, n = run(make(), problem, seed, args.max_trials)
                bests.append(best)
                counts.append(n)
            print(f"{problem.name} {name}: done at {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
            rows.append((problem, name, np.array(bests), counts))
    print(f"seeds: {args.seeds}; best value found (lower is better) by the time 25/50/100% of the budget was")
    print("spent, median [IQR]; trials: median number of trials the budget paid for")
    header = f"{'problem':<9} {'budget':>7} {'method':<11}" + "".join(
        f" {f'@{frac:.0%}':<23}" for frac in FRACTIONS
    )
    print(header + f" {'trials':>6}")
    print("-" * (len(header) + 7))
    for problem, name, bests, counts in rows:
        cells = "".join(f" {_summary(list(bests[:, i])):<23}" for i in range(len(FRACTIONS)))
        print(f"{problem.name:<9} {f'${problem.budget_usd:.0f}':>7} {name:<11}{cells} {int(np.median(counts)):>6}")
    print(f"(wall time {time.perf_counter() - t0:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
