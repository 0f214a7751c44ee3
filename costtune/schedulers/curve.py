"""Learning-curve stopping: stop a trial whose extrapolated final value cannot beat the best one.

``scheduler: {type: curve}`` needs no dollar figures. A trial is judged at checkpoints of its own
spend: ``ratio``, ``ratio**2``, ... times what it had spent at its first report (start-up money
included), so it is never judged on its start-up alone. At a checkpoint with at least ``min_points``
reports its curve (objective by step) is fitted with two saturating families and extrapolated to its
final step:

- exponential saturation ``y = a + b * exp(-c * x)`` and power law ``y = a + b * x**-c`` with
  ``x = step + 1``; for each family ``c`` runs over a fixed grid and ``a, b`` are linear least
  squares, the best grid point wins (after Domhan et al., IJCAI 2015, who extrapolate with a
  weighted ensemble of such families; here the two are kept apart and the more hopeful one decides);
- the spread comes from a residual bootstrap (each resample refitted over the whole grid), plus one
  resampled residual for the noise of the final report, residuals scaled up by ``sqrt(n / (n - 3))``.

It is stopped when, for both families, the share of bootstrap predictions that beat the incumbent
(the best final value of completed trials; none yet: nothing is stopped) is below ``1 - confidence``.
Separately, a trial whose last third of reports brought no new best (beyond the noise) and whose
best so far is worse than the incumbent by two noise widths has plateaued or turned up: stopped too.
A trial with one step left, or under ``LITTLE_LEFT`` of its steps, is not judged: stopping saves too little.
A verdict quotes the central ``confidence`` interval of the bootstrap predictions.

Everything here is pure: a verdict depends only on the trial's reports, the incumbent and the final
step, all of them in the store, so a resumed sweep judges exactly as the first run did.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from costtune.errors import SpecError
from costtune.history import Mode
from costtune.money import POSITIVE, format_usd, usd_to_micros

FIELDS = ("type", "min_points", "confidence", "ratio", "min_usd")
DEFAULT_MIN_POINTS = 5
DEFAULT_CONFIDENCE = 0.95
DEFAULT_RATIO = 2.0
LITTLE_LEFT = 0.1  # a trial with less than this share of its steps left is not judged: stopping saves too little
_QUOTED = " (not quoted: numbers in a sweep file are numbers)"
_BOOTSTRAP = 200
_EXP_GRID = np.geomspace(1e-3, 3.0, 200)  # c of a + b * exp(-c x), per step
_POW_GRID = np.geomspace(0.05, 3.0, 100)  # c of a + b * x**-c


def curve_config(value: dict[str, Any]) -> dict[str, Any]:
    """Validate a ``{type: curve}`` section; every field is optional.

    ``min_points`` (int >= 3, default 5): reports a trial needs before it is judged; ``confidence``
    (0.5 < c < 1, default 0.95): it is stopped when its chance to beat the best is below ``1 - c``;
    ``ratio`` (1 < r <= 100, default 2): checkpoints are its spend at first report times ``r, r**2, ...``;
    ``min_usd`` (dollars > 0, or absent): no check before the trial has spent that much. Returns the
    normalised dict (``min_usd_micros`` added), which validates to itself; raises ``SpecError``
    naming the field and value.
    """
    for key in value:
        if key not in FIELDS and key != "min_usd_micros":
            raise SpecError(f"scheduler.{key}", f"unknown field for curve; allowed: {', '.join(FIELDS)}")
    from costtune.spec.fields import integer  # here: costtune.spec imports this module

    min_points = value.get("min_points", DEFAULT_MIN_POINTS)
    min_points = integer(min_points, "scheduler.min_points", minimum=3, hint=_QUOTED * isinstance(min_points, str))
    confidence = _number(value.get("confidence", DEFAULT_CONFIDENCE), "scheduler.confidence")
    if not 0.5 < confidence < 1:
        raise SpecError("scheduler.confidence", "must be a number between 0.5 and 1 (exclusive)",
                        value.get("confidence"))
    ratio = _number(value.get("ratio", DEFAULT_RATIO), "scheduler.ratio")
    if not 1 < ratio <= 100:
        raise SpecError("scheduler.ratio", "must be a number > 1 and <= 100", value.get("ratio"))
    cfg: dict[str, Any] = {"type": "curve", "min_points": min_points, "confidence": confidence, "ratio": ratio,
                           "min_usd": None, "min_usd_micros": None}
    if value.get("min_usd") is not None:
        micros = usd_to_micros(value["min_usd"], "scheduler.min_usd", minimum=POSITIVE,
                               why=" (leave it out for no floor)")
        cfg["min_usd"] = f"{Decimal(str(value['min_usd']).strip().lstrip('$')):f}"
        cfg["min_usd_micros"] = micros
    given = value.get("min_usd_micros")
    if given is not None and given != cfg["min_usd_micros"]:
        raise SpecError("scheduler.min_usd_micros", f"does not match scheduler.min_usd ({cfg['min_usd_micros']})",
                        given)
    return cfg


def _number(value: Any, path: str) -> float:
    """An int or float, finite: numbers must be numbers, as everywhere in a sweep file (a quoted ``"0.9"``
    is refused like a quoted integer; only dollar amounts may be strings)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(path, f"must be a number{_QUOTED * isinstance(value, str)}", value)
    if not math.isfinite(value):
        raise SpecError(path, "must be a finite number", value)
    return float(value)


