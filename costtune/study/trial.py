"""The trial object an in-process objective receives.

It hands out parameters (sampled up front from the study's space, or on first request for
define-by-run objectives), takes reports, and carries the verdict of its dollar rungs and of the
study's cap: ``should_stop()`` turns true when it must end, and ``raise StopTrial()`` ends it cleanly.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from costtune.errors import InputError, SpecError, shown
from costtune.history import FrozenTrial
from costtune.names import check_param_name
from costtune.protocol import MetricLineError, format_line
from costtune.space import Categorical, Int, LogUniform, Uniform, parse_distribution

if TYPE_CHECKING:
    from costtune.space import Distribution


class TrialHost(Protocol):
    """What a trial needs of its study (``costtune.study.Study`` is one); no import of it here."""

    name: str
    seed: int

    def trial_dir(self, number: int) -> str: ...

    def space_dict(self) -> dict[str, Any]: ...

    def add_param(self, trial_id: int, name: str, value: Any, dist: dict[str, Any]) -> None: ...

    def record_report(self, trial: Trial, step: int, metrics: dict[str, Any]) -> str | None:
        """Store a report; return why the trial must stop now, or None (raises ``TrialFailed``)."""
        ...

    def fail(self, trial: Trial, error: str) -> None:
        """Fail a running trial with ``error`` as its reason, its money settled; nothing for one that ended."""
        ...


class Trial:
    def __init__(
        self, study: TrialHost, trial_id: int, number: int, params: dict[str, Any], attempt_id: int | None,
        output_dir: str | None,
    ) -> None:
        self._study = study
        self._id = trial_id
        self.number = number
        self._params = dict(params)
        self._attempt_id = attempt_id
        self._output_dir = output_dir
        self._last_step: int | None = None
        self._stop: str | None = None
        self.last_report: FrozenTrial | None = None
        self.closed = False  # told (or failed by a report): nothing more is recorded for it
        self.ended_as: str | None = None  # the state it was closed with ("complete", "failed", ...)
        self.failure: str | None = None  # why it failed, when a report failed it

    @property
    def id(self) -> int:
        """The trial's row id in the store (``number`` is what users see)."""
        return self._id

    @property
    def attempt_id(self) -> int | None:
        return self._attempt_id

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    @property
    def study_name(self) -> str:
        return self._study.name

    @property
    def study(self) -> TrialHost:
        """The study object that asked for this trial (``Study.tell`` books it there)."""
        return self._study

    @property
    def output_dir(self) -> Path:
        """A directory of this trial's own for logs, checkpoints and the model it produces."""
        path = Path(self._output_dir or self._study.trial_dir(self.number))
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- parameters ----------------------------------------------------------------------
    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        dist: Distribution = LogUniform(low, high) if log else Uniform(low, high)
        return float(self.suggest(name, dist))

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return int(self.suggest(name, Int(low, high, step=step, log=log)))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        listed = isinstance(choices, Sequence) and not isinstance(choices, str)  # else suggest() names it
        return self.suggest(name, Categorical(tuple(choices) if listed else choices))

    def suggest(self, name: str, dist: Distribution | dict[str, Any]) -> Any:
        """The value of ``name``: the sampler's if the study's space has it, else a fresh draw.

        A new parameter joins the study's space, so the model-based sampler uses it from the
        next trial on. Bad arguments (a bad name or bounds, a known name with another
        distribution) raise ``SpecError`` and fail the trial with that reason, its money settled
        (nothing is left running or held; it cannot be told afterwards). A trial that has ended (told,
        or failed) takes no parameters: ``InputError`` naming its state, nothing stored.
        """
        if self.closed:
            raise InputError(f"trial {self.number} has already finished ({self.ended_as or 'failed'}); a finished "
                             "trial takes no new parameters")
        try:
            dist = self._checked(name, dist)
        except SpecError as exc:
            self._study.fail(self, str(exc))
            raise
        if name in self._params:
            return self._params[name]
        rng = np.random.default_rng([self._study.seed, self.number, zlib.crc32(name.encode())])
        value = dist.sample(rng)
        self._study.add_param(self._id, name, value, dist.to_dict())
        self._params[name] = value
        return value

    def _checked(self, name: str, dist: Distribution | dict[str, Any]) -> Distribution:
        """``dist`` parsed and checked against the study's space; ``SpecError`` naming ``space.NAME``."""
        space = self._study.space_dict()
        if name not in space:  # a new parameter: the one name rule of sweep files (costtune.names)
            check_param_name(name, f"space.{name}", {n.upper(): f"space.{n}" for n in space})
        parsed = parse_distribution(dist, f"space.{name}")  # validates objects built directly too
        known = space.get(name)
        if known is not None and known != parsed.to_dict():
            raise SpecError(f"space.{name}", f"already defined as {shown(_plain(known))}, asked now as "
                            f"{shown(_plain(parsed.to_dict()))}")
        return parsed

    # -- reports -------------------------------------------------------------------------
    def report(self, step: int | None = None, **metrics: float) -> None:
        """Record metrics at ``step`` (default: the previous step + 1) and let the scheduler judge.

        A NaN or infinite value of the study's objective metric fails the trial ("objective
        val_loss was NaN at step 3") and raises ``TrialFailed``; a non-finite value of any other
        metric is dropped with a warning. Other bad input (a negative step, a metric that is not a
        number) raises ``SpecError``.
        """
        if step is None:
            step = 0 if self._last_step is None else self._last_step + 1
        try:
            format_line(step, {k: 0.0 if _non_finite(v) else v for k, v in metrics.items()})  # the checks a line gets
        except MetricLineError as exc:
            raise SpecError("report", str(exc).removeprefix("metric line: ")) from None
        self._last_step = step
        stop = self._study.record_report(self, step, metrics)
        if stop is not None and self._stop is None:
            self._stop = stop

    def should_stop(self) -> bool:
        """True once the trial should end: a dollar rung stopped it, the study's cap cannot fund
        more of it, or a custom scheduler said stop; then ``raise StopTrial()``."""
        return self._stop is not None

    @property
    def stop_reason(self) -> str | None:
        """Why ``should_stop()`` turned true (``"below the top 1/3 at $0.001 rung (rank 2 of 2)"``)."""
        return self._stop

    def __repr__(self) -> str:
        return f"Trial(number={self.number}, params={self._params!r})"


def _non_finite(value: Any) -> bool:
    """A float that is NaN or infinite (judged by the study's rule, not rejected as bad input)."""
    return isinstance(value, float) and not math.isfinite(value)


def _plain(dist: dict[str, Any]) -> dict[str, Any]:
    """A distribution's dict with whole-number bounds spelled as written (``low: 0``, not ``0.0``)."""
    return {k: int(v) if isinstance(v, float) and v.is_integer() and k != "choices" else v for k, v in dist.items()}
