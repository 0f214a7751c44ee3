"""The stdout line protocol between a command trial and its controller.

A trial reports by printing one line per report::

    costtune:report {"step": 3, "val_loss": 0.412, "accuracy": 0.91}

``step`` is a non-negative integer (omit it to mean "the previous step + 1"); every other key is
a metric name with a finite number. Any other line is ordinary output. A line that starts with
the prefix but is malformed is ignored with a warning naming the field, never fatal to the trial.

Python scripts call :func:`costtune.report` instead of formatting lines by hand. Parameters reach
a trial as argv (the sweep's ``command`` template), as ``COSTTUNE_PARAM_<NAME>`` environment
variables and as a JSON file named by ``COSTTUNE_PARAMS_FILE``; :func:`params` reads that file.
"""

from __future__ import annotations

import contextvars
import json
import math
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Protocol

from costtune.errors import InputError

PREFIX = "costtune:report "
ENV_PARAMS_FILE = "COSTTUNE_PARAMS_FILE"
ENV_TRIAL_DIR = "COSTTUNE_TRIAL_DIR"
ENV_CHECKPOINT_DIR = "COSTTUNE_CHECKPOINT_DIR"
ENV_TRIAL_NUMBER = "COSTTUNE_TRIAL_NUMBER"
ENV_STUDY = "COSTTUNE_STUDY"
ENV_ATTEMPT = "COSTTUNE_ATTEMPT"
_METRIC_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]{0,127}$")


class MetricLineError(InputError):
    """A line that claims to be a report but is not a valid one."""


@dataclass(frozen=True)
class MetricReport:
    step: int | None
    metrics: dict[str, float]


def format_line(step: int | None, metrics: dict[str, Any]) -> str:
    payload: dict[str, Any] = {} if step is None else {"step": step}
    payload.update(metrics)
    _check(payload)
    return PREFIX + json.dumps(payload, separators=(",", ":"))


def parse_line(line: str) -> MetricReport | None:
    """The report on ``line``, None for ordinary output, MetricLineError for a bad report."""
    tag = PREFIX.rstrip()
    if not line.startswith(tag):
        return None
    body = line[len(tag) :]
    if body and not body[0].isspace() and body[0] != "{":
        return None  # "costtune:reporting done" is ordinary output
    body = body.strip()
    try:
        payload = json.loads(body)
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        reason = getattr(exc, "msg", None) or str(exc).split(";")[0]
        raise MetricLineError(f"metric line: not a JSON object ({reason}), got {body[:80]!r}") from None
    if not isinstance(payload, dict):
        raise MetricLineError(f"metric line: must be a JSON object, got {body[:80]!r}")
    return _check(payload)


def _check(payload: dict[str, Any]) -> MetricReport:
    step = payload.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise MetricLineError(f"metric line: step must be an integer >= 0, got {step!r}")
    metrics: dict[str, float] = {}
    for name, value in payload.items():
        if name == "step":
            continue
        if not isinstance(name, str) or not _METRIC_NAME.match(name):
            raise MetricLineError(f"metric line: metric name must be a word like val_loss, got {name!r}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
            raise MetricLineError(f"metric line: {name} must be a finite number, got {_short(value)}")
        metrics[name] = float(value)
    if not metrics:
        raise MetricLineError("metric line: no metric given (e.g. {\"step\": 1, \"val_loss\": 0.3})")
    return MetricReport(step=step, metrics=metrics)


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float range
        return False


def _short(value: Any) -> str:
    text = repr(value)
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
    """
    trial = current_trial.get()
    if trial is not None:
        trial.report(step, **metrics)
        return
    sys.stdout.write(format_line(step, metrics) + "\n")
    sys.stdout.flush()


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
