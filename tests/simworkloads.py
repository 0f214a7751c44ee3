"""Workloads with known step times, for tests that check the books to the micro-dollar."""

from __future__ import annotations

import os
import time
from typing import Any


def steady(params: dict[str, Any], step: int, instance_type: str) -> tuple[float, float]:
    """Ten seconds a step on every instance; the loss falls towards ``x``."""
    return float(params["x"]) + 1.0 / (step + 1), 10.0


def varied(params: dict[str, Any], step: int, instance_type: str) -> tuple[float, float]:
    """A step takes 1 to 30 s depending on ``x``; bigger x is slower but better."""
    x = float(params["x"])
    return (1.0 - x) + 1.0 / (step + 1), 1.0 + 29.0 * x


def sluggish(params: dict[str, Any], step: int, instance_type: str) -> tuple[float, float]:
    """Like ``steady`` but each step also takes real time, so a test can kill the controller midway."""
    time.sleep(float(os.environ.get("COSTTUNE_TEST_STEP_SLEEP", "0.002")))
    return steady(params, step, instance_type)


def breaks_at_3(params: dict[str, Any], step: int, instance_type: str) -> tuple[float, float]:
    """Fails at step 3 when ``x`` > 0.5: a workload bug must fail that trial, not the sweep."""
    if step == 3 and float(params["x"]) > 0.5:
        raise RuntimeError("no curve recorded past step 2")
    return steady(params, step, instance_type)


def flaky_sluggish(params: dict[str, Any], step: int, instance_type: str) -> tuple[float, float]:
    """``sluggish`` that fails at step 3 when ``x`` > 0.8: a failed trial among complete and stopped ones."""
    if step == 3 and float(params["x"]) > 0.8:
        raise RuntimeError("diverged at step 3")
    return sluggish(params, step, instance_type)


def overfits(params: dict[str, Any], step: int, instance_type: str) -> tuple[float, float]:
    """Best at step 5, worse after (its final value is not its best); fails at step 8 when x < 0.2."""
    x = float(params["x"])
    if step == 8 and x < 0.2:
        raise RuntimeError("diverged")
    return x + abs(step - 5) / 20, 10.0


def long_steps(params: dict[str, Any], step: int, instance_type: str) -> tuple[float, float]:
    """A step takes 60 to 120 s depending on ``x`` (a first step as long as a short start-up); loss falls towards x."""
    x = float(params["x"])
    return x + 1.0 / (step + 1), 60.0 + 60.0 * x


def three_choices(params: dict[str, Any], step: int, instance_type: str) -> tuple[float, float]:
    """A loss over three categoricals (opt x act x width): one best combination, 10 s a step."""
    loss = {"adam": 0.0, "sgd": 0.3}[params["opt"]] + {"relu": 0.0, "tanh": 0.2}[params["act"]]
    return loss + {"s": 0.2, "m": 0.0, "l": 0.1}[params["width"]] + 1.0 / (step + 1), 10.0


def with_changes(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of the sweep ``base`` with ``a__b__c=value`` setting ``copy["a"]["b"]["c"]``."""
    import copy

    cfg = copy.deepcopy(base)
    for dotted, value in changes.items():
        node = cfg
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return cfg


def run_sweep(tmp_path: Any, base: dict[str, Any], **changes: Any) -> tuple[Any, Any, Any]:
    """(store, study, RunStatus) of the simulated sweep ``with_changes(base, **changes)`` run to its end by a
    controller in this process, in a fresh SQLite store under ``tmp_path``."""
    from costtune.store import Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    study, status, _warnings = run_sweep_in(store, base, **changes)
    return store, study, status


def run_sweep_in(store: Any, base: dict[str, Any], *, calendar: Any = None,
                 **changes: Any) -> tuple[Any, Any, list[str]]:
    """(study, RunStatus, warnings) of the simulated sweep ``with_changes(base, **changes)`` run to its end in
    ``store`` by a controller in this process; ``calendar``: the wall clock policy windows are read on."""
    from costtune.providers import make_provider

    from costtune.runner.controller import SweepController
    from costtune.runner.session import open_sweep
    from costtune.spec import parse_sweep

    spec = parse_sweep(with_changes(base, **changes))
    study, _ = open_sweep(store, spec)
    provider = make_provider("simulated", simulation=spec.resources.simulation, metric=spec.metric)
    warnings: list[str] = []
    extra = {} if calendar is None else {"calendar": calendar}
    status = SweepController(spec, study, provider, trial_events=False, on_warning=warnings.append, **extra).run()
    return study, status, warnings


def always_fails(params: dict[str, Any], step: int, instance_type: str) -> tuple[float, float]:
    """Every trial fails at its first step: a night in which nothing works."""
    raise RuntimeError("out of memory")


def fails_first_when_high(params: dict[str, Any], step: int, instance_type: str) -> tuple[float, float]:
    """Fails at its first step, before any report, when ``x`` > 0.5; else ``steady``."""
    if float(params["x"]) > 0.5:
        raise RuntimeError("out of memory before the first report")
    return steady(params, step, instance_type)
