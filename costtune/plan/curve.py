"""How many trials a learning-curve-stopping sweep (``scheduler: {type: curve}``) starts, for ``costtune plan``.

Under curve stopping a trial is judged at checkpoints of its own spend, ``first * ratio**k`` (k >= 1,
never below ``min_usd``), where ``first`` is what it had spent at its first report, start-up included
(``costtune.schedulers.curve.CurveScheduler.next_check``). It can be stopped at the first checkpoint where
it has ``min_points`` reports, more than one step and at least ``LITTLE_LEFT`` of its steps left, and
only once some trial has completed. Whether it is stopped there depends on its curve and on the best
trial so far, which no plan knows, so the plan states an assumption and shows its range:

- **assumed** (a new study, or one with no finished trial): a share ``ASSUMED_STOP_SHARE`` (one half)
  of the trials is stopped at the first checkpoint where it can be judged, the rest run to their end
  (for a simulated sweep, each sampled configuration's checkpoints and end come from its workload's
  step times). The range goes from *fewest* trials (none stopped: every trial runs to its end, as
  under fifo) to *most* (every trial but the first ``workers`` stopped at its first judgeable
  checkpoint); ``curve_counts`` replays sweeps drawn from the sampled configurations for the counts, so
  that a few dear configurations weigh on a small budget as they do in a real sweep. With several workers
  the replay runs ``workers`` trials at once: a trial starts when a worker frees up, while the trials on the
  others have spent part of their cost, so more trials start than full costs in a row would fit. On the bundled
  benchmark workloads the share stopped was 0.1 to 0.75, many at later checkpoints: the central figure
  is a stated guess, the range is what to plan on.
- **observed** (a resumed study with finished trials): the share of its finished trials that curve
  stopped, and the mean cost of its stopped and of its completed trials, replace the assumption; the
  range is the share's 90% Wilson interval, widened by the 90% interval of the mean cost of a finished
  trial (its standard error; the cheapest end kept at or above half the cheaper figure).

Without a workload model (a command or cloud sweep) and no finished trials, a trial's checkpoints are
unknown: the plan keeps the fifo figure and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from costtune.plan.shapes import Shape
from costtune.schedulers.curve import LITTLE_LEFT
from costtune.spec import SweepSpec

ASSUMED_STOP_SHARE = 0.5  # trials stopped at their first judgeable checkpoint, when nothing is observed
DRAWS = 400  # replayed sweeps behind an assumed model's counts
_MOST_TRIALS = 5_000  # a replayed sweep's most trials (a longer one is replayed at a share of its budget)
_CELLS = 1_000_000  # trials drawn in all replays at most (8 MB an array) ...
_FEWEST_DRAWS = 50  # ... but never fewer replays than this
_Z90 = 1.645  # two-sided 90% normal quantile, for the observed share's Wilson interval


@dataclass(frozen=True)
class Observed:
    """A study's finished trials, for the observed stopping share: counts and mean costs (micro-dollars)."""

    stopped: int  # stopped by curve stopping (a verdict on record)
    completed: int  # ran to their end
    stopped_mean_micros: int
    completed_mean_micros: int
    sd_micros: float = 0.0  # standard deviation of a finished trial's cost
    first_full_micros: int | None = None  # mean cost of the first ``workers`` trials (never judged), when known

    @property
    def finished(self) -> int:
        return self.stopped + self.completed


@dataclass(frozen=True)
class CurveModel:
    """Expected cost of one trial under curve stopping: central, and the bounds of the range (micro-dollars).

    ``dearest`` gives the fewest trials, ``cheapest`` the most; ``share`` is the stopped share behind
    ``central`` (``share_low``..``share_high`` behind the bounds); ``source`` is "assumed" or "observed";
    ``first_full_micros`` what each of the first ``workers`` trials costs (nothing to judge them against)."""

    central: float
    cheapest: float
    dearest: float
    share: float
    share_low: float
    share_high: float
    source: str
    first_full_micros: float
    stop_micros: float | None = None  # mean spend at the first judgeable checkpoint (assumed only)
    full: tuple[float, ...] = ()  # assumed: each sampled configuration's cost run to its end ...
    stops: tuple[float, ...] = ()  # ... and stopped at its first judgeable checkpoint (its end when it has none)

    def describe(self) -> str:
        if self.source == "observed":
            return (f"curve: trials estimated from this study's finished trials: {self.share:.0%} stopped by curve "
                    f"(90% interval {self.share_low:.0%} to {self.share_high:.0%}), at their mean costs; the range is "
                    "that interval widened by the 90% interval of the mean cost of a trial")
        return (f"curve: trials estimated assuming {self.share:.0%} of trials are stopped at the first checkpoint "
                "where they can be judged (min_points reports, checkpoints at ratio**k times the spend at the "
                "first report) and the rest run to their end; the range goes from none stopped (fewest trials) "
                "to all but the first stopped there (most); the share really stopped depends on the workload")


