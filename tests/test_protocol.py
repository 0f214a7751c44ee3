"""The stdout line protocol a command trial speaks: what counts as a report, what is rejected and why."""

from __future__ import annotations

import json
import math
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest

import costtune
from costtune.errors import InputError
from costtune.protocol import (
    ENV_OBJECTIVE,
    ENV_PARAMS_FILE,
    PREFIX,
    MetricLineError,
    format_line,
    nonfinite_objective,
    parse_line,
)


@pytest.mark.parametrize(("step", "metrics"), [
    (3, {"val_loss": 0.41}),
    (0, {"val_loss": 1e-300, "val_accuracy": 0.9, "train/loss": -2.5, "lr.group-0": 3e-4}),
    (None, {"loss": 7}),
    (2**31 - 1, {"loss": 0.1 + 0.2}),  # the largest step the store holds (PostgreSQL INTEGER)
])
def test_format_then_parse_round_trips(step: int | None, metrics: dict[str, float]) -> None:
    line = format_line(step, metrics)
    assert line.startswith(PREFIX)
    assert "\n" not in line
    report = parse_line(line)
    assert report is not None
    assert report.step == step
    assert report.metrics == {k: float(v) for k, v in metrics.items()}
    assert all(type(v) is float for v in report.metrics.values())


def test_hand_written_lines_parse_with_any_spacing() -> None:
    for line in ('costtune:report {"step": 3, "val_loss": 0.41}',
                 'costtune:report    {"step":3,"val_loss":0.41}   ',
                 'costtune:report\t{"step": 3, "val_loss": 0.41}\r',
                 'costtune:report{"step": 3, "val_loss": 0.41}'):
        report = parse_line(line)
        assert report is not None and (report.step, report.metrics) == (3, {"val_loss": 0.41}), line


@pytest.mark.parametrize("line", [
    "",
    "epoch 3 loss 0.41",
    '{"step": 3, "val_loss": 0.41}',
    ' costtune:report {"step": 3, "val_loss": 0.41}',  # a report starts the line
    'Costtune:report {"step": 3, "val_loss": 0.41}',
    "costtune:reporting started",
    "costtune:reports are printed below",
    "costtune: report",
])
def test_ordinary_output_is_not_a_report(line: str) -> None:
    assert parse_line(line) is None


