"""`costtune plan`: the dollar plan of a sweep and its simulated spend forecast, with nothing stored."""

from __future__ import annotations

import io
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from storetools import sqlite_rows

from costtune.cli import main
from costtune.money import format_usd, format_usd_exact, usd_to_micros
from costtune.schedulers import plan_brackets, rung_ladder

SWEEP: dict[str, Any] = {
    "name": "plan-hb",
    "objective": {"metric": "loss", "mode": "min"},
    "space": {f"x{i}": {"type": "uniform", "low": 0, "high": 1} for i in range(1, 7)},
    "sampler": {"type": "random", "seed": 1},
    "scheduler": {"type": "hyperband", "min_usd": 0.002, "max_usd": 0.054, "eta": 3},
    "budget": {"usd": 1},
    "resources": {
        "provider": "simulated", "region": "us-east-1", "market": "spot", "workers": 8,
        "instance_type": {"type": "categorical", "choices": ["m5.large", "c5.xlarge", "g4dn.xlarge"]},
        "simulation": {"workload": "costtune.demo.workloads:hartmann6", "max_steps": 50, "startup_seconds": 60,
                       "preemptions_per_hour": 0.5, "seed": 0},
    },
}


@pytest.fixture(autouse=True)
def _no_user_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point every default location into tmp_path, so a test can see that plan created nothing there."""
    monkeypatch.setenv("COSTTUNE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COSTTUNE_DB", str(tmp_path / "home" / "user.db"))


def _sweep(tmp_path: Path, file: str = "sweep.yaml", **changes: Any) -> Path:
    data = json.loads(json.dumps(SWEEP))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = data
        for key in parents:
            node = node[key]
        node[leaf] = value
    path = tmp_path / file
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _plan_json(path: Path, runs: int) -> dict[str, Any]:
    """The plan's JSON with ``runs`` forecast runs, in this process (--jobs 1: the runs are the same in any number
    of worker processes, which the parallel tests below check; spawning workers costs more than these runs)."""
    result = _cli("plan", str(path), "--runs", str(runs), "--format", "json", "--quiet", "--jobs", "1")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_hyperband_brackets_match_plan_brackets(tmp_path: Path) -> None:
    path = _sweep(tmp_path)
    out = _plan_json(path, 1)
    expected = plan_brackets("hyperband", 2000, 54000, 3, usd_to_micros(1))
    brackets = out["plan"]["brackets"]
    assert [b["trials_per_rung"] for b in brackets] == [list(b.trials_per_rung) for b in expected.brackets]
    assert [b["rungs_micros"] for b in brackets] == [list(b.rungs) for b in expected.brackets]
    assert [b["cost_micros"] for b in brackets] == [b.cost_micros for b in expected.brackets]
    # the run adds an iteration at the plan's end while what is left of the cap holds one (as the forecast does)
    more = out["plan"]["iterations"]
    assert more == 2 * expected.iterations and out["forecast"]["trials_median"] == out["plan"]["trials"]
    assert out["plan"]["trials"] == more * expected.total_trials
    assert out["plan"]["planned_micros"] == more * expected.total_cost_micros
    # the table shows the same brackets, in dollars
    table = _cli("plan", str(path), "--runs", "1", "--quiet").stdout
    assert "hyperband brackets" in table and "27 9 3 1" in table and "$0.054" in table
    assert not (tmp_path / "home").exists()  # plan never opens (or creates) the user's store


def test_forecast_is_close_to_actual_runs_with_other_seeds(tmp_path: Path) -> None:
    forecast = _plan_json(_sweep(tmp_path), 5)["forecast"]
    assert forecast["runs"] == 5
    spends = []
    for k in range(5):
        path = _sweep(tmp_path, f"actual-{k}.yaml", name=f"actual-{k}", sampler__seed=100 + k,
                      resources__simulation__seed=100 + k)
        db = tmp_path / f"actual-{k}.db"
        result = _cli("run", str(path), "--db", str(db), "--quiet")
        assert result.exit_code == 0, result.output
        board = json.loads(_cli("leaderboard", f"actual-{k}", "--db", str(db), "--format", "json").stdout)
        spends.append(sum(t["cost_micros"] for t in board["trials"]))
    actual = statistics.median(spends)
    predicted = forecast["spend_median_micros"]
    assert abs(predicted - actual) <= 0.15 * actual, (predicted, spends)
    assert forecast["spend_p10_micros"] <= predicted <= forecast["spend_p90_micros"]
    assert forecast["best_median"] is not None


def test_small_asha_budget_is_always_reached(tmp_path: Path) -> None:
    path = _sweep(tmp_path, scheduler={"type": "asha", "min_usd": 0.002, "max_usd": 0.054, "eta": 3},
                  budget={"usd": 0.2})
    out = _plan_json(path, 3)
    assert out["forecast"]["p_reach_cap"] == 1.0
    assert out["plan"]["ladder_micros"] == list(rung_ladder(2000, 54000, 3))
    assert out["plan"]["trials_estimated"] is True and out["plan"]["trials"] > 0


def test_json_holds_every_section(tmp_path: Path) -> None:
    out = _plan_json(_sweep(tmp_path), 2)
    assert {"name", "provider", "scheduler", "budget", "plan", "overheads", "launches", "overhead_micros",
            "preemption", "forecast", "notes"} <= out.keys()
    assert {"spend_median_usd", "spend_p10_usd", "spend_p90_usd", "p_reach_cap", "best_median",
            "samples"} <= out["forecast"].keys()
    assert len(out["forecast"]["samples"]) == 2
    assert {o["instance_type"] for o in out["overheads"]} == {"m5.large", "c5.xlarge", "g4dn.xlarge"}
    g4 = next(o for o in out["overheads"] if o["instance_type"] == "g4dn.xlarge")
    assert g4["minimum_seconds"] == 60 and g4["startup_micros"] == g4["minimum_micros"] > 0  # 60 s either way
    assert out["preemption"]["expected"] > 0 and out["preemption"]["per_hour"] == 0.5


def test_on_demand_has_no_preemption_waste(tmp_path: Path) -> None:
    out = _plan_json(_sweep(tmp_path, resources__market="on-demand"), 1)
    assert out["preemption"]["expected"] == 0 and out["preemption"]["waste_micros"] == 0
    assert out["forecast"]["samples"][0]["preemptions"] == 0


def test_local_sweep_gets_the_analytic_plan_only(tmp_path: Path) -> None:
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump({
        "name": "loc", "objective": {"metric": "loss"}, "space": {"lr": {"type": "loguniform", "low": 1e-4,
                                                                         "high": 0.1}},
        "command": ["python", "train.py", "--lr", "{lr}"],
        "scheduler": {"type": "sh", "min_usd": 0.01, "max_usd": 0.09}, "budget": {"usd": 2},
        "resources": {"provider": "local", "price_as": "aws/us-east-1/g4dn.xlarge"},
    }))
    out = _plan_json(path, 20)
    assert out["forecast"] is None
    assert out["plan"]["planned_micros"] == plan_brackets("sh", 10000, 90000, 3, 2_000_000).total_cost_micros
    assert any("workload model" in note for note in out["notes"])


@pytest.mark.parametrize(("changes", "field"), [
    ({"resources__workers": 0}, "resources.workers"),
    ({"budget": {"usd": 0.01}}, "budget.usd"),  # below the smallest hyperband plan, as `costtune run` says
    # max_usd is chosen from budget.usd when not given; without budget.usd it is required
    ({"scheduler": {"type": "hyperband", "min_usd": 0.01}, "budget": {"trials": 5}}, "scheduler.max_usd"),
    ({"scheduler": {"type": "asha", "min_usd": "-1"}}, "scheduler.min_usd"),
    ({"resources__provider": "gcpp"}, "resources.provider"),  # named before 'command is required'
])
def test_bad_sweep_exits_2_naming_the_field(tmp_path: Path, changes: dict[str, Any], field: str) -> None:
    result = _cli("plan", str(_sweep(tmp_path, **changes)), "--quiet")
    assert result.exit_code == 2
    assert field in result.stderr
    assert not (tmp_path / "home").exists()


def test_missing_file_and_bad_flags_exit_2(tmp_path: Path) -> None:
    missing = _cli("plan", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    for flag, value in (("--runs", "-3"), ("--jobs", "0"), ("--jobs", "-1")):
        result = _cli("plan", str(_sweep(tmp_path)), flag, value)
        assert result.exit_code == 2 and flag in result.stderr and value in result.stderr
    assert not (tmp_path / "home").exists()


# -- the plan at once, the parallel forecast ---------------------------------------------------------------


@pytest.mark.parametrize("flags", [("--runs", "0"), ("--no-forecast",), ("--no-forecast", "--runs", "5")])
def test_plan_alone_prints_without_a_forecast(tmp_path: Path, flags: tuple[str, ...]) -> None:
    path = _sweep(tmp_path)
    out = json.loads(_cli("plan", str(path), *flags, "--format", "json").stdout)
    assert out["forecast"] is None
    assert out["plan"]["trials"] == 2 * plan_brackets("hyperband", 2000, 54000, 3, usd_to_micros(1)).total_trials
    assert any("no spend forecast" in note for note in out["notes"])
    table = _cli("plan", str(path), *flags)
    assert table.exit_code == 0
    assert "hyperband brackets" in table.stdout and "forecast:" not in table.stdout
    assert not (tmp_path / "home").exists()


def test_parallel_runs_match_serial_runs_and_report_as_they_finish(tmp_path: Path) -> None:
    from costtune.plan.forecast import forecast
    from costtune.spec import load_sweep

    spec = load_sweep(_sweep(tmp_path, budget={"usd": 0.3}))
    seen: list[tuple[int, int]] = []
    parallel = forecast(spec, 3, jobs=2, on_run=lambda k, sample: seen.append((k, sample.spend_micros)))
    serial = forecast(spec, 3, jobs=1)
    assert parallel.runs == serial.runs  # run k is seeded by k, whichever process runs it
    assert sorted(seen) == [(k, r.spend_micros) for k, r in enumerate(serial.runs)]
    assert len({r.seed for r in serial.runs}) == 3  # and the runs differ from each other
    assert parallel.sampler == "random" and parallel.stand_in is None


def test_a_forecast_stopped_early_leaves_no_pool_thread_for_the_interpreters_exit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tester's `costtune plan --quiet` printed, once in 7 runs, "Exception ignored ... Bad file
    descriptor" at exit (exit 0): the forecast stopped its worker pool without waiting for the pool's
    manager thread, whose closing of its wake-up pipe raced the interpreter's exit hook writing to it.
    When the forecast returns, that thread has ended and its pipe is closed: the hook has nothing to race."""
    import threading
    import time
    from concurrent.futures import process

    from costtune.plan.forecast import _in_processes, seeded_raw
    from costtune.spec import load_sweep

    wind_down = process._ExecutorManagerThread.join_executor_internals

    def slow_wind_down(self: Any) -> None:  # the race's window held open: the thread ends 0.3 s late
        time.sleep(0.3)
        wind_down(self)

    monkeypatch.setattr(process._ExecutorManagerThread, "join_executor_internals", slow_wind_down)
    spec = load_sweep(_sweep(tmp_path, budget={"usd": 0.3}))
    _in_processes([seeded_raw(spec, k) for k in range(4)], 2, False, lambda k, sample: True)  # stop at the first
    managers = [t for t in threading.enumerate() if type(t).__name__ == "_ExecutorManagerThread"]
    assert managers == []
    assert all(wakeup._closed for wakeup in list(process._threads_wakeups.values()))


