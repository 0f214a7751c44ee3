"""Learning-curve stopping (``scheduler: {type: curve}``): its config, its verdicts on curves a user
would recognise, and real simulated sweeps through the controller, store and CLI."""

from __future__ import annotations

import contextlib
import json
import math
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from costtune.providers import make_provider

from costtune.cli.app import main
from costtune.demo.bench_workloads import SPACES, mlp_tabular
from costtune.errors import InputError, SpecError, shown
from costtune.history import TrialState
from costtune.runner.controller import SweepController
from costtune.runner.session import open_sweep
from costtune.schedulers import CurveScheduler, make_curve_scheduler, make_rung_scheduler, scheduler_config
from costtune.spec import parse_sweep
from costtune.store import Store

GOOD = {"lr": 2e-3, "width": 512, "layers": 3, "batch": 64}  # final loss ~0.34
BAD = {"lr": 0.09, "width": 1024, "layers": 3, "batch": 32}  # lr far too high: ~0.66, and pricey per step


def saturating(final: float, start: float, rate: float, steps: int, wiggle: float = 0.0) -> list[tuple[int, float]]:
    """An exponential learning curve ``final + (start - final) * exp(-rate * (t + 1))`` with a fixed wiggle."""
    return [(t, final + (start - final) * math.exp(-rate * (t + 1)) + wiggle * (-1) ** t) for t in range(steps)]


# -- config ------------------------------------------------------------------------------------


def test_curve_config_needs_no_dollars_and_validates_to_itself() -> None:
    cfg = scheduler_config({"type": "curve"})
    assert cfg["type"] == "curve" and cfg["min_usd_micros"] is None
    assert scheduler_config(cfg) == cfg  # a stored config re-checks on resume
    full = scheduler_config({"type": "curve", "min_points": 6, "confidence": 0.9, "ratio": 3, "min_usd": "0.02"})
    assert (full["min_points"], full["confidence"], full["ratio"], full["min_usd_micros"]) == (6, 0.9, 3.0, 20_000)
    assert scheduler_config(full) == full
    assert make_rung_scheduler(full, mode="min", budget_micros=None) is None  # no dollar rungs
    assert isinstance(make_curve_scheduler(full, mode="max"), CurveScheduler)
    assert make_curve_scheduler({"type": "fifo"}, mode="min") is None


@pytest.mark.parametrize(("field", "value", "says"), [
    ("min_points", 2, "integer >= 3"),
    ("min_points", "5", "integer >= 3"),
    ("min_points", "7", "not quoted"),
    ("confidence", "0.9", "must be a number (not quoted"),
    ("ratio", "3", "not quoted"),
    ("min_points", True, "integer >= 3"),
    ("confidence", 0.5, "between 0.5 and 1"),
    ("confidence", 1, "between 0.5 and 1"),
    ("confidence", "high", "must be a number"),
    ("confidence", float("nan"), "finite"),
    ("ratio", 1, "> 1 and <= 100"),
    ("ratio", 0.5, "> 1 and <= 100"),
    ("ratio", 1000, "> 1 and <= 100"),
    ("ratio", [2], "must be a number"),
    ("min_usd", 0, "must be more than $0 (leave it out for no floor)"),
    ("min_usd", "-1", "must be more than $0 (leave it out for no floor)"),
    ("min_usd", 0.0000001, "must be at least $0.000001 (leave it out for no floor)"),
    ("min_usd", "lots", "dollar"),
    ("min_usd_micros", 5, "does not match scheduler.min_usd"),
])
def test_bad_curve_fields_name_the_field_and_value(field: str, value: Any, says: str) -> None:
    with pytest.raises(SpecError) as exc:
        scheduler_config({"type": "curve", field: value})
    assert exc.value.path == f"scheduler.{field}"
    assert says in str(exc.value)
    assert shown(value) in str(exc.value)  # as the file spells it: true, not True


def test_unknown_curve_field_is_named() -> None:
    with pytest.raises(SpecError, match=r"^scheduler.eta: unknown field for curve"):
        scheduler_config({"type": "curve", "eta": 3})


# -- verdicts ----------------------------------------------------------------------------------


def test_never_stops_without_a_completed_trial_or_with_few_points() -> None:
    curve = CurveScheduler({"type": "curve"}, mode="min")
    hopeless = saturating(final=0.9, start=1.0, rate=0.5, steps=20)
    assert not curve.judge(hopeless, None, 99).stop  # nothing completed: no incumbent
    for n in range(5):  # fewer than min_points (5) reports, however bad
        verdict = curve.judge(hopeless[:n], 0.1, 99)
        assert not verdict.stop and f"{n} of 5 reports" in verdict.reason
    assert curve.judge(hopeless[:5], 0.1, 99).stop


