"""Two more benchmark workloads: a CNN whose size sets both quality and seconds, and a start-up-heavy job.

Same contract as ``bench_workloads``: ``workload(params, step, instance_type) -> (loss, seconds)``,
deterministic, lower loss better, registered in ``bench_workloads.WORKLOADS`` (with their spaces,
step counts, targets and instance types) for the simulated provider and ``benchmarks/vs_optuna.py``.

Instances (us-east-1 spot prices from the bundled table; speeds are made up, relative to an
m5.large's 2 vCPUs):

- ``m5.large``: the cheap baseline, 8 GiB.
- ``c5.xlarge``: 2.5x compute, still 8 GiB: a big batch at high resolution no longer fits and pages.
- ``r5.xlarge``: 1.8x compute, 32 GiB: worth its price only when the working set does not fit in 8.
- ``g4dn.xlarge``: a T4; up to 24x on large kernels, little on small ones (launch-bound), and the
  data pipeline still runs on its 4 vCPUs.
- ``g5.xlarge``: an A10G, ~2.5x a T4 on large kernels, at ~2.4x the price.

A step's seconds on a GPU type are ``data / data_speed + compute / gpu_speed(compute)`` where the
GPU's speed-up rises with the work as ``1 + (peak - 1) * c / (c + half)`` (saturating; a made-up but
usual shape); on a CPU type ``(data + compute) / cpu_speed * paging`` where ``paging`` grows once the
working set passes 80% of the instance's memory.
"""

from __future__ import annotations

import math
from typing import Any

from costtune.demo.bench_common import jitter, need

# instance type -> (CPU speed, memory GiB, GPU peak speed-up on large work (0: no GPU), boot + image
# pull + data download seconds for the start-up-heavy workload (network bandwidth differs by type)).
PROFILE: dict[str, tuple[float, float, float, float]] = {
    "m5.large": (1.0, 8.0, 0.0, 300.0),
    "c5.xlarge": (2.5, 8.0, 0.0, 220.0),
    "r5.xlarge": (1.8, 32.0, 0.0, 200.0),
    "g4dn.xlarge": (1.6, 16.0, 24.0, 140.0),
    "g5.xlarge": (1.8, 16.0, 60.0, 120.0),
}
_UNKNOWN = (1.0, 8.0, 0.0, 300.0)  # a type without a profile runs like an m5.large

INSTANCES: dict[str, tuple[str, ...]] = {
    "cnn_vision": ("m5.large", "c5.xlarge", "r5.xlarge", "g4dn.xlarge", "g5.xlarge"),
    "finetune_startup": ("m5.large", "c5.xlarge", "r5.xlarge", "g4dn.xlarge"),
}

MAX_STEPS: dict[str, int] = {"cnn_vision": 27, "finetune_startup": 12}

SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "cnn_vision": {
        "width": {"type": "int", "low": 8, "high": 128, "log": True},
        "resolution": {"type": "categorical", "choices": [32, 64, 96, 128, 192]},
        "batch": {"type": "categorical", "choices": [16, 32, 64, 128, 256, 512]},
        "lr": {"type": "loguniform", "low": 1e-4, "high": 0.5},
    },
    "finetune_startup": {
        "lr": {"type": "loguniform", "low": 1e-5, "high": 0.1},
        "hidden": {"type": "int", "low": 32, "high": 4096, "log": True},
        "dropout": {"type": "uniform", "low": 0.0, "high": 0.9},
        "weight_decay": {"type": "loguniform", "low": 1e-6, "high": 0.1},
    },
}

# About the 2nd percentile of random configurations' final loss (tests/test_bench_workloads.py).
TARGETS: dict[str, float] = {"cnn_vision": 0.333, "finetune_startup": 0.236}


def _speed(instance_type: str, compute_s: float, gpu_half_s: float) -> tuple[float, float]:
    """(data speed, compute speed) of ``instance_type`` for ``compute_s`` m5.large-seconds of work."""
    cpu, _, gpu_peak, _ = PROFILE.get(instance_type, _UNKNOWN)
    if gpu_peak <= 0:
        return cpu, cpu
    return cpu, max(cpu, 1.0 + (gpu_peak - 1.0) * compute_s / (compute_s + gpu_half_s))


def _paging(instance_type: str, working_set_gib: float, slope: float) -> float:
    """Slow-down once the working set passes 80% of the instance's (GPU's) memory: 1 while it fits,
    then ``1 + slope * overshoot`` (swapping on a CPU type, offloading on a GPU type)."""
    memory = PROFILE.get(instance_type, _UNKNOWN)[1]
    over = working_set_gib / (0.8 * memory)
    return 1.0 if over <= 1.0 else 1.0 + slope * (over - 1.0)