def _sample(spend: int, best: float = 1.0) -> Any:
    from costtune.plan.forecast import RunSample

    return RunSample(seed=0, spend_micros=spend, best_value=best, preemptions=0, waste_micros=0, trials=1,
                     sim_seconds=1.0)


def test_the_settling_rule_waits_for_the_figures_to_stop_moving() -> None:
    from costtune.plan.forecast import MIN_SETTLE_RUNS, settled

    cap = 1_000_000
    steady = [_sample(900_000 + 1000 * (k % 3), best=0.5 + 0.01 * (k % 2)) for k in range(12)]
    assert not settled(steady[:MIN_SETTLE_RUNS - 1], cap)  # never before the minimum
    assert settled(steady[:MIN_SETTLE_RUNS], cap)
    spread = [_sample(100_000 * (k % 10)) for k in range(12)]  # spend all over the range: p10-p90 keep moving
    assert not settled(spread, cap)
    capped = steady[:7] + [_sample(cap)] * 4  # the last runs reach the cap: P(reach cap) moved by 0.36
    assert not settled(capped, cap)
    assert not settled(steady[:8] + [_sample(900_000, best=5.0)] * 4, cap)  # the median best moved
    assert settled(steady[:MIN_SETTLE_RUNS], None)  # without a cap the median spend is the scale