def test_stops_a_curve_that_saturates_above_the_best_and_keeps_one_heading_below_it() -> None:
    curve = CurveScheduler({"type": "curve"}, mode="min")
    bad = saturating(final=0.60, start=1.2, rate=0.35, steps=8, wiggle=0.002)
    good = saturating(final=0.30, start=1.2, rate=0.15, steps=8, wiggle=0.002)  # still far above 0.34 now
    stop = curve.judge(bad, 0.344, 26, number=1)
    assert stop.stop and "0% chance to beat the best 0.344" in stop.reason
    assert "at step 26" in stop.reason and "95% interval" in stop.reason  # the default confidence, 0.95
    keep = curve.judge(good, 0.344, 26, number=2)
    assert not keep.stop and min(v for _, v in good) > 0.344


def interval(reason: str, confidence: str) -> tuple[float, float]:
    """(low, high) of the interval a verdict quotes as ``confidence``, e.g. "80%"."""
    low, _, high = reason.split(f"({confidence} interval ")[1].split(",")[0].partition(" to ")
    return float(low), float(high)


def test_the_verdict_names_the_interval_of_the_configured_confidence() -> None:
    bad = saturating(final=0.60, start=1.2, rate=0.35, steps=8, wiggle=0.002)
    wide = CurveScheduler({"type": "curve", "confidence": 0.95}, mode="min").judge(bad, 0.344, 26, number=1)
    narrow = CurveScheduler({"type": "curve", "confidence": 0.8}, mode="min").judge(bad, 0.344, 26, number=1)
    odd = CurveScheduler({"type": "curve", "confidence": 0.975}, mode="min").judge(bad, 0.344, 26, number=1)
    assert "90% interval" not in narrow.reason + wide.reason
    assert "97.5% interval" in odd.reason
    (lo80, hi80), (lo95, hi95) = interval(narrow.reason, "80%"), interval(wide.reason, "95%")
    assert lo95 <= lo80 < hi80 <= hi95 and (lo80, hi80) != (lo95, hi95)  # same resamples, a narrower share


def test_a_trial_with_little_left_to_run_is_not_judged() -> None:
    """Stopping one step (or under a tenth of its steps) before its end saves almost nothing."""
    curve = CurveScheduler({"type": "curve"}, mode="min")
    hopeless = saturating(final=0.9, start=1.0, rate=0.5, steps=10)  # steps 0..9, far above the best 0.1
    assert curve.judge(hopeless, 0.1, 12).stop  # three steps left of 13: judged, stopped
    one_left = curve.judge(hopeless, 0.1, 10)  # steps 0..9 reported, 10 is its last: one step to go
    assert not one_left.stop and "save almost nothing" in one_left.reason
    assert not curve.judge(hopeless, 0.1, 9).stop  # at its final step
    long = saturating(final=0.9, start=1.0, rate=0.5, steps=95)  # steps 0..94 of 0..99: 5 left, < 10% of 100
    assert not curve.judge(long, 0.1, 99).stop
    assert curve.judge(long[:80], 0.1, 99).stop  # 19 left of 100: judged


def test_max_mode_mirrors_min_mode() -> None:
    lo, hi = CurveScheduler({"type": "curve"}, mode="min"), CurveScheduler({"type": "curve"}, mode="max")
    for final, start, rate in ((0.60, 1.2, 0.35), (0.30, 1.2, 0.15)):
        points = saturating(final, start, rate, steps=8, wiggle=0.002)
        flipped = [(t, -v) for t, v in points]
        assert lo.judge(points, 0.344, 26).stop == hi.judge(flipped, -0.344, 26).stop


def test_a_curve_that_turned_up_and_never_reached_the_best_is_stopped() -> None:
    curve = CurveScheduler({"type": "curve"}, mode="min")
    u_shape = [(t, 0.5 + 0.002 * (t - 6) ** 2) for t in range(18)]  # best 0.5 at step 6, then overfits
    verdict = curve.judge(u_shape, 0.3, None)
    assert verdict.stop and "no new best over its last 6 reports" in verdict.reason
    below = [(t, v - 0.25) for t, v in u_shape]  # the same shape, but its best beat the incumbent
    assert not curve.judge(below, 0.3, 40).stop


