"""Every dollar of a study in exactly one class (useful, stopped early, policy stop, failed, re-run, unfinished).

The classes add up to the total spend to the micro-dollar, and the report's summary, its table by
instance type and market, the CSV, the HTML tables and the bar chart all read the same numbers.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from costtune.cli import main
from costtune.history import FrozenTrial, History, Mode, TrialState
from costtune.money import format_usd_column
from costtune.reports.html import render_html
from costtune.reports.spend import CLASSES, classify, shown_classes, spend_by_placement, spend_summary, totals
from costtune.store import Store
from costtune.store.reads import AttemptCostRow, attempt_rows, rerun_micros

TESTS = Path(__file__).resolve().parent
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def attempt(trial: int, number: int, cost: int, reason: str | None, *, start: int = 0, waste: int = 0,
            itype: str | None = "m5.large", provider: str = "simulated") -> AttemptCostRow:
    return AttemptCostRow(trial=trial, number=number, provider=provider, region="us-east-1", instance_type=itype,
                          market="spot" if itype else "on-demand", rate_micros_per_hour=96_000, exit_reason=reason,
                          billable_ms=1000, cost_micros=cost, start_step=start, waste_micros=waste)


def done(number: int, state: TrialState, cost: int, value: float | None = 1.0) -> FrozenTrial:
    return FrozenTrial(number=number, state=state, params={"x": number}, value=value, cost_micros=cost,
                       started_at=T0, finished_at=T0 + timedelta(seconds=number))


def test_each_kind_of_attempt_lands_in_its_class() -> None:
    history = History("loss", Mode.MIN, (
        done(0, TrialState.COMPLETE, 100),
        done(1, TrialState.STOPPED, 40),  # stopped at a rung
        done(2, TrialState.FAILED, 25, value=None),
        # preempted after a checkpoint (10 of 30 lost), resumed at step 5, then complete
        done(3, TrialState.COMPLETE, 80),
        # interrupted, restarted from scratch (the whole 20 is re-run), then stopped
        done(4, TrialState.STOPPED, 50),
        done(5, TrialState.RUNNING, 7, value=None),
        done(6, TrialState.QUEUED, 9, value=None),  # preempted, not re-run yet: waste booked, rest waits
        done(7, TrialState.COMPLETE, 15),  # money no attempt row holds (an in-process trial, say)
    ))
    attempts = [
        attempt(0, 1, 100, "completed"), attempt(1, 1, 40, "stopped"), attempt(2, 1, 25, "failed"),
        attempt(3, 1, 30, "preempted", waste=10), attempt(3, 2, 50, "completed", start=5),
        attempt(4, 1, 20, "interrupted"), attempt(4, 2, 30, "stopped", start=0),
        attempt(5, 1, 7, None), attempt(6, 1, 9, "preempted", waste=4),
    ]
    by_class = totals(classify(history, attempts))
    assert by_class == {"useful": 100 + 20 + 50 + 15, "stopped": 40 + 30, "policy": 0, "failed": 25,
                        "rerun": 10 + 20 + 4, "unfinished": 7 + 5}
    assert sum(by_class.values()) == history.spent_micros == 326
    groups = spend_by_placement(history, attempts)
    assert sum(g["cost_micros"] for g in groups) == 326
    unplaced = next(g for g in groups if g["provider"] is None)
    assert (unplaced["label"], unplaced["useful_micros"], unplaced["cost_micros"]) == ("no attempt record", 15, 15)
    summary = spend_summary(history, attempts)
    assert {k: v["micros"] for k, v in summary["classes"].items()} == by_class
    assert (summary["preempted_attempts"], summary["interrupted_attempts"], summary["retried_trials"]) == (2, 1, 3)


def test_a_trial_a_spend_policy_stopped_is_in_its_own_class_that_names_the_policy() -> None:
    # The report put trials a policy's window cap stopped under "stopped early (by the scheduler or the budget)".
    capped = FrozenTrial(number=1, state=TrialState.STOPPED, params={"x": 1}, value=0.5, cost_micros=40,
                         started_at=T0, finished_at=T0 + timedelta(seconds=1),
                         error="policy 'team-daily': cap_usd $0.50 of the daily from 2026-01-01 (UTC) window reached")
    windowed = FrozenTrial(number=3, state=TrialState.STOPPED, params={"x": 3}, value=0.7, cost_micros=30,
                           started_at=T0, finished_at=T0 + timedelta(seconds=3),
                           error="policy:lab-weekly:2026-W01: cannot fund the $0.01 past its first report")
    history = History("loss", Mode.MIN, (done(0, TrialState.COMPLETE, 100), capped,
                                         done(2, TrialState.STOPPED, 20), windowed))
    attempts = [attempt(0, 1, 100, "completed"), attempt(1, 1, 40, "policy"), attempt(2, 1, 20, "stopped"),
                attempt(3, 1, 30, "policy")]
    for rows in (attempts, None):  # from the attempts' exit reason, or the trial's error without them
        summary = spend_summary(history, rows)
        assert {k: (v["trials"], v["micros"]) for k, v in summary["classes"].items() if k != "rerun"} == {
            "useful": (1, 100), "stopped": (1, 20), "policy": (2, 70), "failed": (0, 0), "unfinished": (0, 0)}
        assert summary["classes"]["policy"]["label"] == "stopped by a spend policy's cap ('team-daily', 'lab-weekly')"
    text = _report_text(history, attempts)
    assert re.search(r"stopped early \(by the scheduler, the study's budget or a user\) +│ +1 +│", text), text
    assert "stopped by a spend policy's cap ('team-daily', 'lab-weekly')" in " ".join(text.split()), text


def test_every_trial_is_counted_once_in_the_class_it_ended_in_queued_ones_as_unfinished() -> None:
    # A queued trial that has spent nothing is unfinished: the report showed 0 there (and no row), so the
    # classes' trial counts did not add up to the total beside them.
    history = History("loss", Mode.MIN, (
        done(0, TrialState.COMPLETE, 100), done(1, TrialState.STOPPED, 40),
        done(2, TrialState.FAILED, 0, value=None),  # failed before it was billed
        done(3, TrialState.COMPLETE, 80),  # preempted once, then complete
        done(4, TrialState.QUEUED, 0, value=None), done(5, TrialState.QUEUED, 0, value=None),
    ))
    attempts = [attempt(0, 1, 100, "completed"), attempt(1, 1, 40, "stopped"),
                attempt(3, 1, 30, "preempted", waste=10), attempt(3, 2, 50, "completed", start=5)]
    summary = spend_summary(history, attempts)
    counts = {k: v["trials"] for k, v in summary["classes"].items()}
    assert counts == {"useful": 2, "stopped": 1, "policy": 0, "failed": 1, "rerun": 1, "unfinished": 2}
    assert sum(n for k, n in counts.items() if k != "rerun") == len(history.trials)
    text = _report_text(history, attempts)
    assert re.search(r"running or queued trials +│ +2 +│ +\$0 ", text), text
    assert re.search(r"failed trials +│ +1 +│ +\$0 ", text), text
    assert re.search(r"re-run after a preemption or interruption +│ +\(1\) ", text), text
    assert re.search(r"total +│ +6 +│", text), text
    page = render_html("counted", history, attempts)
    assert "<td>running or queued trials</td><td class=\"n\">2</td>" in page, page


def _report_text(history: History, attempts: list[AttemptCostRow]) -> str:
    from rich.console import Console

    from costtune.reports.terminal import classes_table

    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(classes_table(history, attempts))
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_a_trial_never_loses_more_than_an_attempt_cost_and_local_rows_are_labelled_by_price() -> None:
    rows = [attempt(0, 1, 30, "preempted", waste=99), attempt(0, 2, 10, "completed", start=3)]
    assert rerun_micros(rows) == [30, 0]  # waste is capped at what the attempt cost
    local = attempt(0, 1, 5, "completed", itype=None, provider="local")
    [group] = spend_by_placement(History("loss", Mode.MIN, (done(0, TrialState.COMPLETE, 5),)), [local])
    assert group["label"] == "local at $0.096/h"
    priced = attempt(0, 1, 5, "completed", provider="local")
    [group] = spend_by_placement(History("loss", Mode.MIN, (done(0, TrialState.COMPLETE, 5),)), [priced])
    assert group["label"] == "local as m5.large / spot"


_STATES = st.sampled_from(list(TrialState))
_REASONS = st.sampled_from(["completed", "stopped", "failed", "timeout", "preempted", "interrupted", "budget", None])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_STATES, st.integers(0, 10**9),
                          st.lists(st.tuples(st.integers(0, 10**8), _REASONS, st.integers(0, 5), st.integers(0, 10**8)),
                                   max_size=4)), max_size=12))
def test_the_classes_add_up_to_the_total_exactly(trials: list) -> None:  # type: ignore[type-arg]
    history = History("loss", Mode.MIN, tuple(done(n, state, cost) for n, (state, cost, _) in enumerate(trials)))
    attempts = [attempt(n, k + 1, cost, reason, start=start, waste=waste)
                for n, (_, _, rows) in enumerate(trials) for k, (cost, reason, start, waste) in enumerate(rows)]
    shares = classify(history, attempts)
    assert all(s.micros > 0 and isinstance(s.micros, int) for s in shares)
    assert sum(totals(shares).values()) == history.spent_micros
    for trial in history.trials:
        assert sum(s.micros for s in shares if s.trial == trial.number) == trial.cost_micros
    groups = spend_by_placement(history, attempts)
    assert sum(g["cost_micros"] for g in groups) == history.spent_micros
    assert all(sum(g[f"{k}_micros"] for k in CLASSES) == g["cost_micros"] for g in groups)


# -- a real sweep with every kind of attempt ----------------------------------------------------
SWEEP = {
    "name": "classes",
    "objective": {"metric": "loss", "mode": "min"},
    "space": {"x": {"type": "uniform", "low": 0, "high": 1}},
    "sampler": {"type": "random", "seed": 1},
    "scheduler": {"type": "asha", "min_usd": 0.0005, "max_usd": 0.0045, "eta": 3},
    "budget": {"usd": 0.03},
    "resources": {"provider": "simulated", "region": "us-east-1", "instance_type": "m5.large", "market": "spot",
                  "workers": 4,
                  "simulation": {"workload": "simworkloads:flaky_sluggish", "max_steps": 20, "startup_seconds": 30,
                                 "preemptions_per_hour": 8, "seed": 0, "checkpoint": False}},
}


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Completed, stopped (ASHA rungs), failed (the workload raises), preempted, and interrupted (Ctrl-C)
    attempts, then the same sweep resumed to its end."""
    tmp = tmp_path_factory.mktemp("classes")
    sweep = tmp / "sweep.yaml"
    sweep.write_text(yaml.safe_dump(SWEEP))
    url = f"sqlite:///{tmp / 'store.db'}"
    env = {**os.environ, "PYTHONPATH": str(TESTS), "COSTTUNE_HOME": str(tmp / "home"),
           "COSTTUNE_TEST_STEP_SLEEP": "0.03"}
    proc = subprocess.Popen(["costtune", "run", str(sweep), "--db", url, "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        # interrupt early: on a busy machine, waiting for more finished trials let the budget end the run
        # first and left no attempt to interrupt (the resume brings the other classes)
        if Path(tmp / "store.db").exists() and _finished(url) >= 1:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    result = CliRunner().invoke(main, ["run", str(sweep), "--db", url, "--quiet"])  # resume to the end
    assert result.exit_code == 0, result.output
    return url


def _finished(url: str) -> int:
    store = Store(url)
    try:
        info = store.find_study("classes")
        return 0 if info is None else sum(t.state.finished for t in store.history(info.id).trials)
    finally:
        store.close()


def test_a_real_sweep_classifies_every_dollar_once_and_every_view_agrees(swept: str, tmp_path: Path) -> None:
    store = Store(swept)
    try:
        info = store.get_study("classes")
        history, attempts = store.history(info.id), attempt_rows(store, info.id)
    finally:
        store.close()
    reasons = {a.exit_reason for a in attempts}
    assert {"completed", "stopped", "failed", "preempted", "interrupted"} <= reasons, reasons
    total = history.spent_micros
    assert total == sum(a.cost_micros for a in attempts) > 0

    data = json.loads(CliRunner().invoke(main, ["report", "classes", "--db", swept, "--format", "json"]).output)
    classes = {k: v["micros"] for k, v in data["summary"]["classes"].items()}
    assert sum(classes.values()) == data["summary"]["total_micros"] == total  # exact, integer micro-dollars
    assert all(classes[k] > 0 for k in ("useful", "stopped", "failed", "rerun")), classes
    assert classes == totals(classify(history, attempts))
    # the interrupted attempts restarted from scratch (checkpoint: false): all their money is re-run money
    interrupted = sum(a.cost_micros for a in attempts if a.exit_reason == "interrupted")
    assert classes["rerun"] >= interrupted > 0
    assert data["preemption"]["waste_micros"] == classes["rerun"]
    assert sum(r["waste_micros"] for r in data["waste_by_trial"]) == classes["rerun"]
    for kind in CLASSES:  # the table by instance type and market splits the same classes
        assert sum(g[f"{kind}_micros"] for g in data["spend_by_placement"]) == classes[kind]

    text = CliRunner().invoke(main, ["report", "classes", "--db", swept, "--format", "csv", "--section", "classes"])
    by_csv = {r["class"]: int(r["micros"]) for r in csv.DictReader(io.StringIO(text.output))}
    assert by_csv == classes

    page = render_html("classes", history, attempts)
    kinds = [k for k in CLASSES if classes[k]]
    rows = shown_classes(spend_summary(history, attempts))  # and those with trials but no money ($0)
    money = format_usd_column([classes[k] for k in rows] + [total])
    where = page[page.index("<h2>where the money went</h2>"):page.index("<h2>spend by instance type")]
    cells = re.findall(r'<td class="n">(\$[0-9.,]+)</td>', where)
    assert cells == money  # the HTML table shows the same amounts, total last
    bars = page[page.index('<svg id="spend-by-instance"'):]
    bars = bars[:bars.index("</svg>")]
    for kind in kinds:  # a segment per class present, and the key names it
        assert f'class="{kind}-bar"' in bars
    [group] = spend_by_placement(history, attempts)
    segments = "".join(re.findall(r"<g>.*?</g>", bars))  # the bars, not the key
    widths = {k: sum(float(w) for w in re.findall(rf'class="{k}-bar" x="[0-9.]+" y="\d+" width="([0-9.]+)"',
                                                  segments)) for k in kinds}
    scale = sum(widths.values()) / group["cost_micros"]
    for kind in kinds:  # each segment's length is its class's share of the bar (to SVG's 0.1 px rounding)
        assert widths[kind] == pytest.approx(classes[kind] * scale, abs=0.2)
    assert "stopped early" in CliRunner().invoke(main, ["report", "classes", "--db", swept]).output