def test_a_settling_forecast_stops_early_the_same_way_whatever_the_jobs(tmp_path: Path) -> None:
    """By default the forecast runs until its figures settle (8 to 20 runs); which runs it keeps is
    decided in run order, so the result does not depend on --jobs; --runs N makes exactly N."""
    from costtune.plan.forecast import MIN_SETTLE_RUNS, forecast
    from costtune.plan.render import render_forecast
    from costtune.richtext import make_console
    from costtune.spec import load_sweep

    # $0.2: its figures settle within 20 runs (at $0.1 whether a run's last Hyperband iteration fits, now that
    # rungs count money after the first report, varies too much from run to run for them to)
    spec = load_sweep(_sweep(tmp_path, budget={"usd": 0.2}))
    serial = forecast(spec, 20, jobs=1, settle=True)
    assert serial.settled and serial.most == 20 and MIN_SETTLE_RUNS <= len(serial.runs) < 20
    n = len(serial.runs)
    # the command's default: settling, in two worker processes (finishing in any order)
    result = _cli("plan", str(tmp_path / "sweep.yaml"), "--format", "json", "--quiet", "--jobs", "2")
    data = json.loads(result.stdout)["forecast"]
    assert (data["runs"], data["settled"], data["max_runs"]) == (n, True, 20)
    assert [r["spend_micros"] for r in data["samples"]] == [r.spend_micros for r in serial.runs]
    console = make_console(file=io.StringIO(), width=120)
    render_forecast(serial, console)
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert f"forecast: {n} simulated runs (settled)" in shown
    assert f"the figures stopped moving after {n} of at most 20 runs" in shown
    capped = forecast(spec, MIN_SETTLE_RUNS, jobs=1, settle=True)  # too few runs to see them settle
    assert capped.moving and not capped.settled and len(capped.runs) == MIN_SETTLE_RUNS
    console = make_console(file=io.StringIO(), width=120)
    render_forecast(capped, console)
    assert f"the figures were still moving after {MIN_SETTLE_RUNS} runs" in console.file.getvalue()  # type: ignore[attr-defined]