def test_checkpoints_are_multiples_of_the_spend_at_first_report() -> None:
    curve = CurveScheduler({"type": "curve", "ratio": 2}, mode="min")
    assert curve.next_check(1000, 1000) == 2000
    assert curve.next_check(1000, 2000) == 4000
    assert curve.next_check(1000, 5000) == 8000
    floored = CurveScheduler({"type": "curve", "min_usd": 0.01}, mode="min")
    assert floored.next_check(1000, 1000) == 16_000  # the first multiple at or above min_usd


# -- real simulated sweeps ---------------------------------------------------------------------


def sweep(configs: list[dict[str, Any]], *, max_steps: int = 27, **scheduler: Any) -> dict[str, Any]:
    return {
        "name": "curvy", "objective": {"metric": "loss", "mode": "min"}, "space": SPACES["mlp_tabular"],
        "sampler": {"type": "manual", "configs": configs}, "scheduler": {"type": "curve", **scheduler},
        "budget": {"trials": len(configs)},
        "resources": {"provider": "simulated", "region": "us-east-1", "instance_type": "m5.large",
                      "market": "on-demand", "workers": 1,
                      "simulation": {"workload": "costtune.demo.bench_workloads:mlp_tabular", "max_steps": max_steps,
                                     "startup_seconds": 60}},
    }


def run(store: Store, cfg: dict[str, Any], on_event: Any = None) -> Any:
    spec = parse_sweep(cfg)
    study, _ = open_sweep(store, spec)
    provider = make_provider("simulated", simulation=spec.resources.simulation, metric=spec.metric)
    controller = SweepController(spec, study, provider, trial_events=on_event is not None,
                                 on_event=None if on_event is None else (lambda m: on_event(controller, m)))
    with contextlib.suppress(KeyboardInterrupt):
        controller.run()
    return study


def outcome(store: Store, study: Any) -> list[tuple[Any, ...]]:
    return [(t.number, t.state, t.value, t.last_step, t.verdicts) for t in study.history().trials]