def curve_model(spec: SweepSpec, shapes: list[Shape], full: list[int],
                observed: Observed | None = None) -> CurveModel | None:
    """The cost model of one trial under curve stopping, from ``observed`` finished trials when there are
    any (at least one stopped or completed), else from the sampled ``shapes`` and their ``full`` costs
    (micro-dollars, as ``analytic._full_costs``); None when neither is available."""
    if observed is not None and observed.finished > 0:
        return _from_observed(observed, full)
    if not shapes or not full:
        return None
    stops = [float(min(_first_judgeable(spec, s), c)) for s, c in zip(shapes, full, strict=True)]
    mean_full, mean_stop = float(np.mean(full)), float(np.mean(stops))
    p = ASSUMED_STOP_SHARE
    return CurveModel(central=p * mean_stop + (1 - p) * mean_full, cheapest=mean_stop, dearest=mean_full, share=p,
                      share_low=0.0, share_high=1.0, source="assumed", first_full_micros=mean_full,
                      stop_micros=mean_stop, full=tuple(float(c) for c in full), stops=tuple(stops))


def _from_observed(seen: Observed, full: list[int]) -> CurveModel:
    n, share = seen.finished, seen.stopped / seen.finished
    centre = (share + _Z90**2 / (2 * n)) / (1 + _Z90**2 / n)
    half = _Z90 / (1 + _Z90**2 / n) * math.sqrt(share * (1 - share) / n + _Z90**2 / (4 * n * n))
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    # a later trial run to its end costs what the study's did; none yet: what its first trials did, else the model's
    done = (float(seen.completed_mean_micros) if seen.completed else float(seen.first_full_micros)
            if seen.first_full_micros else float(np.mean(full)) if full else 0.0)
    stop = float(seen.stopped_mean_micros) if seen.stopped else done

    def cost(p: float) -> float:
        return p * stop + (1 - p) * done

    error = _Z90 * seen.sd_micros / math.sqrt(n)  # the mean cost's own 90% interval, half its width
    a, b = cost(low), cost(high)
    cheapest = max(min(a, b) - error, 0.5 * min(a, b))
    first = float(seen.first_full_micros) if seen.first_full_micros else done
    return CurveModel(central=cost(share), cheapest=cheapest, dearest=max(a, b) + error, share=share, share_low=low,
                      share_high=high, source="observed", first_full_micros=first)