def test_ctrl_c_stops_the_forecast_and_its_workers(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import time

    from proctools import wait_gone

    path = _sweep(tmp_path, budget={"usd": 40})  # far more runs than finish before the signal
    env = {**os.environ, "COSTTUNE_HOME": str(tmp_path / "home"), "COSTTUNE_DB": str(tmp_path / "home" / "u.db")}
    proc = subprocess.Popen([sys.executable, "-m", "costtune.cli", "plan", str(path), "--runs", "40", "--jobs", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    children: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(children) < 2:  # the two workers (and spawn's resource tracker)
        time.sleep(0.1)
        try:
            children = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
        except OSError:
            break
    assert len(children) >= 2, proc.communicate(timeout=60)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert "hyperband brackets" in out and "forecast:" not in out  # the plan came at once, before any run
    assert wait_gone(children) == []
    assert not (tmp_path / "home").exists()


def test_bayes_forecast_says_it_drew_at_random_and_stays_close_to_real_bayes_runs(tmp_path: Path) -> None:
    bayes = {"type": "bayes", "seed": 1, "cost_aware": True, "n_startup": 5}
    out = _plan_json(_sweep(tmp_path, sampler=bayes, budget={"usd": 0.4}), 5)
    forecast = out["forecast"]
    assert forecast["sampler"] == "random" and forecast["stands_in_for"] == "bayes"
    assert any("in place of the sweep's bayes sampler" in note for note in out["notes"])
    table = _cli("plan", str(tmp_path / "sweep.yaml"), "--runs", "1", "--quiet").stdout
    assert "drew configurations at random in place of bayes" in table and "--exact-sampler" in table
    spends = []
    for k in range(5):
        path = _sweep(tmp_path, f"actual-{k}.yaml", name=f"actual-{k}", sampler={**bayes, "seed": 100 + k},
                      budget={"usd": 0.4}, resources__simulation__seed=100 + k)
        db = tmp_path / f"actual-{k}.db"
        assert _cli("run", str(path), "--db", str(db), "--quiet").exit_code == 0
        board = json.loads(_cli("leaderboard", f"actual-{k}", "--db", str(db), "--format", "json").stdout)
        spends.append(sum(t["cost_micros"] for t in board["trials"]))
    actual = statistics.median(spends)
    assert abs(forecast["spend_median_micros"] - actual) <= 0.15 * actual, (forecast["spend_median_micros"], spends)


def test_exact_sampler_runs_the_sweeps_own_bayes(tmp_path: Path) -> None:
    bayes = {"type": "bayes", "seed": 1, "n_startup": 3}
    path = _sweep(tmp_path, sampler=bayes, budget={"usd": 0.1}, scheduler={"type": "sh", "min_usd": 0.002,
                                                                            "max_usd": 0.018, "eta": 3})
    result = _cli("plan", str(path), "--runs", "1", "--exact-sampler", "--format", "json", "--quiet")
    forecast = json.loads(result.stdout)["forecast"]
    assert forecast["sampler"] == "bayes" and forecast["stands_in_for"] is None
    assert not any("in place of" in note for note in json.loads(result.stdout)["notes"])


# -- a first rung below what a trial spends before its first report (issue 7) ----------------------------


def test_a_first_rung_below_the_declared_startup_is_no_longer_warned(tmp_path: Path) -> None:
    # m5.large spot: $0.0395/h; 60 s start-up + a first step of 15-45 s bills ~$0.0008-0.0012 before the first
    # report. Rungs now count money after the first report (issue 13), so a $0.0008 first rung is fine.
    low = _sweep(tmp_path, "low.yaml", scheduler={"type": "asha", "min_usd": 0.0008, "max_usd": 0.0216, "eta": 3},
                 resources__instance_type="m5.large", budget={"usd": 0.2})
    notes = _plan_json(low, 0)["notes"]
    assert not any("reports first after" in n or "start-up on" in n or "min_usd" in n for n in notes), notes


def test_plan_shows_the_rungs_it_chose_when_the_file_gives_none(tmp_path: Path) -> None:
    path = _sweep(tmp_path, "chosen.yaml", scheduler={"type": "asha"}, budget={"usd": 1.0})
    result = _cli("plan", str(path), "--no-forecast")  # what is checked here is the plan, not its forecast
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    ladder = _plan_json(path, 0)["scheduler"]
    low, high = ladder["min_usd_micros"], ladder["max_usd_micros"]
    # the top rung is on min_usd's ladder (min_usd * 3**k), the highest within budget.usd / 20 = $0.05
    assert high in {low * 3**k for k in range(1, 20)} and high <= 50_000 < high * 3
    assert (f"rungs chosen where the file gives none: max_usd {format_usd_exact(high)} = min_usd x 3^2, the highest "
            "rung within budget.usd $1.00 / 20 = $0.05") in text
    assert "counted after each trial's first report" in text
    # exactly what is stored (a rounded $0.00266 copied into the file would be refused on resume)
    assert f"min_usd {format_usd_exact(ladder['min_usd_micros'])} = 120 s on the median rate" in text


def _local_sweep(tmp_path: Path, name: str, *, min_usd: float, sleep_s: float) -> Path:
    """A local sweep whose trial sleeps before its first report, at $3.60/h ($0.001 a second)."""
    script = tmp_path / "train.py"
    script.write_text(f"import time\ntime.sleep({sleep_s})\n"
                      "print('costtune:report ' + '{\"step\": 0, \"loss\": 1.0}')\n")
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "objective": {"metric": "loss"},
        "space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 0.1}},
        "command": [sys.executable, str(script)],
        "scheduler": {"type": "asha", "min_usd": min_usd, "max_usd": min_usd * 9, "eta": 3},
        "budget": {"trials": 3}, "resources": {"provider": "local", "usd_per_hour": 3.6, "workers": 3},
    }))
    return path