def test_a_bad_configuration_is_stopped_early_and_a_good_one_runs_to_its_end(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    study = run(store, sweep([GOOD, BAD, GOOD]))
    good, bad, again = study.history().trials
    assert good.state == again.state == TrialState.COMPLETE and good.last_step == again.last_step == 26
    assert bad.state == TrialState.STOPPED and bad.last_step is not None and bad.last_step < 13
    assert bad.value == pytest.approx(mlp_tabular(BAD, bad.last_step, "m5.large")[0])  # its last value is its result
    full_bad = sum(mlp_tabular(BAD, s, "m5.large")[1] for s in range(27)) + 60  # seconds it would have billed
    assert bad.cost_micros < 0.5 * full_bad * 96_000 / 3600
    (level, value, promoted), = bad.verdicts
    assert value == bad.value and not promoted and abs(level - bad.cost_micros) <= 1
    note = store.attempts(study.id, 1)[0].note
    assert note.startswith("curve: predicted") and f"beat the best {good.value:.4g}" in note
    shown = CliRunner().invoke(main, ["trials", "curvy", "1", "--db", store.url])
    assert shown.exit_code == 0, shown.output
    assert "stopped" in shown.output and "curve: predicted" in shown.output


def test_a_trial_with_few_points_is_never_stopped(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    study = run(store, sweep([GOOD, BAD, BAD], max_steps=4))  # 4 reports each: fewer than min_points 5
    assert [t.state for t in study.history().trials] == [TrialState.COMPLETE] * 3
    lenient = Store(f"sqlite:///{tmp_path / 't.db'}")
    study = run(lenient, sweep([GOOD, BAD, BAD], max_steps=27, min_points=27))
    assert [t.state for t in study.history().trials] == [TrialState.COMPLETE] * 3


@pytest.mark.parametrize("at", ["trial 1 stopped", "trial 2 started"])
def test_a_sweep_interrupted_after_a_stop_resumes_to_the_same_outcome(tmp_path: Path, at: str) -> None:
    """Verdicts depend only on the store: the stop made stands, the rest is judged as in one straight run
    (an interrupted trial runs again, so only its state is compared)."""
    configs = [GOOD, BAD, BAD, GOOD]
    straight = Store(f"sqlite:///{tmp_path / 'a.db'}")
    expected = outcome(straight, run(straight, sweep(configs)))
    assert [row[1] for row in expected] == [TrialState.COMPLETE, TrialState.STOPPED, TrialState.STOPPED,
                                            TrialState.COMPLETE]

    def interrupt(controller: SweepController, message: str) -> None:
        if message.startswith(at):
            controller.interrupt()

    store = Store(f"sqlite:///{tmp_path / 'b.db'}")
    study = run(store, sweep(configs), on_event=interrupt)
    states = [t.state for t in study.history().trials]
    assert states[:2] == [TrialState.COMPLETE, TrialState.STOPPED] and TrialState.QUEUED in states
    resumed = outcome(store, run(store, sweep(configs)))
    assert [row[:2] for row in resumed] == [row[:2] for row in expected]
    assert resumed[:2] == expected[:2]  # the stop stands as made: value, step and verdict
    assert resumed[3] == expected[3]
    assert resumed[2][3] < 13  # the interrupted bad trial is stopped early again


# -- in-process studies --------------------------------------------------------------------------


def test_in_process_study_stops_a_bad_curve_and_says_why(store_url: str) -> None:
    import time

    import costtune
    from costtune.errors import StopTrial

    def train(trial: costtune.Trial) -> float:
        final = trial.params["final"]
        loss = 1.0
        for step in range(30):
            time.sleep(0.004)
            loss = final + (1.0 - final) * math.exp(-0.3 * (step + 1))
            trial.report(step, loss=loss)
            if trial.should_stop():
                raise StopTrial()
        return loss

    study = costtune.create_study("curve-in-process", storage=store_url, metric="loss",
                                  space={"final": {"type": "categorical", "choices": [0.2, 0.7]}},
                                  scheduler={"type": "curve"}, usd_per_hour="36")
    for final in (0.2, 0.7, 0.2):
        study.enqueue({"final": final})
    study.optimize(train, n_trials=3)
    good, bad, again = study.history().trials
    assert good.state == again.state == TrialState.COMPLETE and good.last_step == again.last_step >= 29
    assert bad.state == TrialState.STOPPED and bad.last_step is not None and 4 <= bad.last_step < 29  # >= 5 reports
    (level, value, promoted), = bad.verdicts
    assert value == bad.value and not promoted and 0 < level <= bad.cost_micros
    note = study.store.attempts(study.id, 1)[0].note
    assert note is not None and note.startswith("curve: ") and "beat the best 0.2" in note


# -- the sweep file around it --------------------------------------------------------------------


def test_min_usd_at_or_above_the_cap_is_refused_naming_it() -> None:
    """Curve checks no trial before it has spent min_usd: at or above the study's cap it could never fire."""
    for min_usd in (5, "0.50"):
        cfg = {**sweep([GOOD], min_usd=min_usd), "budget": {"usd": 0.50}}
        with pytest.raises(SpecError) as exc:
            parse_sweep(cfg)
        assert exc.value.path == "scheduler.min_usd" and "budget.usd ($0.50)" in str(exc.value)
        assert str(Decimal(str(min_usd))) in str(exc.value)
    ok = parse_sweep({**sweep([GOOD], min_usd="0.05"), "budget": {"usd": 0.50}})
    assert ok.scheduler["min_usd_micros"] == 50_000


@pytest.mark.parametrize("scheduler", [{"type": "curve", "confidence": 0.9},
                                       {"type": "asha", "min_usd": "0.001", "max_usd": "0.009"}])
def test_a_resumed_file_without_a_scheduler_keeps_the_stored_one(tmp_path: Path, scheduler: dict[str, Any]) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    first = {**sweep([GOOD]), "scheduler": scheduler}
    run(store, first)
    again = {key: value for key, value in first.items() if key != "scheduler"}
    spec = parse_sweep({**again, "sampler": {"type": "manual", "configs": [GOOD, BAD]}, "budget": {"trials": 2}})
    assert spec.scheduler["type"] == "fifo"  # the file alone says nothing
    study, resumed = open_sweep(store, spec)  # no "the file says fifo"
    assert resumed and spec.scheduler == scheduler_config(scheduler)  # what the controller will use
    stored = store.get_study(study.name).spec["scheduler"]
    assert scheduler_config(stored) == scheduler_config(scheduler)
    other = {**first, "scheduler": {"type": "fifo"}}  # a file that names another scheduler is still refused
    with pytest.raises(InputError, match=r"scheduler\.type"):
        open_sweep(store, parse_sweep(other))


def test_a_resumed_curve_study_without_a_scheduler_section_still_stops_bad_trials(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    run(store, sweep([GOOD]))
    again = {key: value for key, value in sweep([GOOD, BAD]).items() if key != "scheduler"}
    _, bad = run(store, again).history().trials
    assert bad.state == TrialState.STOPPED and bad.verdicts and bad.last_step is not None and bad.last_step < 13


def test_trials_labels_curve_verdicts_as_checks_and_keeps_its_json(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    study = run(store, sweep([GOOD, BAD]))
    bad = study.history().trials[1]
    shown = CliRunner().invoke(main, ["trials", "curvy", "1", "--db", store.url])
    assert shown.exit_code == 0, shown.output
    assert "checks: $" in shown.output and "rungs:" not in shown.output
    as_json = CliRunner().invoke(main, ["trials", "curvy", "1", "--db", store.url, "--format", "json"])
    (verdict,) = json.loads(as_json.output)["verdicts"]
    assert set(verdict) == {"rung_usd", "rung_micros", "value", "promoted", "reason"}  # as for rung verdicts (README)
    assert verdict["reason"].startswith("curve: predicted")  # why, as the live output said
    assert verdict["rung_micros"] == bad.verdicts[0][0] and verdict["promoted"] is False


# -- command trials: a stop racing the trial's own end ---------------------------------------------

RACER = """\
import signal, sys, time
import costtune

final, mode = float(sys.argv[1]), sys.argv[2]  # mode: "good" runs through; "finish"/"die" wait to be stopped
values = [final + 0.5 ** (t + 1) for t in range(11)]  # steps 0..10, 10 is the last


def finish(*_):  # its last steps were on their way when the stop came: it ends on its own, exit 0
    for t in range(7, 11):
        costtune.report(step=t, loss=values[t])
    sys.exit(0)


if mode == "finish":
    signal.signal(signal.SIGTERM, finish)
costtune.report(step=0, loss=values[0])
time.sleep(0.3)
for t in range(1, 7 if mode != "good" else 11):
    costtune.report(step=t, loss=values[t])
if mode != "good":
    time.sleep(60)  # judged here, with steps 0..6 of 0..10 in
"""


def test_a_command_trial_that_reaches_its_end_before_the_stop_lands_is_complete(tmp_path: Path) -> None:
    """Stopped at step 6 of 10: one trial's last steps and exit 0 arrive before the kill (it finishes on
    SIGTERM), so it is complete with its final value; one that dies on SIGTERM stays stopped."""
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    cfg = {
        "name": "racing", "objective": {"metric": "loss", "mode": "min"},
        "space": {"final": {"type": "uniform", "low": 0.0, "high": 1.0},
                  "mode": {"type": "categorical", "choices": ["good", "finish", "die"]}},
        "sampler": {"type": "manual", "configs": [{"final": 0.1, "mode": "good"}, {"final": 0.9, "mode": "finish"},
                                                  {"final": 0.9, "mode": "die"}]},
        "scheduler": {"type": "curve"}, "budget": {"trials": 3, "usd": 5, "trial_seconds": 30},
        "resources": {"provider": "local", "usd_per_hour": 36, "workers": 1},
        "command": [sys.executable, str(script), "{final}", "{mode}"], "output_dir": str(tmp_path / "runs"),
    }
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    spec = parse_sweep(cfg)
    study, _ = open_sweep(store, spec)
    SweepController(spec, study, make_provider("local"), workdir=str(tmp_path)).run()
    good, finished, died = study.history().trials
    assert good.state == TrialState.COMPLETE and good.last_step == 10
    assert finished.state == TrialState.COMPLETE and finished.last_step == 10
    assert finished.value == pytest.approx(0.9 + 0.5 ** 11) and finished.verdicts  # the verdict stays on record
    assert store.attempts(study.id, 1)[0].note.endswith("it completed before the stop took effect")
    assert died.state == TrialState.STOPPED and died.last_step == 6 and died.verdicts


@pytest.mark.parametrize(("given", "echoed"), [(0.5, "got 0.5"), ("0.5", "got '0.5'"), (1, "got 1")])
def test_min_usd_above_the_cap_is_echoed_as_written(given: Any, echoed: str) -> None:
    """An acceptance run: `min_usd: 0.5` (a number) was echoed `got '0.5'`, as if the file had quoted it."""
    data = {"name": "c", "objective": {"metric": "loss", "mode": "min"},
            "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}}, "sampler": {"type": "random", "seed": 1},
            "scheduler": {"type": "curve", "min_usd": given}, "budget": {"usd": 0.2},
            "resources": {"provider": "local", "usd_per_hour": 0.096, "workers": 1}, "command": ["true"]}
    with pytest.raises(SpecError) as exc:
        parse_sweep(data)
    assert exc.value.path == "scheduler.min_usd" and "must be below budget.usd" in str(exc.value)
    assert str(exc.value).endswith(echoed)
