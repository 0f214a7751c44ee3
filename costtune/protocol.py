"""The stdout line protocol between a command trial and its controller.

A trial reports by printing one line per report::

    costtune:report {"step": 3, "val_loss": 0.412, "accuracy": 0.91}

``step`` is an integer from 0 to 2**31 - 1 (omit it to mean "the previous step + 1"); every other
key is a metric name with a number. Any other line is ordinary output. One rule covers every bad
report line, and nothing a trial prints can crash its controller:

- a line that starts with the prefix but is malformed (not a JSON object, a key given twice, over
  ``MAX_LINE_CHARS`` characters or ``MAX_METRICS`` metrics, nested values, a bad name, a step out of
  range) is ignored with a warning naming the field;
- a non-finite value (NaN, +-Infinity, an integer beyond float range) is never stored: for the
  objective metric it fails the trial ("objective val_loss was NaN at step 1",
  :func:`nonfinite_objective`); any other metric is dropped from the line with a warning.

Python scripts call :func:`costtune.report` instead of formatting lines by hand. Parameters reach
a trial as argv (the sweep's ``command`` template), as ``COSTTUNE_PARAM_<NAME>`` environment
variables and as a JSON file named by ``COSTTUNE_PARAMS_FILE``; :func:`params` reads that file.
"""

from __future__ import annotations

import contextvars
import json
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Protocol

from costtune.errors import InputError, shown
from costtune.names import METRIC_NAME_RULE, is_metric_name

PREFIX = "costtune:report "
ENV_PARAMS_FILE = "COSTTUNE_PARAMS_FILE"
ENV_TRIAL_DIR = "COSTTUNE_TRIAL_DIR"
ENV_CHECKPOINT_DIR = "COSTTUNE_CHECKPOINT_DIR"
ENV_TRIAL_NUMBER = "COSTTUNE_TRIAL_NUMBER"
ENV_STUDY = "COSTTUNE_STUDY"
ENV_ATTEMPT = "COSTTUNE_ATTEMPT"


MAX_LINE_CHARS = 100_000  # a longer report line is ignored (nor parsed: no deep nesting, no huge numbers)
MAX_METRICS = 256  # metrics in one report line
MAX_STEP = 2**31 - 1  # the store's report.step is a 32-bit INTEGER on PostgreSQL
ENV_OBJECTIVE = "COSTTUNE_OBJECTIVE"  # the sweep's objective metric, set in a command trial's environment


class MetricLineError(InputError):
    """A line that claims to be a report but is not a valid one."""


class NonFiniteObjective(MetricLineError):
    """The objective metric was reported as NaN or infinite: the trial fails with this message."""


@dataclass(frozen=True)
class MetricReport:
    step: int | None
    metrics: dict[str, float]  # finite values only
    nonfinite: dict[str, str] = field(default_factory=dict)  # name -> value as text ("NaN", "inf"), dropped


@dataclass(frozen=True)
class TimedReport(MetricReport):
    """A report whose provider knows when it was made: ``billable_ms`` is the attempt's billable
    time (milliseconds from launch) at that moment. The simulator hands these over, possibly some
    time after they were made, so the controller books each at its own moment, not at the read."""

    billable_ms: int = 0


def nonfinite_objective(metric: str, value: str | float, step: int | None) -> str:
    """The one wording of a non-finite objective, for command and in-process trials alike:
    ``objective val_loss was NaN at step 1`` (``value`` as :func:`value_text` writes it)."""
    text = value if isinstance(value, str) else value_text(value)
    at = "" if step is None else f" at step {step}"
    return f"objective {metric} was {text}{at}"


