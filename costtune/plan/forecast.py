"""The Monte Carlo half of ``costtune plan``: run a simulated sweep many times, nothing kept.

Each run is the real controller on the simulator, with its own preemption seed and sampler seed,
on a SQLite store in a temporary directory that is deleted afterwards, so the forecast includes
everything the controller does (rungs, reservations, preemptions, the cap) and the user's store is
never opened.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from costtune.spec import SweepSpec, parse_sweep

CAP_SHARE = 0.99  # a run "reaches the cap" when it spends at least this share of budget.usd


@dataclass(frozen=True)
class RunSample:
    seed: int
    spend_micros: int
    best_value: float | None
    preemptions: int
    waste_micros: int
    trials: int
    sim_seconds: float


@dataclass(frozen=True)
class Forecast:
    runs: tuple[RunSample, ...]
    cap_micros: int | None

    def spend(self, q: float) -> int:
        return round(float(np.percentile([r.spend_micros for r in self.runs], q)))

    @property
    def p_cap(self) -> float | None:
        """Share of runs that spent at least 99% of budget.usd; None without a cap."""
        if self.cap_micros is None:
            return None
        return sum(r.spend_micros >= CAP_SHARE * self.cap_micros for r in self.runs) / len(self.runs)

    def best(self, q: float) -> float | None:
        values = [r.best_value for r in self.runs if r.best_value is not None]
        return float(np.percentile(values, q)) if values else None

    def quantile(self, attr: str, q: float) -> float:
        return float(np.percentile([getattr(r, attr) for r in self.runs], q))


def seeded_spec(spec: SweepSpec, k: int, tmp: str) -> SweepSpec:
    """The same sweep with preemption and sampler seeds moved on by ``k``; output kept under ``tmp``."""
    raw: dict[str, Any] = json.loads(json.dumps(spec.raw))
    sim = raw["resources"]["simulation"]
    base = spec.resources.simulation.seed if spec.resources.simulation else 0
    sim["seed"] = base + k
    sampler = dict(raw.get("sampler") or {"type": spec.sampler["type"]})
    if "seed" in spec.sampler:
        sampler["seed"] = spec.sampler["seed"] + k  # the file's seed, or the one drawn when it gave none
    raw["sampler"] = sampler
    raw["output_dir"] = str(Path(tmp) / "runs")
    return parse_sweep(raw)


def simulate_once(spec: SweepSpec, k: int, tmp: str) -> RunSample:
    """One full simulated run of the sweep on a throw-away store."""
    from costtune.providers import make_provider
    from costtune.runner.controller import SweepController
    from costtune.runner.session import open_sweep
    from costtune.store import Store

    run_spec = seeded_spec(spec, k, tmp)
    store = Store(f"sqlite:///{tmp}/plan-{k}.db")
    try:
        study, _ = open_sweep(store, run_spec)
        provider = make_provider(run_spec.resources.provider, simulation=run_spec.resources.simulation,
                                 metric=run_spec.metric)
        status = SweepController(run_spec, study, provider, workdir=tmp, trial_events=False).run()
        trials = len(study.history().trials)
    finally:
        store.close()
    seed = run_spec.resources.simulation.seed if run_spec.resources.simulation else k
    return RunSample(seed=seed, spend_micros=status.spend_micros, best_value=status.best_value,
                     preemptions=status.preemptions, waste_micros=status.waste_micros, trials=trials,
                     sim_seconds=status.sim_seconds)


def forecast(spec: SweepSpec, runs: int, *, on_run: Callable[[int, RunSample], None] | None = None) -> Forecast:
    """``runs`` simulated runs of the sweep; ``on_run(k, sample)`` after each (a progress bar)."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    samples = []
    with tempfile.TemporaryDirectory(prefix="costtune-plan-") as tmp:
        for k in range(runs):
            sample = simulate_once(spec, k, tmp)
            samples.append(sample)
            if on_run is not None:
                on_run(k, sample)
    return Forecast(runs=tuple(samples), cap_micros=spec.budget.usd_micros)
