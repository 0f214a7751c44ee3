"""CPU time of one Bayesian suggestion as the history grows; prints a table, asserts nothing.

The history is ``n`` finished trials of a 6-dimensional space (five continuous parameters and an
instance type of three choices, the shape of a real cost-aware sweep) with seeded random
configurations, hartmann-like values and a cost that depends on the configuration and the instance.
Each cell is the median CPU time (``time.process_time``, so the figure holds on a busy machine) of
``--repeats`` suggestions made one after another by one sampler as the history grows by a trial each
time (how a study's controller asks after each trial ends), the first excepted: "cold" is that first
one, a fresh sampler that fits every hyperparameter from scratch (a restarted controller), in its own
row. Refit steps later in the series stay in the median.
Optuna's samplers get the same history when Optuna is installed (``pip install optuna``; optional).

    python benchmarks/suggest_time.py                      # 100, 300, 1000 trials
    python benchmarks/suggest_time.py --trials 1000,10000 --repeats 3
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from costtune.history import FrozenTrial, History, Mode, TrialState
from costtune.samplers.bayes import BayesSampler
from costtune.space import Categorical, SearchSpace, Uniform

INSTANCES = ("m5.large", "c5.xlarge", "g4dn.xlarge")
_PRICE = {"m5.large": 0.035, "c5.xlarge": 0.068, "g4dn.xlarge": 0.19}  # $/h, about us-east-1 spot
_SPEED = {"m5.large": 1.0, "c5.xlarge": 2.0, "g4dn.xlarge": 2.2}
SPACE = SearchSpace({**{f"x{i}": Uniform(0.0, 1.0) for i in range(1, 6)}, "instance_type": Categorical(INSTANCES)})


def value(c: dict[str, Any]) -> float:
    x = np.array([c[f"x{i}"] for i in range(1, 6)])
    return float(np.sum((x - 0.3) ** 2) - 0.5 * math.cos(6.0 * x[0]) + 0.1 * math.sin(9.0 * x[3]))


def seconds(c: dict[str, Any]) -> float:
    return 60.0 + 600.0 * (0.2 + c["x1"] + 0.5 * c["x2"]) / _SPEED[c["instance_type"]]


def history(n: int, seed: int) -> History:
    rng = np.random.default_rng(seed)
    trials: list[FrozenTrial] = []
    for i in range(n):
        c = SPACE.sample(rng)
        cost = round(seconds(c) / 3600 * _PRICE[c["instance_type"]] * 1_000_000)
        trials.append(FrozenTrial(number=i, state=TrialState.COMPLETE, params=c, value=value(c),
                                  cost_micros=cost, last_step=10))
    return History("loss", Mode.MIN, tuple(trials), budget_micros=sum(t.cost_micros for t in trials) * 2)


def cpu_seconds(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return float(np.median(times))


def costtune_cells(h: History, repeats: int) -> dict[str, float]:
    """Median CPU seconds over ``repeats`` consecutive suggestions after the first, and that first (cold) one."""
    out = {}
    for name, kwargs in (("costtune bayes", {}), ("costtune bayes cost_aware", {"cost_aware": True})):
        sampler = BayesSampler(**kwargs)  # type: ignore[arg-type]
        times = []
        for k in range(repeats):
            hk = History(h.metric, h.mode, h.trials + _extra(h, k), h.budget_micros)
            t0 = time.process_time()
            sampler.suggest(SPACE, hk, np.random.default_rng([1, k]))
            times.append(time.process_time() - t0)
        out[name] = float(np.median(times[1:] or times))  # warm: the cold first one is its own row
        out[f"{name} (cold)"] = times[0]
    return out


def _extra(h: History, k: int) -> tuple[FrozenTrial, ...]:
    """``k`` more finished trials after ``h``'s (seeded, so every run times the same work)."""
    if k == 0:
        return ()
    more = history(len(h.trials) + k, seed=len(h.trials) + 1).trials[-k:]
    base = len(h.trials)
    return tuple(FrozenTrial(number=base + i, state=t.state, params=t.params, value=t.value,
                             cost_micros=t.cost_micros, last_step=t.last_step) for i, t in enumerate(more))


def optuna_cells(h: History, repeats: int) -> dict[str, float]:
    try:
        import optuna
    except ImportError:
        return {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {f"x{i}": optuna.distributions.FloatDistribution(0.0, 1.0) for i in range(1, 6)}
    dists["instance_type"] = optuna.distributions.CategoricalDistribution(INSTANCES)
    out = {}
    samplers: dict[str, Callable[[], Any]] = {
        "optuna TPE": lambda: optuna.samplers.TPESampler(seed=0),
        "optuna GPSampler": lambda: optuna.samplers.GPSampler(seed=0),
    }
    for name, make in samplers.items():
        study = optuna.create_study(sampler=make())
        study.add_trials([optuna.trial.create_trial(params=t.params, distributions=dists, value=t.value)
                          for t in h.trials])

        def ask(study: Any = study) -> None:
            trial = study.ask()
            for pname, dist in dists.items():
                trial._suggest(pname, dist)

        try:
            out[name] = cpu_seconds(ask, repeats)
        except Exception as exc:  # an optional comparison never stops the table
            print(f"{name}: {exc}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", default="100,300,1000", help="history sizes, comma-separated")
    parser.add_argument("--repeats", type=int, default=5, help="suggestions timed per cell (median)")
    parser.add_argument("--no-optuna", action="store_true", help="skip Optuna's samplers")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.trials.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--trials must be history sizes such as 100,1000; got {args.trials!r}")
    if not sizes or min(sizes) < 1:
        parser.error(f"--trials must name at least one size >= 1; got {args.trials!r}")
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1; got {args.repeats}")
    rows: dict[str, dict[int, float]] = {}
    for n in sizes:
        h = history(n, seed=n)
        cells = costtune_cells(h, args.repeats)
        if not args.no_optuna:
            cells.update(optuna_cells(h, args.repeats))
        for name, secs in cells.items():
            rows.setdefault(name, {})[n] = secs
            print(f"{n} trials: {name}: {secs * 1e3:.0f} ms CPU", file=sys.stderr, flush=True)
    print(f"CPU ms per suggestion (median of {max(args.repeats - 1, 1)} warm), 6 dimensions "
          "(5 continuous + instance type)")
    header = f"{'sampler':<34}" + "".join(f"{f'{n} trials':>14}" for n in sizes)
    print(header)
    print("-" * len(header))
    for name, by_n in rows.items():
        print(f"{name:<34}" + "".join(f"{by_n[n] * 1e3:>14.0f}" if n in by_n else f"{'-':>14}" for n in sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
