"""Optuna on the simulated cloud: trials billed in dollars on a virtual clock, stopped by a dollar budget.

Optuna knows nothing of money, so the bill is kept here with the same rules costtune uses: a trial
holds its instance for a 60 s start-up plus the seconds of every step it runs (a workload's own
start-up, such as an image pull, is part of its first step), and is charged with
``billing_rule("aws")`` at the bundled us-east-1 spot rate of the instance type it suggested (a
categorical over the workload's ``INSTANCES``, like any other parameter). Trials
run one after another; the one that crosses the budget is cut at the budget (only the steps that
ended before that moment are seen). A trial's value is its last reported loss whether it completed,
was pruned or was cut, as costtune scores a trial stopped by a scheduler or the budget.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna

from costtune.demo.bench_workloads import INSTANCES, MAX_STEPS, SPACES, WORKLOADS
from costtune.prices.billing import billing_rule
from costtune.prices.catalog import PriceTable
from costtune.space import SearchSpace

REGION = "us-east-1"
MARKET = "spot"
STARTUP_SECONDS = 60.0
# Run by default: random search, TPE (its defaults: 10 random start-up trials), TPE with Hyperband or
# successive halving (both from 1 step, reduction factor 3, up to the workload's MAX_STEPS), and the
# Gaussian-process sampler (needs torch). ``optuna-tpe/5`` (5 start-up trials) runs when asked.
METHODS = ("optuna-random", "optuna-tpe", "optuna-tpe+hyperband", "optuna-tpe+sha", "optuna-gp")
EXTRA_METHODS = ("optuna-tpe/5",)

Curve = list[tuple[float, float]]  # (cumulative usd, best loss so far) after each finished trial


@functools.cache
def rates_micros() -> dict[str, int]:
    table = PriceTable.bundled()
    types = sorted({t for types in INSTANCES.values() for t in types})
    return {t: table.rate("aws", REGION, t, MARKET).usd_per_hour_micros for t in types}


def bill_micros(seconds: float, instance_type: str) -> int:
    """What holding ``instance_type`` for ``seconds`` (start-up included) costs."""
    return billing_rule("aws").charge(math.ceil(seconds * 1000), rates_micros()[instance_type])


def suggest(trial: optuna.Trial, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Ask Optuna for a config in a costtune ``space:`` mapping (the kinds the bench workloads use)."""
    params: dict[str, Any] = {}
    for name, dist in space.items():
        kind = dist["type"]
        if kind == "uniform":
            params[name] = trial.suggest_float(name, dist["low"], dist["high"])
        elif kind == "loguniform":
            params[name] = trial.suggest_float(name, dist["low"], dist["high"], log=True)
        elif kind == "int":
            params[name] = trial.suggest_int(
                name, dist["low"], dist["high"], step=dist.get("step", 1), log=dist.get("log", False)
            )
        elif kind == "categorical":
            params[name] = trial.suggest_categorical(name, list(dist["choices"]))
        else:
            raise ValueError(f"{name}: no Optuna translation for distribution type {kind!r}")
    return params


def _study(method: str, workload: str, seed: int) -> optuna.Study:
    if method == "optuna-random":
        sampler: optuna.samplers.BaseSampler = optuna.samplers.RandomSampler(seed=seed)
        pruner: optuna.pruners.BasePruner = optuna.pruners.NopPruner()
    elif method == "optuna-tpe":
        sampler, pruner = optuna.samplers.TPESampler(seed=seed), optuna.pruners.NopPruner()
    elif method == "optuna-tpe/5":  # fewer random start-up trials, as costtune's "/5" rows
        sampler, pruner = optuna.samplers.TPESampler(seed=seed, n_startup_trials=5), optuna.pruners.NopPruner()
    elif method == "optuna-tpe+hyperband":
        sampler = optuna.samplers.TPESampler(seed=seed)
        pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=MAX_STEPS[workload], reduction_factor=3)
    elif method == "optuna-tpe+sha":
        sampler = optuna.samplers.TPESampler(seed=seed)
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    elif method == "optuna-gp":
        sampler, pruner = optuna.samplers.GPSampler(seed=seed), optuna.pruners.NopPruner()
    else:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS + EXTRA_METHODS)}")
    # Hyperband assigns brackets from a hash of the study name, so the name is part of the seed.
    return optuna.create_study(
        study_name=f"{method}-{workload}-{seed}", direction="minimize", sampler=sampler, pruner=pruner
    )


def run_optuna(workload: str, seed: int, budget_usd: float, method: str, stop_at: float | None = None) -> Curve:
    """One budgeted Optuna run; the best-so-far curve in dollars (ended early once the best loss is at
    most ``stop_at``, when given)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    fn = WORKLOADS[workload]
    max_steps = MAX_STEPS[workload]
    budget = round(budget_usd * 1_000_000)
    study = _study(method, workload, seed)
    spent = 0
    best = math.inf
    curve: Curve = []
    while spent < budget:
        trial = study.ask()
        params = suggest(trial, SPACES[workload])
        instance = trial.suggest_categorical("instance_type", list(INSTANCES[workload]))
        seconds = STARTUP_SECONDS
        cost = bill_micros(seconds, instance)
        last: float | None = None
        state = optuna.trial.TrialState.COMPLETE
        for step in range(max_steps):
            loss, step_s = fn(params, step, instance)
            after = bill_micros(seconds + step_s, instance)
            if spent + after > budget:  # this step would end after the money ran out: cut at the budget
                cost, state = budget - spent, optuna.trial.TrialState.FAIL
                break
            seconds, cost, last = seconds + step_s, after, loss
            trial.report(loss, step + 1)  # resource = steps done, 1..max_steps
            if step + 1 < max_steps and trial.should_prune():  # a finished trial is complete, not pruned
                state = optuna.trial.TrialState.PRUNED
                break
        spent += cost
        if state == optuna.trial.TrialState.COMPLETE:
            study.tell(trial, last)
        else:
            study.tell(trial, state=state)
        if last is not None and last < best:
            best = last
        curve.append((spent / 1_000_000, best))
        if stop_at is not None and best <= stop_at:
            break
    return curve


@functools.cache
def first_report_usd(workload: str, samples: int = 200) -> float:
    """Median, over a fixed random sample of configurations, of the dollars the priciest instance type
    in ``INSTANCES[workload]`` charges for the 60 s start-up plus the first step (a trial's first report)."""
    fn: Callable[[dict[str, Any], int, str], tuple[float, float]] = WORKLOADS[workload]
    space = SearchSpace.from_dict(SPACES[workload])
    rng = np.random.default_rng(0)
    worst = [
        max(bill_micros(STARTUP_SECONDS + fn(cfg, 0, instance)[1], instance) for instance in INSTANCES[workload])
        for cfg in (space.sample(rng) for _ in range(samples))
    ]
    return float(np.median(worst)) / 1_000_000
