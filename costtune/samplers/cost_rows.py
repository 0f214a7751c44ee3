"""The cost model's training data as columns over the study's trials, kept across suggestions.

``cost_model.cost_data`` states the rules (billed cost, projection of partial trials, start-up bills);
this module computes them with numpy over per-trial columns (charged or not, steps, state, billed
micro-dollars, placement, encoded row). With a ``TrialRows`` the columns of the leading trials that are
the very objects of the previous call are reused, so a suggestion at 10,000 trials looks at the trials
that changed, not at every trial; the result is the one a fresh computation gives.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from costtune.history import FrozenTrial, TrialState
from costtune.samplers.rows import TrialRows, in_order, shared_prefix

__all__ = ["RESOURCE_PARAMS", "cost_columns_data"]

# The names spec/resources.py gives a searched instance type and market (INSTANCE_PARAM, MARKET_PARAM).
RESOURCE_PARAMS = ("instance_type", "market")
_STATE = {TrialState.COMPLETE: 0, TrialState.STOPPED: 1, TrialState.RUNNING: 2}
_COMPLETE, _STOPPED, _RUNNING = 0, 1, 2

Row = np.ndarray | None
Rate = Callable[[dict[str, Any]], float]


def _resource(t: FrozenTrial) -> tuple[Any, ...]:
    """The trial's placement as a dictionary key; the type is part of it (1 and True differ)."""
    instance, market = t.params.get(RESOURCE_PARAMS[0]), t.params.get(RESOURCE_PARAMS[1])
    key = (type(instance), instance, type(market), market)
    try:
        hash(key)
    except TypeError:  # an unhashable choice value: its repr
        return (repr(instance), repr(market))
    return key


@dataclass(frozen=True)
class _Columns:
    trials: tuple[FrozenTrial, ...]
    charged: np.ndarray  # bool: a state that is billed and a positive bill
    steps: np.ndarray  # int: steps done (last_step + 1), -1 when unknown
    state: np.ndarray  # int: _COMPLETE, _STOPPED, _RUNNING, 3 otherwise
    cost: np.ndarray  # float: micro-dollars billed so far
    place: np.ndarray  # int: code of the trial's placement (codes are per cache)
    rates: np.ndarray  # float: rate(params) of charged trials with ``rate_of`` (1 otherwise)
    valid: np.ndarray  # bool: a charged trial whose configuration is in the space
    rows: np.ndarray  # (n, dim): the encoded configurations where ``valid``
    rate_of: Rate | None


_FIELDS = ("charged", "steps", "state", "cost", "place", "rates", "valid", "rows")


def _columns(trials: Sequence[FrozenTrial], encode: Callable[[list[FrozenTrial]], list[Row]],
             codes: dict[tuple[Any, ...], int], dim: int | None, rate: Rate | None) -> _Columns:
    n = len(trials)
    charged = np.zeros(n, dtype=bool)
    steps = np.full(n, -1, dtype=np.int64)
    state = np.full(n, 3, dtype=np.int8)
    cost = np.zeros(n)
    place = np.zeros(n, dtype=np.int64)
    rates = np.ones(n)
    billed: list[FrozenTrial] = []
    where: list[int] = []
    for i, t in enumerate(trials):
        code = _STATE.get(t.state)
        if code is None or t.cost_micros <= 0:
            continue
        charged[i], state[i], cost[i] = True, code, t.cost_micros
        if t.last_step is not None and t.last_step >= 0:
            steps[i] = t.last_step + 1
        place[i] = codes.setdefault(_resource(t), len(codes))
        if rate is not None:
            rates[i] = rate(t.params)
        billed.append(t)
        where.append(i)
    encoded = encode(billed)
    if dim is None:
        dim = next((len(r) for r in encoded if r is not None), 0)
    rows = np.zeros((n, dim))
    valid = np.zeros(n, dtype=bool)
    for i, row in zip(where, encoded, strict=True):
        if row is not None:
            rows[i], valid[i] = row, True
    return _Columns(tuple(trials), charged, steps, state, cost, place, rates, valid, rows, rate)


