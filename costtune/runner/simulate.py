"""Run a simulated sweep from Python, without the CLI: for benchmarks, notebooks and `costtune plan`."""

from __future__ import annotations

from costtune.providers import make_provider
from costtune.runner.controller import SweepController
from costtune.runner.session import open_sweep
from costtune.runner.status import RunStatus
from costtune.spec import SweepSpec
from costtune.store import Store


def run_simulated(spec: SweepSpec, store_url: str | Store) -> RunStatus:
    """Run (or resume) ``spec`` on the simulated provider in the given store; returns the final status."""
    if spec.resources.provider != "simulated":
        raise ValueError(f"run_simulated needs resources.provider: simulated, got {spec.resources.provider!r}")
    store = store_url if isinstance(store_url, Store) else Store(store_url)
    try:
        study, _resumed = open_sweep(store, spec)
        provider = make_provider("simulated", simulation=spec.resources.simulation, metric=spec.metric)
        return SweepController(spec, study, provider, trial_events=False).run()
    finally:
        if not isinstance(store_url, Store):
            store.close()