def test_measured_first_reports_in_the_store_are_warned_and_the_store_is_only_read(tmp_path: Path) -> None:
    # Issue 7: every trial of the earlier sweep was stopped before its first report: a 4 s start-up at $3.60/h
    # outruns the whole ladder ($0.0018 max_usd), which is what an attempt may spend before its first report.
    db = tmp_path / "user.db"
    early = _local_sweep(tmp_path, "slow-start", min_usd=0.0002, sleep_s=4.0)
    _cli("run", str(early), "--db", str(db), "--quiet")  # fails: "no trial produced a value"
    board = json.loads(_cli("leaderboard", "slow-start", "--db", str(db), "--format", "json").stdout)
    assert [t["value"] for t in board["trials"]] == [None, None, None]  # the failure the warning is about
    before = sqlite_rows(db)
    notes = json.loads(_cli("plan", str(early), "--db", str(db), "--format", "json").stdout)["notes"]
    warned = [n for n in notes if "earlier attempts of study 'slow-start'" in n]
    assert len(warned) == 1 and "3 attempts ended without any report" in warned[0] and "$0.0018" in warned[0]
    assert warned[0].endswith("(scheduler.max_usd), so they were stopped before they reported; raise max_usd")
    assert sqlite_rows(db) == before  # read-only: not a row of the store changed
    # a ladder above what they spent is not warned about; another sweep name has no history
    higher = _local_sweep(tmp_path, "slow-start", min_usd=0.02, sleep_s=4.0)
    assert not any("earlier attempts" in n for n in _plan_json_db(higher, db)["notes"])
    other = _local_sweep(tmp_path, "other-name", min_usd=0.0002, sleep_s=4.0)
    assert not any("earlier attempts" in n for n in _plan_json_db(other, db)["notes"])