def _joined(head: _Columns, k: int, tail: _Columns) -> _Columns:
    """The first ``k`` trials' columns of ``head`` followed by ``tail``'s."""
    parts = (np.concatenate([getattr(head, f)[:k], getattr(tail, f)]) for f in _FIELDS)
    return _Columns(head.trials[:k] + tail.trials, *parts, tail.rate_of)


def _startup(k: np.ndarray, c: np.ndarray, place: np.ndarray) -> dict[int, float]:
    """Per placement code, the intercept of billed cost against steps done (least squares), clipped to
    [0, 0.9 x the placement's cheapest trial]; none while it has trials at fewer than two step counts."""
    out = {}
    for code in np.unique(place):
        sel = place == code
        kg, cg = k[sel].astype(float), c[sel]
        if len(np.unique(kg)) < 2:
            continue
        _, intercept = np.polyfit(kg, cg, 1)
        if math.isfinite(intercept):
            out[int(code)] = float(min(max(intercept, 0.0), 0.9 * cg.min()))
    return out


def _cached_columns(trials: tuple[FrozenTrial, ...], rows: TrialRows, rate: Rate | None) -> _Columns:
    with rows.lock:
        prev, codes = rows.derived.get("cost_columns", (None, {}))
    k = 0 if prev is None or prev.rate_of is not rate else shared_prefix(prev.trials, trials)
    tail = _columns(trials[k:], rows.rows, codes, rows.encoder.dim, rate)
    cols = tail if prev is None or k == 0 else _joined(prev, k, tail)
    with rows.lock:
        rows.derived["cost_columns"] = (cols, codes)
        rows.examined += len(tail.trials)
    return cols


def cost_columns_data(trials: tuple[FrozenTrial, ...], encode: Callable[[dict[str, Any]], Row] | TrialRows,
                      max_observations: int | None, rate: Rate | None,
                      min_complete: int) -> tuple[np.ndarray, np.ndarray, int]:
    """What ``cost_model.cost_data`` returns, for ``trials``; ``min_complete``: complete trials below
    which stopped trials without step counts still count as billed."""
    trials = in_order(trials)
    if isinstance(encode, TrialRows):
        cols = _cached_columns(trials, encode, rate)
    else:
        cols = _columns(trials, lambda ts: [encode(t.params) for t in ts], {}, None, rate)
    idx = np.flatnonzero(cols.charged)
    state, k, c = cols.state[idx], cols.steps[idx], cols.cost[idx]
    complete = state == _COMPLETE
    n_complete = int(complete.sum())
    base = np.maximum(k[complete] if n_complete else k, 0)
    full_steps = int(base.max()) if len(base) else 0
    has = k >= 0
    billed = complete | (has & (k >= full_steps))
    proj = ~billed & has & (full_steps > 0)
    keep = billed | proj | (~billed & ~proj & (state == _STOPPED) & (n_complete < min_complete))
    cost = c.copy()
    if proj.any():
        startup = _startup(k[has], c[has], cols.place[idx][has])
        a = np.array([startup.get(int(p), 0.0) for p in cols.place[idx][proj]])
        cost[proj] = a + (c[proj] - a) * full_steps / k[proj]
    if rate is not None:
        cost = cost / cols.rates[idx]
    finished = np.flatnonzero(keep & (state != _RUNNING))
    running = np.flatnonzero(keep & (state == _RUNNING))
    if max_observations is not None:  # the most recent: prices and code change over a long study
        finished, running = finished[-max_observations:], running[-max_observations:]
    finished = finished[cols.valid[idx[finished]]]
    running = running[cols.valid[idx[running]]]
    if not len(finished) + len(running):
        return np.zeros((0, 0)), np.zeros(0), 0
    order = np.concatenate([finished, running])
    return cols.rows[idx[order]], np.log(cost[order] / 1_000_000), len(finished)