@dataclass(frozen=True)
class CurveVerdict:
    stop: bool
    reason: str  # why, for the trial's record ("" when it runs on without anything to say)


@dataclass(frozen=True)
class Forecast:
    """A family's prediction of the final value: median, ``low``-``high`` (the central ``confidence`` share of
    the bootstrap), P(beats the best)."""

    family: str
    median: float
    low: float
    high: float
    p_better: float


class CurveScheduler:
    """Checkpoints and verdicts of learning-curve stopping; see the module docstring.

    ``seed`` makes the bootstrap reproducible: a verdict's generator is seeded by (seed, trial number,
    number of points), so replaying a sweep draws the very same resamples.
    """

    kind = "curve"

    def __init__(self, cfg: dict[str, Any], *, mode: str | Mode, seed: int = 0) -> None:
        cfg = curve_config(cfg)
        if mode not in (Mode.MIN, Mode.MAX):
            raise SpecError("objective.mode", "must be min or max", mode)
        self.mode = Mode(mode)
        self.min_points: int = cfg["min_points"]
        self.confidence: float = cfg["confidence"]
        self.ratio: float = cfg["ratio"]
        self.min_micros: int = cfg["min_usd_micros"] or 0
        self.seed = seed

    def next_check(self, first_report_micros: int, spent_micros: int) -> int:
        """The first checkpoint above ``spent_micros``: ``first * ratio**k`` (k >= 1), at least ``min_usd``.

        ``first_report_micros`` is the trial's spend at its first report (start-up included); a trial
        that reported at no cost is checked from one micro-dollar on."""
        first = max(1, first_report_micros)
        level = first * self.ratio
        while level <= spent_micros or level < self.min_micros:
            level *= self.ratio
        return math.ceil(level)

    def judge(self, points: Sequence[tuple[int, float]], incumbent: float | None, final_step: int | None,
              *, number: int = 0) -> CurveVerdict:
        """Stop or run on, given the trial's (step, value) reports in order, the best final value of
        completed trials (None: none yet, never stop) and the step it ends at (None: unknown, the
        curve's asymptote is its final value)."""
        by_step: dict[int, float] = {}
        for step, value in points:
            if value is not None and math.isfinite(value):
                by_step[int(step)] = float(value)  # a relaunched attempt's re-reported steps replace the old ones
        n = len(by_step)
        if incumbent is None or not math.isfinite(incumbent):
            return CurveVerdict(False, "")
        if n < self.min_points:
            return CurveVerdict(False, f"curve: {n} of {self.min_points} reports needed to judge")
        steps = np.array(sorted(by_step), dtype=float)
        sign = -1.0 if self.mode == Mode.MAX else 1.0
        y = sign * np.array([by_step[int(s)] for s in steps])
        best = sign * incumbent
        last = int(steps[-1])
        if final_step is not None and final_step <= last:
            return CurveVerdict(False, "curve: at its final step")
        if final_step is not None and _little_left(last, final_step):
            return CurveVerdict(False, f"curve: not judged at step {last} of {final_step}: stopping it now "
                                       "would save almost nothing")
        stalled = _stalled(y, best)
        if stalled is not None:
            k, noise = stalled
            return CurveVerdict(True, f"curve: no new best over its last {k} reports (best {_v(sign * y.min())}, "
                                      f"noise ~{_v(noise)}), worse than the best {_v(incumbent)}")
        rng = np.random.default_rng([self.seed, number, n])
        x = steps + 1.0
        horizon = None if final_step is None else float(final_step) + 1.0
        forecasts = [_forecast(name, x, y, horizon, best, rng, self.confidence) for name in ("exp", "pow")]
        hopeful = max(forecasts, key=lambda f: f.p_better)
        lo, med, hi = sorted(sign * v for v in (hopeful.low, hopeful.median, hopeful.high))
        where = "its asymptote" if final_step is None else f"step {final_step}"
        said = (f"predicted {_v(med)} at {where} ({interval_text(self.confidence)} interval {_v(lo)} to {_v(hi)}, "
                f"{hopeful.p_better:.0%} chance to beat the best {_v(incumbent)})")
        if hopeful.p_better < 1.0 - self.confidence:
            return CurveVerdict(True, f"curve: {said}")
        return CurveVerdict(False, f"curve: {said}")