BAD_LINES = [
    # (the text after the prefix, what the message must name)
    ("{not json", ["not a JSON object", "{not json"]),
    ("", ["not a JSON object"]),
    ("[1, 2]", ["must be a JSON object", "[1, 2]"]),
    ('"val_loss"', ["must be a JSON object", "val_loss"]),
    ("0.41", ["must be a JSON object", "0.41"]),
    ('{"step": -1, "val_loss": 0.4}', ["step", "-1"]),
    ('{"step": true, "val_loss": 0.4}', ["step", "got true"]),  # as the line spells it, not Python's True
    ('{"step": 1.5, "val_loss": 0.4}', ["step", "1.5"]),
    ('{"step": 2.0, "val_loss": 0.4}', ["step", "2.0"]),
    ('{"step": "3", "val_loss": 0.4}', ["step", '"3"']),
    ('{"step": 1, "val_loss": "0.4"}', ["val_loss", '"0.4"']),
    ('{"step": 1, "val_loss": true}', ["val_loss", "got true"]),
    ('{"step": 1, "val_loss": null}', ["val_loss", "got null"]),
    ('{"step": 1, "val_loss": [0.4]}', ["val_loss", "[0.4]"]),
    ('{"step": 1, "val_loss": 0.4, "acc": {"top1": 0.9}}', ["acc", "top1"]),
    ('{"step": 1, "1st": 0.4}', ["metric name", '"1st"']),
    ('{"step": 1, "val loss": 0.4}', ["metric name", '"val loss"']),
    ('{"step": 1, "": 0.4}', ["metric name", '""']),
    ('{"step": 1, "loss;drop": 0.4}', ["metric name", '"loss;drop"']),
    ('{"step": 1, "' + "x" * 200 + '": 0.4}', ["metric name", "xxxx"]),
    ('{"step": 1}', ["no metric"]),
    # duplicate keys: JSON readers disagree on which wins, so the line is ambiguous (issue 7)
    ('{"step": 0, "loss": NaN, "loss": 0.5}', ['"loss"', "given twice"]),
    ('{"step": 0, "step": 1, "loss": 0.5}', ['"step"', "given twice"]),
    ("{}", ["no metric"]),
    # an integer too long to read at all is rejected like any bad value
    ('{"val_loss": 1' + "0" * 5000 + "}", ["not a JSON object"]),
    # steps the store cannot hold, lines too big or too deep to parse safely (issue 7)
    ('{"step": 9223372036854775808, "loss": 0.5}', ["step", "9223372036854775808", "2147483647"]),
    ('{"step": 2147483648, "loss": 0.5}', ["step", "2147483648"]),
    ('{"step": 1' + "0" * 5000 + ', "loss": 0.5}', ["not a JSON object"]),
    ('{"loss": ' + "[" * 100_000 + "]" * 100_000 + "}", ["longer than 100000 characters"]),
    ('{"loss": ' + "[" * 40_000 + "]" * 40_000 + "}", ["nested too deeply"]),
    ('{"loss": ' + '{"a":' * 12_000 + "1" + "}" * 12_001, ["nested too deeply"]),
    ("{" + ", ".join(f'"m{i}": {i}' for i in range(300)) + "}", ["more than 256 metrics"]),
]


@pytest.mark.parametrize(("body", "named"), BAD_LINES, ids=[b[:30] for b, _ in BAD_LINES])
def test_malformed_report_raises_naming_field_and_value(body: str, named: list[str]) -> None:
    with pytest.raises(MetricLineError) as info:
        parse_line("costtune:report " + body)
    message = str(info.value)
    assert message.startswith("metric line: ")
    for part in named:
        assert part in message
    assert len(message) < 300  # a huge value is shortened, never dumped whole
    assert isinstance(info.value, InputError)


@pytest.mark.parametrize(("body", "finite", "dropped"), [
    ('{"step": 1, "val_loss": NaN}', {}, {"val_loss": "NaN"}),
    ('{"step": 1, "val_loss": Infinity}', {}, {"val_loss": "inf"}),
    ('{"step": 1, "val_loss": -Infinity, "acc": 0.5}', {"acc": 0.5}, {"val_loss": "-inf"}),
    ('{"step": 1, "val_loss": 1e400}', {}, {"val_loss": "inf"}),
    ('{"val_loss": 1' + "0" * 400 + ', "acc": 1}', {"acc": 1.0}, {"val_loss": "1e400 (an integer beyond float range)"}),
])
def test_non_finite_values_are_never_metrics_but_are_named(body: str, finite: dict[str, float],
                                                           dropped: dict[str, str]) -> None:
    """The caller (the controller) knows the objective: a non-finite objective fails the trial, any
    other non-finite metric is dropped with a warning; neither is ever stored as a number."""
    report = parse_line("costtune:report " + body)
    assert report is not None and (report.metrics, report.nonfinite) == (finite, dropped)
    name, text = next(iter(dropped.items()))
    assert nonfinite_objective(name, text, 1) == f"objective {name} was {text} at step 1"


@pytest.mark.parametrize(("step", "metrics", "named"), [
    (-1, {"loss": 1.0}, "step"),
    (2**31, {"loss": 1.0}, "step"),
    (None, {"loss": math.nan}, "loss"),
    (None, {"loss": math.inf}, "loss"),
    (None, {"bad name": 1.0}, "bad name"),
    (None, {}, "no metric"),
])
def test_format_line_refuses_what_parse_would_reject(step: int | None, metrics: dict[str, float],
                                                     named: str) -> None:
    with pytest.raises(MetricLineError, match=named):
        format_line(step, metrics)