def curve_counts(model: CurveModel, budget: int | None, limit: int | None,
                 workers: int) -> tuple[int | None, int | None, int | None]:
    """Trials started (central, fewest, most) under ``model`` within ``budget`` micro-dollars and ``limit`` trials.

    Assumed: sweeps of trials drawn from the sampled configurations are replayed until the budget is spent
    (``DRAWS`` of them, fewer for a sweep of many thousand trials; seeded: the plan is the same every time),
    each from its own resample (bootstrap) of the configurations, so that their sample's uncertainty is in
    the range; the first ``workers`` run to their end, each later one is stopped at its first judgeable
    checkpoint with the assumed share's chance. Central: the median count; fewest: the 10th percentile with
    none stopped; most: the 90th with all stopped. A few dear configurations weigh on a small budget's count
    more than a mean cost says. Observed: the budget over the mean costs (``trials_for``).
    """
    if budget is None or not model.full:
        def count(cost: float) -> int | None:
            return trials_for(budget, limit, workers, cost, model.first_full_micros)

        return count(model.central), count(model.dearest), count(model.cheapest)
    rng = np.random.default_rng(0)
    full, stops = np.array(model.full), np.array(model.stops)
    cheapest = max(1.0, float(stops.min()))
    need = workers + math.ceil(budget / cheapest) + 1
    scale = max(1.0, need / _MOST_TRIALS)  # a longer sweep is replayed at a share of its budget, counts scaled up
    length, spend = min(need, _MOST_TRIALS), budget / scale
    if limit is not None and scale == 1.0:
        length = min(length, limit)
    draws = max(_FEWEST_DRAWS, min(DRAWS, _CELLS // length))  # a long sweep: fewer replays, bounded memory
    # each replay draws from its own resample of the configurations: the sample's own uncertainty is in the range
    boot = rng.integers(len(full), size=(draws, len(full)))
    pick = np.take_along_axis(boot, rng.integers(len(full), size=(draws, length)), axis=1)
    stopped = rng.random((draws, length)) < model.share
    stopped[:, :workers] = False

    def counts(costs: np.ndarray) -> np.ndarray:
        return (_spent_at_starts(costs, workers, spend) < spend).sum(axis=1)  # starts while money is left

    def scaled(value: float) -> int:
        n = round(value * scale) if scale > 1.0 else int(value)
        return n if limit is None else min(n, limit)

    central = counts(np.where(stopped, stops[pick], full[pick]))
    none = counts(full[pick])
    every = counts(np.where(np.arange(length) < workers, full[pick], stops[pick]))
    return (scaled(float(np.median(central))), scaled(float(np.percentile(none, 10))),
            scaled(float(np.percentile(every, 90))))


def _spent_at_starts(costs: np.ndarray, workers: int, spend: float) -> np.ndarray:
    """What each replayed sweep (a row of trial costs, micro-dollars) has spent when each of its trials starts.

    One worker: the costs of the trials before it. More: ``workers`` trials run at once, each spending at the
    same pace (its time taken as its cost), the next one starting on the worker that frees up first; the trials
    still running on the other workers have spent only part of their cost by then, so more trials start within
    a cap than its full costs in a row say (the first ``workers`` all start at once, on nothing spent). Once
    every row has spent ``spend``, the later starts are left at infinity."""
    total = np.cumsum(costs, axis=1) - costs
    if workers <= 1 or costs.shape[1] <= workers:
        return total if workers <= 1 else np.zeros_like(costs)
    draws, length = costs.shape
    ends = costs[:, :workers].copy()  # when each worker's trial ends (spend-time units)
    out = np.full_like(costs, np.inf)
    out[:, :workers] = 0.0
    rows = np.arange(draws)
    for k in range(workers, length):
        w = ends.argmin(axis=1)
        now = ends[rows, w]
        # all started trials' costs, less what the ones still running on the other workers have yet to spend
        out[:, k] = total[:, k] - np.maximum(0.0, ends - now[:, None]).sum(axis=1)
        ends[rows, w] = now + costs[:, k]
        if (out[:, k] >= spend).all():
            break
    return out


def trials_for(budget: float | None, limit: int | None, workers: int, per_trial: float,
               first_full: float) -> int | None:
    """Trials ``budget`` micro-dollars start when the first ``workers`` cost ``first_full`` each (none can be
    stopped before a trial completes) and the rest ``per_trial``; capped by ``limit``; None when unbounded."""
    if budget is None:
        return limit
    first = min(workers, limit) if limit is not None else workers
    if first_full > 0 and budget <= first * first_full:
        n = math.floor(budget / first_full) if first_full > 0 else first
    elif per_trial <= 0:
        return limit
    else:
        n = first + math.floor((budget - first * first_full) / per_trial)
    return n if limit is None else min(n, limit)


def _first_judgeable(spec: SweepSpec, shape: Shape) -> float:
    """Spend (micro-dollars) at the first checkpoint where a trial of ``shape`` can be judged; inf when it has
    none before its end (too few reports, too few steps left)."""
    cfg, sim = spec.scheduler, spec.resources.simulation
    rule, rate = spec.resources.billing, shape.rate_micros
    if sim is None or rate <= 0 or not shape.steps:
        return math.inf
    seconds = np.repeat([s for s, _ in shape.steps], [n for _, n in shape.steps])
    ends_ms = np.round((shape.startup_s + np.cumsum(seconds)) * 1000)  # the end of each step, from launch
    spend = np.array([rule.charge(int(ms), rate) for ms in ends_ms])
    first = max(1, int(spend[0]))
    ratio, floor, need = float(cfg.get("ratio", 2.0)), cfg.get("min_usd_micros") or 0, int(cfg.get("min_points", 5))
    final = sim.max_steps - 1
    level = first * ratio
    while level < floor:
        level *= ratio
    while level <= spend[-1]:
        reports = int(np.searchsorted(spend, level, side="right"))  # steps ended by this spend
        left = final - (reports - 1)
        if reports >= need and left > 1 and left >= LITTLE_LEFT * (final + 1):
            return math.ceil(level)
        if left <= 1 or left < LITTLE_LEFT * (final + 1):
            return math.inf
        level *= ratio
    return math.inf
