"""Dollar rungs bounded by what really exists: a first report that comes after the first rung (a command
trial's start-up, unknown until one reports) and a plan cut short by budget.trials (NU2 report items 1, 4)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from costtune.providers import make_provider

from costtune.history import TrialState
from costtune.runner.controller import SweepController
from costtune.runner.session import open_sweep
from costtune.schedulers.hyperband import SuccessiveHalving, plan_brackets
from costtune.spec import parse_sweep
from costtune.store import Store

SLOW_START = """\
import sys, time
import costtune

time.sleep(1.2)  # a start-up (imports, data) three first rungs long: $0.012 at $36/h
x = float(sys.argv[1])
for step in range(10):
    costtune.report(step=step, loss=x + 1.0 / (step + 1))
    time.sleep(0.1)
"""


def test_a_command_trial_reporting_after_its_first_rung_is_judged_on_its_reports(tmp_path: Path) -> None:
    """NU2 item 1: ASHA with min_usd $0.004 at $36/h (0.4 s) on trials whose start-up takes 1.2 s. Before, each
    was stopped before it could report ("no result by the $0.004 rung; judged without a first report"), and the
    whole spend bought nothing. Now, before its first report an attempt is bounded by its top rung, and the
    rung's clock starts at that report: both trials report and are judged on their values."""
    script = tmp_path / "slow.py"
    script.write_text(SLOW_START)
    cfg = {
        "name": "slow-start", "objective": {"metric": "loss", "mode": "min"},
        "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
        "sampler": {"type": "manual", "configs": [{"x": 0.5}, {"x": 0.2}]},
        "scheduler": {"type": "asha", "min_usd": 0.004, "max_usd": 0.036, "eta": 3},
        "budget": {"trials": 2, "usd": 0.3, "trial_seconds": 30},
        "resources": {"provider": "local", "usd_per_hour": 36, "workers": 2},
        "command": [sys.executable, str(script), "{x}"], "output_dir": str(tmp_path / "runs"),
    }
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    spec = parse_sweep(cfg)
    study, _ = open_sweep(store, spec)
    events: list[str] = []
    SweepController(spec, study, make_provider("local"), workdir=str(tmp_path), on_event=events.append).run()
    trials = study.history().trials
    assert len(trials) == 2
    for trial in trials:
        assert trial.value is not None, (trial.number, trial.state, events)
        assert trial.verdicts and all(value is not None for _level, value, _up in trial.verdicts), trial.verdicts
        assert store.reports(study.id, trial.number)
    assert not [e for e in events if "judged without a first report" in e], events


def test_sh_quotas_come_from_the_trials_budget_trials_lets_exist() -> None:
    """NU2 item 4: sh, min $0.003, max $0.012, eta 2 under a $0.10 cap plans 4 iterations of 4-2-1 (16
    trials); budget.trials 8 lets 2 exist. Every trial beating all before it, the plan's pooled quotas let
    all 8 up at $0.003 and 4 at $0.006: 2 iterations promote 4 and 2."""
    plan = plan_brackets("sh", 3_000, 12_000, 2, 100_000)
    assert (plan.iterations, plan.total_trials) == (4, 16)
    for limit, want in ((8, {3_000: 4, 6_000: 2}), (6, {3_000: 3, 6_000: 2}), (None, {3_000: 8, 6_000: 4})):
        sched = SuccessiveHalving(plan, mode="min")
        sched.limit_trials(limit)
        promoted = {3_000: 0, 6_000: 0, 12_000: 0}
        for number in range(8):
            level: int | None = sched.first_rung(number)
            while level is not None:
                decision = sched.judge(number, level, 1.0 - number / 100)
                if not decision.promote:
                    break
                promoted[level] += 1
                level = decision.next_rung_micros
        assert promoted == {**want, 12_000: 0}, limit