def interval_text(confidence: float) -> str:
    """The central interval a verdict quotes, as a percentage: 0.95 -> "95%", 0.975 -> "97.5%"."""
    return f"{round(confidence * 100, 6):g}%"


def _little_left(last: int, final_step: int) -> bool:
    """Whether stopping at step ``last`` of ``final_step`` saves almost nothing: at most one step left, or
    the steps left under ``LITTLE_LEFT`` of the trial's steps (its remaining spend, at a steady cost per
    step, under that share of its expected cost)."""
    left = final_step - last
    return left <= 1 or left < LITTLE_LEFT * (final_step + 1)


def _v(value: float) -> str:
    return f"{value:.4g}"


def _stalled(y: np.ndarray, best: float) -> tuple[int, float] | None:
    """(k, noise) when the last k = n // 3 (>= 2) reports brought no new best beyond the noise and the
    best so far is worse than ``best`` by two noise widths; lower is better. Noise: MAD of second
    differences / sqrt(6) (the smooth trend mostly cancels in them)."""
    n = len(y)
    k = max(2, n // 3)
    if n - k < 3:
        return None
    second = np.diff(y, 2)
    noise = 1.4826 * float(np.median(np.abs(second - np.median(second)))) / math.sqrt(6.0)
    if y[-k:].min() < y[:-k].min() - noise or y.min() <= best + 2.0 * noise:
        return None
    return k, noise


def _bases(family: str, x: np.ndarray) -> np.ndarray:
    """Shape (grid, len(x)): the nonlinear basis of each grid point at ``x``."""
    if family == "exp":
        return np.exp(-np.outer(_EXP_GRID, x))
    return np.power(x[None, :], -_POW_GRID[:, None])


def _forecast(family: str, x: np.ndarray, y: np.ndarray, horizon: float | None, best: float,
              rng: np.random.Generator, confidence: float) -> Forecast:
    """Fit one family by grid + linear least squares, residual-bootstrap it, predict at ``horizon``; the
    interval is the central ``confidence`` share of the bootstrap predictions."""
    n = len(x)
    basis = _bases(family, x)  # (G, n)
    design = np.stack([np.ones_like(basis), basis], axis=-1)  # (G, n, 2)
    pinv = np.linalg.pinv(design)  # (G, 2, n)
    at = np.zeros(len(basis)) if horizon is None else _bases(family, np.array([horizon]))[:, 0]  # (G,)

    def fit(ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ys (B, n) -> (prediction at horizon, fitted curve), each per resample, best grid point."""
        coef = np.einsum("gkn,bn->bgk", pinv, ys)  # (B, G, 2)
        fitted = np.einsum("gnk,bgk->bgn", design, coef)  # (B, G, n)
        sse = ((fitted - ys[:, None, :]) ** 2).sum(axis=-1)  # (B, G)
        g = sse.argmin(axis=1)
        rows = np.arange(len(ys))
        return coef[rows, g, 0] + coef[rows, g, 1] * at[g], fitted[rows, g]

    _, fitted = fit(y[None, :])
    residuals = (y - fitted[0]) * math.sqrt(n / max(1, n - 3))
    resampled = fitted[0][None, :] + rng.choice(residuals, size=(_BOOTSTRAP, n), replace=True)
    predictions, _ = fit(resampled)
    predictions = predictions + rng.choice(residuals, size=_BOOTSTRAP, replace=True)
    tail = 50.0 * (1.0 - confidence)
    low, median, high = np.percentile(predictions, [tail, 50.0, 100.0 - tail])
    return Forecast(family, float(median), float(low), float(high), float((predictions < best).mean()))


def check_text(micros: int) -> str:
    """A checkpoint's amount as the CLI prints money."""
    return format_usd(micros)