def cnn_vision(params: dict[str, Any], step: int, instance_type: str) -> tuple[float, float]:
    """A made-up image CNN: validation cross-entropy per epoch (10 classes) and the epoch's seconds.

    Width (channels) and input resolution both lower the asymptote with diminishing returns and
    multiply the epoch's work (``width**2 * resolution**2``), so the best losses are the most
    expensive; wide, high-resolution nets also converge more slowly per epoch. The best SGD rate
    grows with the batch (square-root scaling); big batches generalise a little worse. Seconds: a
    data pipeline (decode + augment, ~resolution**2, on the CPUs of every type) plus compute; a GPU
    pays off only for big nets at high resolution, and a big batch at high resolution needs more
    than 8 GiB (only r5.xlarge runs it on a CPU without paging).
    """
    width = need(params, "width", "cnn_vision")
    res = need(params, "resolution", "cnn_vision")
    batch = need(params, "batch", "cnn_vision")
    lr = need(params, "lr", "cnn_vision")
    if width < 1 or res < 8 or batch < 1 or lr <= 0 or step < 0:
        raise ValueError(f"cnn_vision needs width >= 1, resolution >= 8, batch >= 1, lr > 0, step >= 0; got {params!r}")
    lr_opt = 0.04 * math.sqrt(batch / 128.0)
    miss = math.log10(lr / lr_opt)
    asymptote = (
        0.10
        + 0.30 * (16.0 / width) ** 0.45
        + 0.22 * (32.0 / res) ** 0.8
        + 0.06 * miss**2
        + 0.25 * max(0.0, miss - 0.5) ** 2  # far past the best rate, training is unstable
        + 0.012 * max(0.0, math.log2(batch / 64.0))
    )
    rate = 0.22 * math.sqrt(min(lr / lr_opt, 3.0)) * (128.0 / batch) ** 0.25
    rate /= (width / 32.0) ** 0.15 * (res / 64.0) ** 0.12
    start = math.log(10.0)
    loss = asymptote + (start - asymptote) * math.exp(-rate * (step + 1))
    loss += jitter((width, res, batch, lr), step, 0.003)

    data = 3.0 + 6.0 * (res / 64.0) ** 2  # m5.large seconds to decode and augment an epoch
    compute = 6e-6 * width**2 * res**2 * (0.6 + 0.4 * 64.0 / batch)  # small batches: per-batch overhead
    working_set = 0.6 + 2e-8 * batch * width * res**2  # GiB of activations; a GPU holds them in its 16
    data_speed, compute_speed = _speed(instance_type, compute, 40.0)
    if PROFILE.get(instance_type, _UNKNOWN)[2] > 0:
        seconds = data / data_speed + compute / compute_speed * _paging(instance_type, working_set, 4.0)
    else:
        seconds = (data + compute) / compute_speed * _paging(instance_type, working_set, 1.5)
    return loss, seconds


def finetune_startup(params: dict[str, Any], step: int, instance_type: str) -> tuple[float, float]:
    """A made-up fine-tuning job dominated by start-up: validation loss per epoch and its seconds.

    The first step carries the trial's start-up beyond the provider's boot: a container image pull
    and a dataset download (120-300 s, by the instance's network), then each epoch is short (10-60 s
    for mid-sized heads on an m5.large), so stopping a trial early saves little and a cheap instance
    with a slow network is not cheap. The optimum is interior on every axis: ``hidden`` ~512 (smaller
    underfits, larger overfits unless dropout rises with it), ``lr`` ~1e-3 (scaled down for big
    heads), ``dropout`` ~0.3 and ``weight_decay`` ~1e-3.
    """
    lr = need(params, "lr", "finetune_startup")
    hidden = need(params, "hidden", "finetune_startup")
    dropout = need(params, "dropout", "finetune_startup")
    wd = need(params, "weight_decay", "finetune_startup")
    if lr <= 0 or hidden < 1 or not 0 <= dropout < 1 or wd <= 0 or step < 0:
        raise ValueError(
            f"finetune_startup needs lr > 0, hidden >= 1, 0 <= dropout < 1, weight_decay > 0, step >= 0; got {params!r}"
        )
    h = math.log2(hidden / 512.0)
    lr_opt = 1e-3 * (512.0 / hidden) ** 0.3
    miss = math.log10(lr / lr_opt)
    dropout_opt = min(0.7, max(0.05, 0.3 + 0.06 * h))
    asymptote = (
        0.20
        + 0.05 * miss**2
        + 0.20 * max(0.0, miss - 0.8) ** 2  # far past the best rate, training is unstable
        + 0.010 * h**2
        + 0.30 * (dropout - dropout_opt) ** 2
        + 0.008 * math.log10(wd / 1e-3) ** 2
    )
    rate = 0.45 * math.sqrt(min(lr / lr_opt, 3.0)) * (1.0 - 0.5 * dropout)
    start = 1.0
    loss = asymptote + (start - asymptote) * math.exp(-rate * (step + 1))
    loss += jitter((lr, hidden, dropout, wd), step, 0.002)

    data = 8.0  # m5.large seconds of input pipeline per epoch
    compute = 20.0 * (hidden / 512.0) ** 1.5
    data_speed, compute_speed = _speed(instance_type, compute, 60.0)
    seconds = data / data_speed + compute / compute_speed
    if step == 0:
        seconds += PROFILE.get(instance_type, _UNKNOWN)[3]
    return loss, seconds


WORKLOADS = {"cnn_vision": cnn_vision, "finetune_startup": finetune_startup}
