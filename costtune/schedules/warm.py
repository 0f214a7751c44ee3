"""Warm start: what a schedule's earlier runs hand to tonight's.

Two things, both read from the store when a run starts (so a resumed run rebuilds them the same):

1. **Top-k configurations** of the earlier runs (best first over all of them) are queued before the
   sampler proposes anything: last night's winner is re-measured on tonight's data first.
2. **A prior for model-based samplers**: the earlier runs' finished trials are shown to the sampler
   as extra history (``WarmStartSampler``), so the Bayesian model is fitted from the first trial
   instead of after ``n_startup`` random ones. Older nights count less: a run of age ``a`` (1 =
   the previous run) contributes ``decay ** (a - 1)`` of its finished trials (an even subset in
   trial order, so the prior is thinned, not biased to its best), and at most ``prior_runs`` runs
   are read. Tonight's own trials are always in full.

A space that changed between runs keeps what still fits: parameters that are no longer searched are
dropped from old configurations, and a configuration that lacks a new parameter or lies outside a
narrowed range is left out; ``WarmStart.dropped`` says what was dropped and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from costtune.history import FrozenTrial, History, Mode, TrialState
from costtune.space import SearchSpace
from costtune.words import plural


@dataclass(frozen=True)
class WarmStart:
    configs: list[dict[str, Any]] = field(default_factory=list)  # queued first, best first
    prior: tuple[FrozenTrial, ...] = ()  # shown to the sampler as history (negative numbers)
    dropped: list[str] = field(default_factory=list)  # one line per reason
    sources: list[str] = field(default_factory=list)  # the studies read, newest first

    def describe(self) -> str:
        if not self.sources:
            return "warm start: no earlier run to start from"
        text = (f"warm start from {', '.join(self.sources)}: {plural(len(self.configs), 'configuration')} queued, "
                f"{plural(len(self.prior), 'earlier observation')} as the sampler's prior")
        if self.dropped:
            text += "; dropped: " + "; ".join(self.dropped)
        return text


def _fit(space: SearchSpace, params: dict[str, Any], drops: dict[str, int]) -> dict[str, Any] | None:
    names = set(space.names)
    for extra in sorted(set(params) - names):
        key = f"parameter {extra!r} is no longer searched: removed from earlier configurations"
        drops[key] = drops.get(key, 0) + 1
    projected = {k: v for k, v in params.items() if k in names}
    missing = sorted(names - set(projected))
    if missing:
        key = f"left out: earlier configurations lack the new parameter {missing[0]!r}"
        drops[key] = drops.get(key, 0) + 1
        return None
    try:
        ok = space.contains(projected)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        key = "left out: earlier configurations outside the current ranges or choices"
        drops[key] = drops.get(key, 0) + 1
        return None
    return projected


def build_warm_start(space: SearchSpace, mode: Mode, earlier: list[tuple[str, History]], *, top_k: int,
                     prior_runs: int, decay: float) -> WarmStart:
    """``earlier``: (study name, its history) of the schedule's earlier runs, newest first.

    Returns the configurations to queue (at most ``top_k``, best first, no duplicates) and the prior
    (see the module doc). ``top_k == 0`` turns both off.
    """
    if top_k <= 0 or not earlier:
        return WarmStart()
    drops: dict[str, int] = {}
    ranked: list[tuple[float, dict[str, Any]]] = []
    prior: list[FrozenTrial] = []
    sign = 1.0 if mode == Mode.MIN else -1.0
    number = 0
    for age, (_name, history) in enumerate(earlier, start=1):
        done = sorted(history.completed(), key=lambda t: t.number)
        usable = [(t, p) for t in done if math.isfinite(float(t.value)) and (p := _fit(space, t.params, drops))]  # type: ignore[arg-type]
        ranked.extend((sign * float(t.value), p) for t, p in usable)  # type: ignore[arg-type]
        if age > prior_runs or not usable:
            continue
        keep = max(1, round(len(usable) * decay ** (age - 1)))
        picks = np.unique(np.linspace(0, len(usable) - 1, keep).round().astype(int))
        for i in picks:
            t, p = usable[int(i)]
            number -= 1
            prior.append(replace(t, number=number, params=p, source="prior", state=TrialState.COMPLETE))
    configs: list[dict[str, Any]] = []
    for _score, params in sorted(ranked, key=lambda x: x[0]):
        if params not in configs:
            configs.append(params)
        if len(configs) >= top_k:
            break
    dropped = [f"{reason} ({plural(n, 'trial')})" for reason, n in drops.items()]
    return WarmStart(configs, tuple(prior), dropped, [name for name, _ in earlier])


class WarmStartSampler:
    """Wraps a sampler; its ``suggest`` sees ``prior`` before the study's own trials.

    ``uses_history`` is the inner sampler's (a random sampler ignores the prior anyway).
    """

    def __init__(self, inner: Any, prior: tuple[FrozenTrial, ...]) -> None:
        self.inner = inner
        self.prior = prior
        self.uses_history = getattr(inner, "uses_history", True)

    def __getattr__(self, name: str) -> Any:  # cost_penalty, rung_history, ... of the inner sampler
        return getattr(self.inner, name)

    def suggest(self, space: SearchSpace, history: History, rng: np.random.Generator) -> dict[str, Any]:
        seen = History(history.metric, history.mode, self.prior + history.trials, history.budget_micros)
        return self.inner.suggest(space, seen, rng)
