"""Pinned outcomes: fixed-seed simulated sweeps give exactly the trials, charges and reports they gave
when the file ``pinned_outcomes.json`` was written.

The simulated controller loop is tuned for speed (it runs every `costtune plan` forecast and every
simulated `costtune run`); a speed change must never change what a sweep does. Each sweep here has
preemptions, rungs, several instance types and a binding cap, so a change to the order of events,
to a charge, to a rung verdict or to what is booked per report shows up as a difference.

The file was written by the code before the speed work; re-pin (``python tests/test_pinned_outcomes.py
--write``) only for a change that is meant to change outcomes, and say so in its commit.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from costtune.providers import make_provider

from costtune.plan.forecast import MEMORY_STORE, simulate_once
from costtune.runner.controller import SweepController
from costtune.runner.session import open_sweep
from costtune.spec import parse_sweep
from costtune.store import Store

PINNED = Path(__file__).with_name("pinned_outcomes.json")
_SPACE6 = {f"x{i}": {"type": "uniform", "low": 0, "high": 1} for i in range(1, 7)}
_TYPES = {"type": "categorical", "choices": ["m5.large", "c5.xlarge", "g4dn.xlarge"]}

SWEEPS: dict[str, dict[str, Any]] = {
    "hyperband": {
        "name": "pinned-hyperband",
        "objective": {"metric": "loss", "mode": "min"},
        "space": _SPACE6,
        "sampler": {"type": "random", "seed": 7},
        "scheduler": {"type": "hyperband", "min_usd": 0.01, "max_usd": 0.09, "eta": 3},
        "budget": {"usd": 1.6},  # room for a second Hyperband iteration
        "resources": {
            "provider": "simulated", "region": "us-east-1", "instance_type": _TYPES, "market": "spot",
            "workers": 5,
            "simulation": {"workload": "costtune.demo.workloads:hartmann6", "max_steps": 400,
                           "preemptions_per_hour": 2.0, "startup_seconds": 60, "seed": 3},
        },
    },
    "asha": {
        "name": "pinned-asha",
        "objective": {"metric": "loss", "mode": "min"},
        "space": {
            "lr": {"type": "loguniform", "low": 0.0001, "high": 0.1},
            "width": {"type": "int", "low": 16, "high": 1024, "log": True},
            "layers": {"type": "int", "low": 1, "high": 4},
            "batch": {"type": "categorical", "choices": [32, 64, 128, 256]},
        },
        "sampler": {"type": "random", "seed": 11},
        "scheduler": {"type": "asha", "min_usd": 0.0072, "max_usd": 0.05, "eta": 3},
        "budget": {"usd": 0.25},
        "resources": {
            "provider": "simulated", "region": "us-east-1", "instance_type": _TYPES, "market": "spot",
            "workers": 4,
            "simulation": {"workload": "costtune.demo.bench_workloads:mlp_tabular", "max_steps": 27,
                           "startup_seconds": 60, "preemptions_per_hour": 1.5, "seed": 5,
                           "checkpoint": False},
        },
    },
    "fifo-capped": {  # no rungs: money in chunks shared among the workers under a binding cap
        "name": "pinned-fifo",
        "objective": {"metric": "loss", "mode": "min"},
        "space": _SPACE6,
        "sampler": {"type": "random", "seed": 2},
        "scheduler": {"type": "fifo"},
        "budget": {"usd": 0.12, "trials": 12},
        "resources": {
            "provider": "simulated", "region": "us-east-1", "instance_type": _TYPES, "market": "spot",
            "workers": 3,
            "simulation": {"workload": "costtune.demo.workloads:hartmann6", "max_steps": 150,
                           "preemptions_per_hour": 3.0, "startup_seconds": 30, "seed": 1},
        },
    },
}


def outcome(store: Store, cfg: dict[str, Any], *, every_step: bool = False) -> dict[str, Any]:
    """What a user can read of the sweep afterwards: every trial, attempt and report, and the books.

    ``every_step``: the controller wakes at every simulated step end (the simulator's ``advance``
    hidden from it), as a controller polling a real provider would see them."""
    spec = parse_sweep(cfg)
    study, _ = open_sweep(store, spec)
    provider = make_provider("simulated", simulation=spec.resources.simulation, metric=spec.metric)
    if every_step:
        provider.advance = None  # type: ignore[attr-defined]
    status = SweepController(spec, study, provider, trial_events=False).run()
    trials = []
    for t in study.history().trials:
        reports = store.reports(study.id, t.number)
        attempts = store.attempts(study.id, t.number)
        digest = hashlib.sha256(json.dumps(reports, sort_keys=True).encode()).hexdigest()[:16]
        trials.append({
            "number": t.number, "state": str(t.state), "value": t.value, "cost_micros": t.cost_micros,
            "last_step": t.last_step, "metrics": t.metrics, "error": t.error,
            "attempts": [[a.instance_type, a.market, a.billable_ms, a.cost_micros, a.exit_reason, a.exit_code,
                          a.start_step, a.waste_micros] for a in attempts],
            "reports": len(reports), "report_costs": [r[2] for r in reports[-1:]], "reports_sha256": digest,
        })
    cap, spent, reserved = store.balance(f"study:{study.id}")
    return {
        "status": {"spend_micros": status.spend_micros, "best_value": status.best_value,
                   "best_trial": status.best_trial, "preemptions": status.preemptions,
                   "waste_micros": status.waste_micros, "launched": status.launched, "finished": status.finished,
                   "failed": status.failed, "sim_seconds": round(status.sim_seconds, 6),
                   "stop_reason": status.stop_reason},
        "ledger": [cap, spent, reserved],
        "trials": trials,
    }


def _pinned() -> dict[str, Any]:
    return json.loads(PINNED.read_text())


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_a_simulated_sweep_gives_the_pinned_trials_charges_and_reports(store: Store, name: str) -> None:
    got = json.loads(json.dumps(outcome(store, SWEEPS[name])))  # the JSON round trip the pinned file took
    want = _pinned()[name]
    assert got["status"] == want["status"]
    assert got["ledger"] == want["ledger"]
    assert len(got["trials"]) == len(want["trials"])
    for mine, pinned in zip(got["trials"], want["trials"], strict=True):
        assert mine == pinned, f"trial {pinned['number']}"


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_waking_only_when_something_matters_changes_nothing(name: str) -> None:
    """The controller on the simulator skips the step ends between rungs, ends and first reports;
    woken at every step end instead it makes the very same decisions, charges and report rows."""
    results = []
    for every_step in (True, False):
        store = Store(MEMORY_STORE)
        try:
            results.append(json.loads(json.dumps(outcome(store, SWEEPS[name], every_step=every_step))))
        finally:
            store.close()
    assert results[0] == results[1]


def test_a_forecast_run_gives_the_pinned_sample() -> None:
    """The forecast's own path (an in-memory store per run) books what the same sweep run in a file does."""
    pinned = _pinned()["hyperband"]["status"]
    sample = simulate_once(SWEEPS["hyperband"])
    assert (sample.spend_micros, sample.best_value, sample.preemptions, sample.waste_micros) == (
        pinned["spend_micros"], pinned["best_value"], pinned["preemptions"], pinned["waste_micros"])
    assert sample.trials == len(_pinned()["hyperband"]["trials"])


def _write() -> None:
    out = {}
    for name, cfg in SWEEPS.items():
        store = Store(MEMORY_STORE)
        try:
            out[name] = json.loads(json.dumps(outcome(store, cfg)))
        finally:
            store.close()
    PINNED.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    for name, data in out.items():
        print(f"{name}: {len(data['trials'])} trials, {sum(t['reports'] for t in data['trials'])} reports, "
              f"{data['status']}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_pinned_outcomes.py --write   (re-pins the outcomes; see the module doc)")
    _write()
