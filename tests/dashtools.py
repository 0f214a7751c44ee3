"""Shared set-up of the dashboard tests: a small simulated sweep, and a parameter value made of markup."""

from __future__ import annotations

from typing import Any

from costtune.spec import parse_sweep

MARKUP = "<img src=x onerror=window.pwned=1><script>window.pwned=2</script>"


def sim_spec(name: str, *, trials: int = 12, workers: int = 3, steps: int = 30, seed: int = 0,
             extra: dict[str, Any] | None = None) -> Any:
    """An ASHA sweep on the simulated cloud (hartmann6), with a categorical ``tag`` whose values are markup."""
    return parse_sweep({
        "name": name, "objective": {"metric": "loss", "mode": "min"},
        "space": {**{f"x{i}": {"type": "uniform", "low": 0.0, "high": 1.0} for i in range(1, 7)},
                  "tag": {"type": "categorical", "choices": [MARKUP, "plain"]}},
        "sampler": {"type": "random", "seed": seed},
        "scheduler": {"type": "asha", "min_usd": 0.004, "max_usd": 0.036, "eta": 3},
        "budget": {"trials": trials, "usd": 5},
        "resources": {"provider": "simulated", "region": "us-east-1", "market": "spot", "workers": workers,
                      "instance_type": {"type": "categorical", "choices": ["m5.large", "c5.xlarge"]},
                      "simulation": {"workload": "costtune.demo.workloads:hartmann6", "max_steps": steps,
                                     "startup_seconds": 60, "preemptions_per_hour": 0.5, "seed": seed}},
        **(extra or {}),
    })
