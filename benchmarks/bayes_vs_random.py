"""BayesSampler against random search at equal trial counts, on standard test functions.

Both methods see the same per-trial generators (``default_rng([seed, trial])``), so Bayes's start-up
trials are exactly random search's first trials and every seed is a paired comparison.

    python benchmarks/bayes_vs_random.py --seeds 10
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

Objective = Callable[[dict[str, Any]], float]


def branin(c: dict[str, Any]) -> float:
    x1, x2 = c["x1"], c["x2"]
    b, cc, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + cc * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(c: dict[str, Any]) -> float:
    x = np.array([c[f"x{i}"] for i in range(6)])
    return float(-_H6_ALPHA @ np.exp(-(_H6_A * (x - _H6_P) ** 2).sum(axis=1)))


# Each optimiser prefers its own learning rate, so lr and the categorical interact.
_OPT_LR = {"adam": -3.0, "sgd": -1.5, "rmsprop": -2.5}
_OPT_OFFSET = {"adam": 0.0, "sgd": 0.4, "rmsprop": 0.2}


def mixed(c: dict[str, Any]) -> float:
    """A training-run caricature: minimum 0 at adam, lr=1e-3, layers=12, batch=128, dropout=0.3."""
    opt = c["optimizer"]
    return (
        (math.log10(c["lr"]) - _OPT_LR[opt]) ** 2
        + ((c["layers"] - 12) / 6) ** 2
        + 0.25 * (math.log2(c["batch"]) - 7) ** 2
        + 4 * (c["dropout"] - 0.3) ** 2
        + _OPT_OFFSET[opt]
    )


@dataclass(frozen=True)
class Problem:
    name: str
    space: SearchSpace
    fn: Objective
    trials: int
    optimum: float


def problems() -> list[Problem]:
    return [
        Problem("branin", SearchSpace({"x1": Uniform(-5, 10), "x2": Uniform(0, 15)}), branin, 30, 0.397887),
        Problem(
            "hartmann6", SearchSpace({f"x{i}": Uniform(0, 1) for i in range(6)}), hartmann6, 60, -3.32237
        ),
        Problem(
            "mixed",
            SearchSpace(
                {
                    "lr": LogUniform(1e-5, 1.0),
                    "layers": Int(2, 32, step=2),
                    "batch": Int(8, 1024, log=True),
                    "dropout": Uniform(0.0, 0.8),
                    "optimizer": Categorical(("adam", "sgd", "rmsprop")),
                }
            ),
            mixed,
            40,
            0.0,
        ),
    ]


def run(sampler: BayesSampler | None, problem: Problem, trials: int, seed: int) -> tuple[float, float]:
    """Sequential ask/tell loop; returns the best value and the mean seconds per model-based suggestion."""
    done: list[FrozenTrial] = []
    best = math.inf
    model_secs: list[float] = []
    for i in range(trials):
        rng = np.random.default_rng([seed, i])
        history = History(metric="y", mode=Mode.MIN, trials=tuple(done))
        t0 = time.perf_counter()
        config = sampler.suggest(problem.space, history, rng) if sampler else problem.space.sample(rng)
        if sampler is not None and i >= sampler.n_startup:
            model_secs.append(time.perf_counter() - t0)
        if not problem.space.contains(config):
            raise AssertionError(f"{problem.name}: suggestion {config!r} is outside the space")
        value = problem.fn(config)
        best = min(best, value)
        done.append(FrozenTrial(number=i, state=TrialState.COMPLETE, params=config, value=value))
    return best, float(np.mean(model_secs)) if model_secs else 0.0


def _summary(xs: list[float]) -> str:
    q25, q50, q75 = np.percentile(xs, [25, 50, 75])
    return f"{q50:9.4f} [{q25:8.4f}, {q75:8.4f}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=10, help="paired repetitions per function")
    parser.add_argument("--trials", type=int, default=None, help="trials per run (default: per function)")
    parser.add_argument("--functions", default="branin,hartmann6,mixed", help="comma-separated subset")
    args = parser.parse_args(argv)
    wanted = {f.strip() for f in args.functions.split(",") if f.strip()}
    rows = []
    for problem in problems():
        if problem.name not in wanted:
            continue
        trials = args.trials or problem.trials
        rand, bayes, secs = [], [], []
        for seed in range(args.seeds):
            r, _ = run(None, problem, trials, seed)
            b, s = run(BayesSampler(), problem, trials, seed)
            rand.append(r)
            bayes.append(b)
            secs.append(s)
            print(
                f"{problem.name} seed {seed}: random {r:.4f}  bayes {b:.4f}  ({s * 1e3:.0f} ms/suggest)",
                file=sys.stderr,
                flush=True,
            )
        wins = sum(1.0 if b < r else 0.5 if b == r else 0.0 for b, r in zip(bayes, rand, strict=True))
        rows.append((problem, trials, rand, bayes, wins / args.seeds, float(np.mean(secs))))
    print(f"seeds: {args.seeds}; values: median [IQR] of the best value found (lower is better)")
    print("bayes wins: share of seeds where bayes found the lower best (ties count half);")
    print("ms/suggest: mean wall time of a model-based suggestion (after the random start-up)")
    header = f"{'function':<10} {'trials':>6} {'optimum':>9}  {'random':<30} {'bayes':<30} {'bayes wins':>10}"
    print(header + f" {'ms/suggest':>10}")
    print("-" * (len(header) + 11))
    for problem, trials, rand, bayes, win, sec in rows:
        print(
            f"{problem.name:<10} {trials:>6} {problem.optimum:>9.4f}  {_summary(rand):<30} "
            f"{_summary(bayes):<30} {win:>10.0%} {sec * 1e3:>10.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