def value_text(value: Any) -> str:
    """NaN, inf, -inf; an integer beyond float range by its size; anything else shortened."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int) and not isinstance(value, bool) and not _finite(value):
        return f"{'-' if value < 0 else ''}1e{len(str(abs(value))) - 1} (an integer beyond float range)"
    return _short(value)


def format_line(step: int | None, metrics: dict[str, Any], *, allow_nonfinite: bool = False) -> str:
    """The report line for ``metrics`` at ``step``; MetricLineError for what ``parse_line`` would
    ignore. With ``allow_nonfinite`` a NaN or infinite value is written (as JSON ``NaN``/``Infinity``)
    so the controller, which knows the objective, decides what it means."""
    payload: dict[str, Any] = {} if step is None else {"step": step}
    payload.update(metrics)
    report = _check(payload)
    if report.nonfinite and not allow_nonfinite:
        name, text = next(iter(report.nonfinite.items()))
        raise MetricLineError(f"metric line: {name} must be a finite number, got {text}")
    return PREFIX + json.dumps(payload, separators=(",", ":"))


def parse_line(line: str) -> MetricReport | None:
    """The report on ``line``, None for ordinary output, MetricLineError for a bad report.

    Never raises anything else, whatever the line holds. Non-finite values come back in
    ``nonfinite``, not in ``metrics``: the caller knows whether one is the objective.
    """
    tag = PREFIX.rstrip()
    if not line.startswith(tag):
        return None
    body = line[len(tag) :]
    if body and not body[0].isspace() and body[0] != "{":
        return None  # "costtune:reporting done" is ordinary output
    body = body.strip()
    if len(body) > MAX_LINE_CHARS:
        raise MetricLineError(f"metric line: longer than {MAX_LINE_CHARS} characters ({len(body)}), "
                              f"got {body[:40]!r}...")
    try:
        payload = json.loads(body, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise MetricLineError(f"metric line: nested too deeply, got {body[:40]!r}...") from None
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        reason = getattr(exc, "msg", None) or str(exc).split(";")[0]
        raise MetricLineError(f"metric line: not a JSON object ({reason}), got {body[:80]!r}") from None
    if not isinstance(payload, dict):
        raise MetricLineError(f"metric line: must be a JSON object, got {body[:80]!r}")
    return _check(payload)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all distinct: ``{"loss": NaN, "loss": 0.5}`` is ambiguous (JSON
    readers differ on which one wins), so such a line is a bad line, not the last value."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise MetricLineError(f"metric line: key {_short(key)} is given twice; each key must appear once")
        seen.add(key)
    return dict(pairs)


def _check(payload: dict[str, Any]) -> MetricReport:
    step = payload.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP):
        raise MetricLineError(f"metric line: step must be an integer from 0 to {MAX_STEP}, got {_short(step)}")
    if len(payload) - ("step" in payload) > MAX_METRICS:
        raise MetricLineError(f"metric line: more than {MAX_METRICS} metrics ({len(payload)})")
    metrics: dict[str, float] = {}
    nonfinite: dict[str, str] = {}
    for name, value in payload.items():
        if name == "step":
            continue
        if not is_metric_name(name):
            raise MetricLineError(f"metric line: key {_short(name)} {METRIC_NAME_RULE}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MetricLineError(f"metric line: {name} must be a finite number, got {_short(value)}")
        if _finite(value):
            metrics[name] = float(value)
        else:
            nonfinite[name] = value_text(value)
    if not metrics and not nonfinite:
        raise MetricLineError("metric line: no metric given (e.g. {\"step\": 1, \"val_loss\": 0.3})")
    return MetricReport(step=step, metrics=metrics, nonfinite=nonfinite)


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float range
        return False


def _short(value: Any) -> str:
    try:
        text = shown(value, json=True)  # as the line spells it: true, null, "text", NaN
    except (ValueError, RecursionError):  # an int too long to print, a deep structure
        return f"a {type(value).__name__} too large to show"
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


class _Reporter(Protocol):
    def report(self, step: int | None = None, **metrics: float) -> None: ...


# Set by an in-process study while it runs an objective, so one training function serves both
# command trials (lines on stdout) and in-process trials (straight into the store).
current_trial: contextvars.ContextVar[_Reporter | None] = contextvars.ContextVar(
    "costtune_current_trial", default=None
)


def report(step: int | None = None, **metrics: float) -> None:
    """Report metrics for ``step`` from inside a trial.

    In a command trial this prints one protocol line (flushed at once, so the controller sees it
    while the trial runs); inside ``Study.optimize`` it reports to the running trial directly.
    Raises MetricLineError for a malformed report (a bad name, no metric; outside a controller's
    trial also a non-finite value), and NonFiniteObjective after printing when the objective
    metric is NaN or infinite (the controller fails the trial with the same message). Another
    non-finite metric is printed as it is: the controller drops it with a warning.
    """
    trial = current_trial.get()
    if trial is not None:
        trial.report(step, **metrics)
        return
    objective = os.environ.get(ENV_OBJECTIVE)  # unset outside a controller's trial: every value must be finite
    line = format_line(step, metrics, allow_nonfinite=bool(objective))
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    value = metrics.get(objective) if objective else None
    if isinstance(value, int | float) and not _finite(value):
        # The controller read the line and fails the trial with this reason; raising here too keeps
        # a training loop from going on with a NaN loss.
        raise NonFiniteObjective(nonfinite_objective(objective, value_text(value), step))  # type: ignore[arg-type]


def params() -> dict[str, Any]:
    """The running trial's parameters, read from the JSON file the controller wrote."""
    path = os.environ.get(ENV_PARAMS_FILE)
    if not path:
        raise InputError(f"{ENV_PARAMS_FILE} is not set: params() works inside a costtune command trial")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise InputError(f"{ENV_PARAMS_FILE}: cannot read {path!r}: {exc.strerror}") from None
    except ValueError as exc:
        raise InputError(f"{ENV_PARAMS_FILE}: {path!r} is not a JSON object of parameters ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{ENV_PARAMS_FILE}: {path!r} is not a JSON object of parameters")
    return data