def _plan_json_db(path: Path, db: Path, *flags: str) -> dict[str, Any]:
    result = _cli("plan", str(path), "--db", str(db), "--format", "json", *flags)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_measured_first_reports_above_the_rung_are_not_warned(tmp_path: Path) -> None:
    db = tmp_path / "user.db"
    quick = _local_sweep(tmp_path, "quick-start", min_usd=0.005, sleep_s=0.0)
    assert _cli("run", str(quick), "--db", str(db), "--quiet").exit_code == 0
    assert not any("earlier attempts" in n for n in _plan_json_db(quick, db)["notes"])
    # a first rung below python's own start-up: rungs count money after the first report, so first reports that
    # came past the rung stopped nothing (a new user found this warned "raise min_usd" for harmless start-ups)
    tighter = _local_sweep(tmp_path, "quick-start", min_usd=0.0001, sleep_s=0.0)
    assert not any("earlier attempts" in n for n in _plan_json_db(tighter, db)["notes"])


def test_a_missing_store_is_skipped_and_not_created(tmp_path: Path) -> None:
    path = _local_sweep(tmp_path, "slow-start", min_usd=0.002, sleep_s=1.0)
    for db in (tmp_path / "nowhere" / "none.db", tmp_path / "none.db"):
        result = _cli("plan", str(path), "--db", str(db), "--format", "json")
        assert result.exit_code == 0 and not db.exists() and not db.parent.joinpath("none.db-wal").exists()
    assert _cli("plan", str(path)).exit_code == 0  # the default store does not exist either
    assert not (tmp_path / "home").exists()


def test_workload_shapes_ask_few_steps_and_match_asking_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    import math

    import costtune.providers.simulated as simulated

    from costtune.plan import shapes
    from costtune.plan.analytic import build_plan
    from costtune.plan.render import to_dict
    from costtune.spec import parse_sweep

    calls = [0]

    def wavy(params: dict[str, Any], step: int, instance_type: str) -> tuple[float, float]:
        calls[0] += 1  # step times that drift and oscillate, unlike hartmann6's constant ones
        return 1.0 / (step + 1), 10 + 5 * math.sin(step / 50) + step * 0.01 + 20 * float(params["x1"])

    monkeypatch.setattr(simulated, "load_workload", lambda _name: wavy)
    figures = {}
    for kind, scheduler in (("fifo", {"type": "fifo"}), ("asha", {"type": "asha", "min_usd": 0.01, "max_usd": 0.27}),
                            ("hyperband", SWEEP["scheduler"])):
        raw = json.loads(json.dumps(SWEEP))
        raw.update(scheduler=scheduler, budget={"usd": 7.5})
        raw["resources"]["simulation"]["max_steps"] = 3000
        spec = parse_sweep(raw)
        calls[0] = 0
        sparse = to_dict(build_plan(spec))
        figures[kind] = calls[0]
        monkeypatch.setattr(shapes, "EXACT_STEPS", 10**9)  # ask every step, as the plan used to
        exact = to_dict(build_plan(spec))
        monkeypatch.setattr(shapes, "EXACT_STEPS", 32)
        for key in ("planned_micros", "expected_micros", "trial_cost_micros"):
            if exact["plan"][key]:
                assert abs(sparse["plan"][key] - exact["plan"][key]) <= 0.02 * exact["plan"][key], (kind, key)
        assert sparse["plan"]["trials"] == exact["plan"]["trials"]
        assert abs(sparse["overhead_micros"] - exact["overhead_micros"]) <= 0.02 * exact["overhead_micros"]
    assert all(n <= shapes.SHAPE_SAMPLES * 160 for n in figures.values()), figures  # not 48 x 3000


