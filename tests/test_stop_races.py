"""A stop racing a trial's own end: one rule for every kind of stop (a rung or curve verdict, the cap, a
policy, a time limit, an interrupt). An attempt that exited 0 with its final value before the stop took
effect is complete; only one really cut short is stopped."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from costtune.providers import make_provider
from simworkloads import with_changes
from test_budget_tail import TAIL

from costtune.history import TrialState
from costtune.runner.controller import SweepController
from costtune.runner.session import open_sweep
from costtune.spec import parse_sweep
from costtune.store import Store

ENDED_FIRST = "it completed before the stop took effect"


def test_a_trial_that_ends_at_the_report_its_budget_stop_comes_at_is_complete(tmp_path: Path) -> None:
    """A one-step workload: its first report is its last, and the cap cannot fund the rung's money past it.
    The trial had ended (exit 0, its value in) when the budget stop was decided: complete, not stopped."""
    cfg = with_changes(
        TAIL,
        scheduler={"type": "asha", "min_usd": 0.001, "max_usd": 0.009, "eta": 3},
        budget={"usd": 0.0072, "trials": 1},
        resources__workers=1,
        resources__simulation={"workload": "simworkloads:steady", "max_steps": 1, "startup_seconds": 240, "seed": 0},
    )
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    spec = parse_sweep(cfg)
    study, _ = open_sweep(store, spec)
    provider = make_provider("simulated", simulation=spec.resources.simulation, metric=spec.metric)
    SweepController(spec, study, provider, trial_events=False).run()
    (trial,) = study.history().trials
    assert trial.state == TrialState.COMPLETE and trial.value is not None and trial.last_step == 0
    (attempt,) = store.attempts(study.id, 0)
    assert attempt.exit_reason == "completed" and attempt.exit_code == 0
    assert attempt.note.startswith("stopped by the budget: cannot fund") and attempt.note.endswith(ENDED_FIRST)
    assert study.history().best() is not None  # it ranks on the leaderboard


RACER = """\
import json, signal, sys, time

final, mode = float(sys.argv[1]), sys.argv[2]  # "finish": its last steps are on their way when stopped


def report(t):
    print("costtune:report " + json.dumps({"step": t, "loss": final + 0.5 ** (t + 1)}), flush=True)


def finish(*_):  # it ends on its own, exit 0, with steps 7..10 (10 is its last)
    for t in range(7, 11):
        report(t)
    sys.exit(0)


if mode == "finish":
    signal.signal(signal.SIGTERM, finish)
for t in range(7):
    report(t)
time.sleep(60)  # the cap's stop comes here, with steps 0..6 in
"""


def _racing(tmp_path: Path, mode: str) -> tuple[Store, Any]:
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    cfg = {
        "name": "racing",
        "objective": {"metric": "loss", "mode": "min"},
        "space": {
            "final": {"type": "uniform", "low": 0.0, "high": 1.0},
            "mode": {"type": "categorical", "choices": ["finish", "die"]},
        },
        "sampler": {"type": "manual", "configs": [{"final": 0.5, "mode": mode}]},
        # $144/h and a $0.04 cap: the cap stops it after about a second (the cap must cover a billed second)
        "scheduler": {"type": "fifo"},
        "budget": {"trials": 1, "usd": 0.04},
        "resources": {"provider": "local", "usd_per_hour": 144, "workers": 1},
        "command": [sys.executable, str(script), "{final}", "{mode}"],
        "output_dir": str(tmp_path / "runs"),
    }
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    spec = parse_sweep(cfg)
    study, _ = open_sweep(store, spec)
    SweepController(spec, study, make_provider("local"), workdir=str(tmp_path), trial_events=False).run()
    return store, study


def test_a_command_trial_that_ends_before_the_budget_stop_lands_is_complete(tmp_path: Path) -> None:
    """The cap's stop, as a rung or curve stop: a trial that reports its last steps and exits 0 on the stop
    is complete with its final value, the stop kept on record."""
    store, study = _racing(tmp_path, "finish")
    (trial,) = study.history().trials
    assert trial.state == TrialState.COMPLETE and trial.last_step == 10
    assert trial.value == pytest.approx(0.5 + 0.5**11)
    (attempt,) = store.attempts(study.id, 0)
    assert attempt.exit_reason == "completed" and attempt.exit_code == 0
    assert "stopped by the budget" in attempt.note and attempt.note.endswith(ENDED_FIRST)
    assert study.history().best() is not None


def test_a_command_trial_cut_short_by_the_budget_stays_stopped(tmp_path: Path) -> None:
    store, study = _racing(tmp_path, "die")
    (trial,) = study.history().trials
    assert trial.state == TrialState.STOPPED and trial.last_step == 6
    (attempt,) = store.attempts(study.id, 0)
    assert attempt.exit_reason == "budget" and attempt.exit_code != 0
    assert ENDED_FIRST not in (attempt.note or "")