def test_report_prints_a_line_that_is_flushed_at_once(tmp_path: Path) -> None:
    """The controller sees a report while the trial still runs, though stdout is a pipe (block-buffered)."""
    script = tmp_path / "trial.py"
    script.write_text(
        "import sys, costtune\n"
        "costtune.report(step=3, val_loss=0.41, val_accuracy=0.9)\n"
        "costtune.report(val_loss=0.40)\n"
        "sys.stdin.readline()\n"  # block until the test has read both lines
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stdin=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdin is not None
    data = b""
    try:
        while data.count(b"\n") < 2:
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            assert ready, f"no complete report lines while the trial was still running (got {data!r})"
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk, f"the trial ended before the test let it (got {data!r})"
            data += chunk
        assert proc.poll() is None  # still running: the lines did not come from exit-time flushing
    finally:
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0
    first, second = (parse_line(line) for line in data.decode().splitlines())
    assert first is not None and (first.step, first.metrics) == (3, {"val_loss": 0.41, "val_accuracy": 0.9})
    assert second is not None and (second.step, second.metrics) == (None, {"val_loss": 0.40})


def test_report_with_bad_metric_raises_in_the_trial_and_prints_nothing(tmp_path: Path) -> None:
    script = tmp_path / "trial.py"
    script.write_text("import costtune\ncosttune.report(step=1, val_loss=float('nan'))\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert "MetricLineError" in proc.stderr and "val_loss" in proc.stderr


def test_report_of_a_nan_objective_in_a_trial_prints_the_line_then_raises_the_reason(tmp_path: Path) -> None:
    """Under a controller (COSTTUNE_OBJECTIVE set) the line goes out, so the controller fails the trial
    with this very reason, and the trial's code stops there instead of training on with NaN."""
    script = tmp_path / "trial.py"
    script.write_text("import costtune\ncosttune.report(step=1, val_loss=float('nan'), acc=float('inf'))\n"
                      "print('after')\n")
    env = {**os.environ, ENV_OBJECTIVE: "val_loss"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 1 and "after" not in proc.stdout
    report = parse_line(proc.stdout.strip())
    assert report is not None and report.nonfinite == {"val_loss": "NaN", "acc": "inf"}
    assert proc.stderr.strip().splitlines()[-1] == (
        "costtune.protocol.NonFiniteObjective: objective val_loss was NaN at step 1")
    # another metric's NaN is the controller's to drop: the trial goes on
    script.write_text("import costtune\ncosttune.report(step=1, val_loss=0.5, acc=float('nan'))\nprint('after')\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1] == "after"


def test_params_reads_the_params_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    params = {"lr": 0.012345678901234567, "hidden": 64, "activation": "relu", "flag": False}
    path = tmp_path / "params.json"
    path.write_text(json.dumps(params))
    monkeypatch.setenv(ENV_PARAMS_FILE, str(path))
    got = costtune.params()
    assert got == params
    assert type(got["hidden"]) is int and type(got["flag"]) is bool


def test_params_outside_a_trial_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_PARAMS_FILE, raising=False)
    with pytest.raises(InputError, match=f"{ENV_PARAMS_FILE} is not set.*inside a costtune command trial"):
        costtune.params()


@pytest.mark.parametrize(("content", "named"), [
    (None, "cannot read"),
    ("{oops", "not a JSON object"),
    ("[1, 2]", "not a JSON object"),
])
def test_params_with_a_broken_params_file_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   content: str | None, named: str) -> None:
    path = tmp_path / "params.json"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv(ENV_PARAMS_FILE, str(path))
    with pytest.raises(InputError) as info:
        costtune.params()
    assert ENV_PARAMS_FILE in str(info.value) and str(path) in str(info.value) and named in str(info.value)