def test_a_worker_that_dies_fails_the_forecast_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "dying_workload.py").write_text(
        "import multiprocessing, os\n"
        "def curve(params, step, instance_type):\n"
        "    if step == 3 and multiprocessing.parent_process() is not None:\n"
        "        os._exit(3)  # takes its forecast worker down with it\n"
        "    return 1.0 / (step + 1), 10.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers get this process's sys.path
    path = _sweep(tmp_path, resources__simulation__workload="dying_workload:curve")
    result = _cli("plan", str(path), "--runs", "4", "--jobs", "2", "--quiet")
    assert result.exit_code == 1
    assert "a worker process died" in result.stderr and "--jobs 1" in result.stderr
    assert "hyperband brackets" in result.stdout  # the plan was out before the forecast failed


def test_progress_shows_runs_done_and_the_median_spend_so_far(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    import costtune.cli.money as money
    from costtune.money import format_usd

    screen = io.StringIO()
    monkeypatch.setattr(money, "err_console", Console(file=screen, force_terminal=True, width=160))
    result = _cli("plan", str(_sweep(tmp_path, budget={"usd": 0.3})), "--runs", "3", "--jobs", "2", "--format", "json")
    assert result.exit_code == 0
    shown = screen.getvalue()
    for done in ("0/3", "1/3", "2/3", "3/3"):
        assert done in shown
    spends = sorted(s["spend_micros"] for s in json.loads(result.stdout)["forecast"]["samples"])
    # after the third run: the median of all three, by the one money rule
    assert f"median spend so far {format_usd(spends[1])}" in shown


def test_a_forecast_of_large_runs_says_so_before_it_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run of very many trials takes minutes: the plan says so (and how to go quicker) up front."""
    import costtune.cli.money as money

    monkeypatch.setattr(money, "_LARGE_RUN_TRIALS", 1)  # any plan is "large" now
    result = _cli("plan", str(_sweep(tmp_path, budget={"usd": 0.1})), "--runs", "1", "--quiet")
    assert result.exit_code == 0, result.output
    assert "each forecast run simulates about" in result.stderr and "--no-forecast" in result.stderr



def _stored_sweep(tmp_path: Path, file: str, **changes: Any) -> Path:
    """A small on-demand simulated sweep of study "resumable"; ``changes`` as ``_sweep``'s (None drops a section)."""
    path = _sweep(tmp_path, file, name="resumable", resources__market="on-demand", resources__workers=2,
                  resources__instance_type="m5.large", resources__simulation__preemptions_per_hour=0,
                  resources__simulation__max_steps=20, **changes)
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({k: v for k, v in data.items() if v is not None}, sort_keys=False))
    return path


def test_plan_of_a_study_the_store_holds_describes_its_resume(tmp_path: Path) -> None:
    """The store holds study "resumable" (random sampler, seed 7, hyperband with rungs chosen from its $0.1 cap).
    A file with no sampler type nor scheduler section and another budget.usd is planned as `costtune run`
    would resume it: the stored sampler (not today's default), scheduler, rungs and cap, and what it spent."""
    db = tmp_path / "user.db"
    first = _stored_sweep(tmp_path, "first.yaml", sampler={"type": "random", "seed": 7},
                          scheduler={"type": "hyperband"}, budget={"usd": 0.1})
    ran = _cli("run", str(first), "--db", str(db), "--quiet")
    assert ran.exit_code == 0, ran.output
    board = json.loads(_cli("trials", "resumable", "--db", str(db), "--format", "json").stdout)
    spent = sum(t["cost_micros"] for t in board)
    assert 0 < spent <= 100_000
    from costtune.store import Store

    kept = Store(f"sqlite:///{db}")
    stored = kept.get_study("resumable").spec["scheduler"]  # the rungs run chose
    kept.close()
    stored_rungs = {"min_usd_micros": usd_to_micros(stored["min_usd"]),
                    "max_usd_micros": usd_to_micros(stored["max_usd"]), "eta": stored.get("eta", 3)}

    later = _stored_sweep(tmp_path, "later.yaml", sampler=None, scheduler=None, budget={"usd": 0.5})
    before = sqlite_rows(db)
    out = _plan_json_db(later, db, "--runs", "1")  # one forecast run: what is checked here is the plan
    assert sqlite_rows(db) == before  # only read
    assert out["sampler"]["type"] == "random" and out["sampler"]["seed"] == 7  # a priced cap would default to bayes
    assert out["scheduler"]["type"] == "hyperband"
    assert {k: out["scheduler"][k] for k in stored_rungs} == stored_rungs  # not chosen anew from the $0.5 in the file
    assert out["budget"]["usd_micros"] == 100_000  # the stored cap
    rerun = sum(t["state"] not in ("stopped", "complete", "failed") for t in board)  # held, run again
    assert out["resumes"] == {"study": "resumable", "store": str(db), "trials": len(board),
                              "trials_finished": len(board) - rerun, "trials_queued": rerun, "stored_cap_usd": "0.1",
                              "stored_cap_micros": 100_000, "spent_usd": str(spent / 1_000_000).rstrip("0"),
                              "spent_micros": spent, "remaining_usd": out["resumes"]["remaining_usd"],
                              "remaining_micros": 100_000 - spent}
    expected = plan_brackets("hyperband", stored_rungs["min_usd_micros"], stored_rungs["max_usd_micros"],
                             stored_rungs["eta"], 100_000)
    # the whole study is what it holds and what the next run adds; the rungs' money is not raised to the spend
    per_trial = expected.total_cost_micros / expected.total_trials
    assert out["plan"]["trials"] == len(board) + max(0, out["this_run"]["trials"] - rerun)
    assert out["plan"]["planned_micros"] == round(per_trial * out["plan"]["trials"]) or \
        out["plan"]["planned_micros"] == expected.total_cost_micros
    assert any("budget.usd: the file says $0.50" in n and "--change-cap" in n for n in out["notes"])
    # --change-cap plans with the file's cap, as `costtune run --change-cap` would run
    raised = json.loads(_cli("plan", str(later), "--db", str(db), "--format", "json", "--change-cap",
                             "--runs", "1").stdout)
    assert raised["budget"]["usd_micros"] == 500_000 and raised["resumes"]["remaining_micros"] == 500_000 - spent
    assert raised["plan"]["trials"] == len(board) + raised["this_run"]["trials"] - rerun > len(board)
    assert raised["plan"]["total_micros"] == spent + raised["this_run"]["spend_micros"] <= 500_000
    assert not any("budget.usd: the file says" in n for n in raised["notes"])
    table = " ".join(_cli("plan", str(later), "--db", str(db), "--no-forecast").stdout.split())
    assert "sampler random (seed 7), scheduler hyperband" in table
    queued = f", {rerun} queued" if rerun else ""
    assert f"resumes study 'resumable' of {db} ({len(board) - rerun} trials finished{queued}, {format_usd(spent)} " \
        "spent" in table
    assert "already spent (the study so far)" in table and "left under the cap" in table
    # a file the study cannot resume with (another scheduler) is planned as it stands, and says why
    other = _stored_sweep(tmp_path, "other.yaml", scheduler={"type": "asha", "min_usd": 0.001, "max_usd": 0.009,
                                                             "eta": 3}, budget={"usd": 0.1})
    refused = _plan_json_db(other, db, "--runs", "1")
    assert refused["resumes"] is None and refused["scheduler"]["type"] == "asha"
    assert any("`costtune run` would not resume study 'resumable'" in n and "scheduler.type" in n
               for n in refused["notes"])


def test_plan_says_a_seed_the_file_does_not_give_is_drawn_at_run_time(tmp_path: Path) -> None:
    """A seed parse_sweep draws for the plan is not the one `costtune run` draws and stores: plan does not show
    one; once the study exists, plan shows the stored one."""
    db = tmp_path / "user.db"
    path = _stored_sweep(tmp_path, "noseed.yaml", sampler={"type": "random"}, budget={"usd": 0.05},
                         scheduler={"type": "sh", "min_usd": 0.002, "max_usd": 0.018, "eta": 3})
    out = _plan_json_db(path, db, "--runs", "1")  # one forecast run: what is checked here is the plan
    assert out["sampler"] == {"type": "random", "seed": None}
    assert any("sampler.seed: the file gives none; `costtune run` draws one" in n for n in out["notes"])
    assert "sampler random (seed drawn at run time)" in " ".join(_cli("plan", str(path), "--db", str(db),
                                                                       "--no-forecast").stdout.split())
    assert _cli("run", str(path), "--db", str(db), "--quiet").exit_code == 0
    from costtune.store import Store

    seed = Store(f"sqlite:///{db}").get_study("resumable").sampler["seed"]
    again = _plan_json_db(path, db, "--runs", "1")
    assert again["sampler"]["seed"] == seed and not any("sampler.seed" in n for n in again["notes"])