def test_a_sh_sweep_cut_short_by_budget_trials_promotes_what_its_trials_hold(tmp_path: Path) -> None:
    """The controller tells the plan how many trials exist: a simulated sh sweep of 9 trials (one iteration
    of 9-3-1 of the 7 the cap holds) promotes at most 3 at its first rung and 1 at its second."""
    cfg = {
        "name": "sh-cut", "objective": {"metric": "loss", "mode": "min"},
        "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}, "y": {"type": "uniform", "low": 0.0, "high": 1.0}},
        "sampler": {"type": "random", "seed": 5},
        "scheduler": {"type": "sh", "min_usd": 0.002, "max_usd": 0.018, "eta": 3},
        "budget": {"usd": 0.3, "trials": 9},
        "resources": {
            "provider": "simulated", "region": "us-east-1", "instance_type": "m5.large", "market": "on-demand",
            "workers": 4,
            "simulation": {"workload": "simworkloads:steady", "max_steps": 200, "startup_seconds": 120, "seed": 0,
                           "preemptions_per_hour": 0},
        },
    }
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    spec = parse_sweep(cfg)
    study, _ = open_sweep(store, spec)
    provider = make_provider("simulated", simulation=spec.resources.simulation, metric=spec.metric)
    controller = SweepController(spec, study, provider, trial_events=False)
    assert controller.rungs is not None and controller.rungs.max_trials() == 63
    controller.run()
    trials = study.history().trials
    assert len(trials) == 9
    up: dict[int, int] = {}
    for trial in trials:
        for level, _value, promoted in trial.verdicts:
            up[level] = up.get(level, 0) + promoted
    assert up.get(2_000, 0) <= 3 and up.get(6_000, 0) <= 1, up
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= 1




NEVER_IN_TIME = """\
import sys, time
import costtune

time.sleep(30)  # a start-up far longer than the whole ladder buys: $0.012 max_usd at $36/h is 1.2 s
costtune.report(step=0, loss=float(sys.argv[1]))
"""


def _never_reports(tmp_path: Path, name: str, trials: int) -> dict[str, Any]:
    """A local ASHA sweep whose trials start up for 30 s: far past the $0.012 ladder (1.2 s at $36/h)."""
    script = tmp_path / "never.py"
    script.write_text(NEVER_IN_TIME)
    return {
        "name": name, "objective": {"metric": "loss", "mode": "min"},
        "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
        "sampler": {"type": "random", "seed": 0},
        "scheduler": {"type": "asha", "min_usd": 0.004, "max_usd": 0.012, "eta": 3},
        "budget": {"trials": trials, "usd": 0.3, "trial_seconds": 60},
        "resources": {"provider": "local", "usd_per_hour": 36, "workers": 1},
        "command": [sys.executable, str(script), "{x}"], "output_dir": str(tmp_path / "runs"),
    }


def test_trials_that_spend_their_whole_ladder_without_one_report_stop_the_sweep_after_three(tmp_path: Path) -> None:
    """NU2 item 1, what is left when max_usd itself is below the start-up: every trial spent its whole ladder and
    was judged on nothing, and the sweep went on to the next until the cap was gone ($0.21 for no value). While no
    trial of the study has ever reported, three such trials stop all launching, with a reason that says what to
    change; the trials not yet started are never started."""
    cfg = _never_reports(tmp_path, "never-reports", 8)
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    spec = parse_sweep(cfg)
    study, _ = open_sweep(store, spec)
    status = SweepController(spec, study, make_provider("local"), workdir=str(tmp_path), on_event=lambda _e: None).run()
    trials = study.history().trials
    assert len(trials) == 3 and all(t.value is None and t.state == TrialState.STOPPED for t in trials)
    assert status.stop_kind == "unreported"
    assert status.stop_reason == "3 trials spent the top rung's money without one report (scheduler.max_usd)"
    assert status.error is not None and "raise scheduler.max_usd" in str(status.error)
    assert study.history().spent_micros <= 3 * (12_000 + 10_000)  # three ladders and a billed second each, not the cap


def test_a_resume_of_a_sweep_stopped_that_way_stops_after_one_more_such_trial(tmp_path: Path) -> None:
    """The stop counts across runs, like budget.max_failures: each resume of the same file launched a fresh three
    and burnt them. Now the earlier run's trials count (one more and it stops), and a raised max_usd starts afresh."""
    cfg = _never_reports(tmp_path, "never-again", 12)
    store = Store(f"sqlite:///{tmp_path / 's.db'}")

    def run() -> Any:
        spec = parse_sweep(cfg)
        study, _ = open_sweep(store, spec)
        status = SweepController(spec, study, make_provider("local"), workdir=str(tmp_path),
                                 on_event=lambda _e: None).run()
        return study, status

    study, first = run()
    assert first.stop_kind == "unreported" and len(study.history().trials) == 3
    study, second = run()
    assert len(study.history().trials) == 4  # one more, not three
    assert second.stop_kind == "unreported"
    assert second.stop_reason == ("4 trials, 3 of them in an earlier run, spent the top rung's money without one "
                                  "report (scheduler.max_usd)")
