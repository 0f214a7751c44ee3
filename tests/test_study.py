"""The in-process Python API: create/load, optimize, ask/tell, define-by-run, stop, enqueue, cost."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

import costtune
from costtune.errors import InputError, SamplerExhausted, SpecError, StopTrial, StoreError
from costtune.history import TrialState
from costtune.money import charge_micros

SPACE = {"x": {"type": "uniform", "low": -5, "high": 5}, "n": {"type": "int", "low": 1, "high": 8}}


def quadratic(trial: costtune.Trial) -> float:
    return (trial.params["x"] - 1.0) ** 2 + trial.params["n"]


def test_optimize_records_every_trial_and_the_best(store_url: str) -> None:
    study = costtune.create_study("q", storage=store_url, metric="loss", space=SPACE, sampler="random")
    study.optimize(quadratic, n_trials=12)
    trials = study.trials
    assert [t.number for t in trials] == list(range(12))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    best = min(trials, key=lambda t: t.value)
    assert study.best_trial.number == best.number
    assert study.best_value == pytest.approx((best.params["x"] - 1) ** 2 + best.params["n"])


def test_seeded_random_studies_propose_the_same_configs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    runs = []
    for name in ("a", "b"):
        study = costtune.create_study(name, storage=url, space=SPACE, sampler={"type": "random", "seed": 7})
        study.optimize(quadratic, n_trials=5)
        runs.append([t.params for t in study.trials])
    assert runs[0] == runs[1]


def test_parallel_jobs_share_one_study_without_duplicates(store_url: str) -> None:
    study = costtune.create_study("par", storage=store_url, space=SPACE, sampler="random")

    def slow(trial: costtune.Trial) -> float:
        time.sleep(0.01)
        return quadratic(trial)

    study.optimize(slow, n_trials=16, n_jobs=4)
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(16))
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


def test_ask_tell_with_metrics_dict_and_missing_value(tmp_path: Path) -> None:
    study = costtune.create_study("at", storage=str(tmp_path / "s.db"), metric="loss", space=SPACE)
    t1 = study.ask()
    frozen = study.tell(t1, {"loss": 0.5, "accuracy": 0.9})
    assert frozen.state == TrialState.COMPLETE and frozen.value == 0.5 and frozen.metrics["accuracy"] == 0.9
    t2 = study.ask()
    failed = study.tell(t2)  # nothing reported, nothing returned
    assert failed.state == TrialState.FAILED and "loss" in (failed.error or "")
    t3 = study.ask()
    assert study.tell(t3, float("nan")).state == TrialState.FAILED


def test_telling_a_finished_trial_again_raises_naming_its_state(tmp_path: Path) -> None:
    """A second tell used to return normally and change nothing (issue 7): it is an error, like Optuna's."""
    study = costtune.create_study("again", storage=str(tmp_path / "s.db"), metric="loss", space=SPACE)
    done, failed = study.ask(), study.ask()
    study.tell(done, 0.5)
    study.tell(failed, float("nan"))
    for trial, state in ((done, "complete"), (failed, "failed")):
        with pytest.raises(InputError, match=f"trial {trial.number} has already finished \\({state}\\)"):
            study.tell(trial, 0.1)
    for stored in study.trials:  # the stored record passed instead of the Trial: the same refusal, no AttributeError
        with pytest.raises(InputError, match=f"trial {stored.number} has already finished \\({stored.state}\\)"):
            study.tell(stored, 0.3)  # type: ignore[arg-type]
    assert [(t.state, t.value) for t in study.trials] == [(TrialState.COMPLETE, 0.5), (TrialState.FAILED, None)]


def test_create_study_refuses_an_objective_no_report_can_carry(tmp_path: Path) -> None:
    """The sweep file's metric-name rule (issue 7): `val loss` could never be reported."""
    url = str(tmp_path / "s.db")
    with pytest.raises(SpecError, match=r"metric: must be a metric name like val_loss.*got 'val loss'"):
        costtune.create_study("z4", storage=url, metric="val loss")
    assert costtune.create_study("z5", storage=url, metric="val/loss-2").metric == "val/loss-2"


@pytest.mark.parametrize(("change", "message"), [
    ({"metric": "acc"}, "metric: study 'm' already exists with metric loss, create_study asks for acc"),
    ({"mode": "max"}, "mode: study 'm' already exists with mode min, create_study asks for max"),
    ({"sampler": {"type": "bayes"}}, "sampler.type: study 'm' already exists with sampler.type random, "
                                     "create_study asks for bayes"),
    ({"scheduler": {"type": "asha", "min_usd": 0.001, "max_usd": 0.009}},
     "scheduler.type: study 'm' already exists with scheduler.type fifo, create_study asks for asha"),
    ({"space": {"x": {"type": "uniform", "low": 0, "high": 2}}}, "space: study 'm' already exists with a different"),
])
def test_load_if_exists_refuses_a_changed_definition_like_a_sweep_resume(tmp_path: Path, change: dict,
                                                                         message: str) -> None:
    """The sweep file's resume rule (issue 7): a different objective, sampler or scheduler was accepted
    and stored acc values as loss."""
    url = str(tmp_path / "s.db")
    study = costtune.create_study("m", storage=url, metric="loss", mode="min", usd_per_hour="3.6",
                                  space={"x": {"type": "uniform", "low": 0, "high": 1}})
    for value in (1.0, 2.0):
        study.tell(study.ask(), value)
    with pytest.raises(InputError) as info:
        costtune.create_study("m", storage=url, usd_per_hour="3.6", load_if_exists=True, **change)
    assert str(info.value).startswith(message)
    again = costtune.create_study("m", storage=url, metric="loss", mode="min", sampler="random",
                                  scheduler={"type": "fifo"}, load_if_exists=True)  # the same: accepted
    assert (again.metric, [t.value for t in again.trials]) == ("loss", [1.0, 2.0])


def test_reopening_with_the_same_scheduler_keeps_the_stored_rate(tmp_path: Path) -> None:
    """`create_study(name, scheduler=<the same dict>, load_if_exists=True)` without usd_per_hour said `an asha
    scheduler judges trials by the dollars they spend: give usd_per_hour > 0, got 0` of a study stored at $36/h;
    a changed min_usd is the resume rule's error, spelled `scheduler.min_usd` (it said `scheduler["min_usd"]`)."""
    url = str(tmp_path / "s.db")
    rungs = {"type": "asha", "min_usd": 0.001, "max_usd": 0.009, "eta": 3}
    costtune.create_study("r", storage=url, metric="loss", usd_per_hour=36, scheduler=rungs)
    again = costtune.create_study("r", storage=url, metric="loss", scheduler=rungs, load_if_exists=True)
    assert again.rate_micros_per_hour == 36_000_000
    with pytest.raises(InputError, match=r"^scheduler\.min_usd: study 'r' already exists with scheduler\.min_usd "
                                         r"0\.001, create_study asks for 0\.002; "):
        costtune.create_study("r", storage=url, metric="loss", scheduler={**rungs, "min_usd": 0.002},
                              load_if_exists=True)
    with pytest.raises(SpecError, match=r"^usd_per_hour: an asha scheduler judges"):  # a new study still needs one
        costtune.create_study("r2", storage=url, metric="loss", scheduler=rungs, load_if_exists=True)
    assert [s.name for s in again.store.list_studies()] == ["r"]


def test_report_routes_to_the_running_trial_and_last_value_counts(tmp_path: Path) -> None:
    study = costtune.create_study("rep", storage=str(tmp_path / "s.db"), metric="loss", space=SPACE)

    def objective(trial: costtune.Trial) -> None:
        for step in range(4):
            costtune.report(step=step, loss=10.0 - step)

    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE and trial.value == 7.0 and trial.last_step == 3
    assert [r[0] for r in study.store.reports(study.id, 0)] == [0, 1, 2, 3]


def test_define_by_run_grows_the_space_and_rejects_redefinition(tmp_path: Path) -> None:
    study = costtune.create_study("dbr", storage=str(tmp_path / "s.db"), sampler={"type": "bayes", "seed": 0,
                                                                                    "n_startup": 3})

    def objective(trial: costtune.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        act = trial.suggest_categorical("act", ["relu", "tanh"])
        return abs(lr - 0.01) + (act == "tanh")

    study.optimize(objective, n_trials=8)
    assert set(study.space_dict()) == {"lr", "act"}
    assert all(set(t.params) == {"lr", "act"} for t in study.trials)
    trial = study.ask()
    with pytest.raises(SpecError, match=r"space\.lr"):
        trial.suggest_float("lr", 0.0, 1.0)


def test_stop_trial_is_recorded_as_stopped_with_its_last_value(tmp_path: Path) -> None:
    study = costtune.create_study("stop", storage=str(tmp_path / "s.db"), metric="loss", space=SPACE)

    def objective(trial: costtune.Trial) -> float:
        trial.report(0, loss=3.0)
        assert not trial.should_stop()  # FIFO never stops a trial
        raise StopTrial()

    study.optimize(objective, n_trials=2)
    assert [t.state for t in study.trials] == [TrialState.STOPPED] * 2
    assert study.best_value == 3.0


def test_exceptions_fail_the_trial_and_propagate_unless_caught(tmp_path: Path) -> None:
    study = costtune.create_study("exc", storage=str(tmp_path / "s.db"), space=SPACE)

    def broken(trial: costtune.Trial) -> float:
        raise ValueError("diverged")

    with pytest.raises(ValueError, match="diverged"):
        study.optimize(broken, n_trials=3)
    assert [t.state for t in study.trials] == [TrialState.FAILED]
    study.optimize(broken, n_trials=2, catch=(ValueError,))
    assert [t.state for t in study.trials] == [TrialState.FAILED] * 3
    assert "ValueError: diverged" in (study.trials[0].error or "")


def test_enqueued_configs_run_first_in_order(tmp_path: Path) -> None:
    study = costtune.create_study("enq", storage=str(tmp_path / "s.db"), space=SPACE)
    study.enqueue({"x": 0.5, "n": 2})
    study.enqueue({"x": "1.5", "n": "3"})  # strings from a CLI are coerced
    with pytest.raises(SpecError, match="n"):
        study.enqueue({"x": 0.0, "n": 99})
    study.optimize(quadratic, n_trials=3)
    params = [t.params for t in study.trials]
    assert params[:2] == [{"x": 0.5, "n": 2}, {"x": 1.5, "n": 3}]
    assert [t.source for t in study.trials] == ["manual", "manual", "sampler"]


def test_grid_study_ends_when_every_combination_ran(tmp_path: Path) -> None:
    space = {"a": {"values": [1, 2, 3]}, "b": {"type": "categorical", "choices": ["x", "y"]}}
    study = costtune.create_study("grid", storage=str(tmp_path / "s.db"), space=space, sampler="grid")
    study.optimize(lambda t: float(t.params["a"]), n_trials=100, n_jobs=3)
    combos = sorted((t.params["a"], t.params["b"]) for t in study.trials)
    assert combos == sorted((a, b) for a in (1, 2, 3) for b in ("x", "y"))
    with pytest.raises(SamplerExhausted):
        study.ask()


def test_load_study_continues_and_duplicate_create_is_refused(tmp_path: Path) -> None:
    url = str(tmp_path / "s.db")
    costtune.create_study("cont", storage=url, space=SPACE).optimize(quadratic, n_trials=2)
    with pytest.raises(StoreError, match="already exists"):
        costtune.create_study("cont", storage=url, space=SPACE)
    again = costtune.load_study("cont", storage=url)
    again.optimize(quadratic, n_trials=2)
    assert len(again.trials) == 4
    same = costtune.create_study("cont", storage=url, space=SPACE, load_if_exists=True)
    assert same.id == again.id


def test_trials_are_charged_for_wall_time_at_the_hourly_rate(tmp_path: Path) -> None:
    study = costtune.create_study("cost", storage=str(tmp_path / "s.db"), space=SPACE, usd_per_hour="36")

    def sleepy(trial: costtune.Trial) -> float:
        time.sleep(0.2)
        return 1.0

    study.optimize(sleepy, n_trials=2)
    for trial in study.trials:
        (attempt,) = study.store.attempts(study.id, trial.number)
        assert attempt.billable_ms >= 200
        # in-process trials hold no instance: wall time x rate, per millisecond
        assert attempt.cost_micros == charge_micros(attempt.billable_ms, 36_000_000, granularity_s=0)
        assert attempt.cost_micros == -(-attempt.billable_ms * 36_000_000 // 3_600_000)
        assert trial.cost_micros == attempt.cost_micros
    assert study.spend_micros() == sum(t.cost_micros for t in study.trials)


def test_budget_usd_ends_optimize(tmp_path: Path) -> None:
    study = costtune.create_study("budget", storage=str(tmp_path / "s.db"), space=SPACE,
                                  usd_per_hour="3600", budget_usd="0.25")  # $1 a second, 25 cents budget

    def sleepy(trial: costtune.Trial) -> float:
        time.sleep(0.1)
        return 1.0

    study.optimize(sleepy, n_trials=50)
    ran = [t for t in study.trials if t.state != TrialState.QUEUED]
    costs = [t.cost_micros for t in ran]
    # Launch rule: a trial starts only when the ledger can hold what a trial of this objective
    # costs before it can first be stopped (this one never reports: its whole run), so a
    # sequential run of an objective that never reports stays under the cap and optimize ends
    # when what is left is less than one more trial.
    assert sum(costs) <= 250_000 < sum(costs) + max(costs)
    assert len(costs) < 50
    assert study.stop_reason is not None and study.stop_reason.startswith("budget_usd $0.25 cannot fund")
    assert study.store.balance(f"study:{study.id}") == (250_000, sum(costs), 0)


def _worker_process(url: str, n: int) -> None:
    study = costtune.load_study("mp", storage=url)
    study.optimize(quadratic, n_trials=n)


def test_worker_processes_share_a_sqlite_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mp.db'}"
    costtune.create_study("mp", storage=url, space=SPACE)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker_process, args=(url, 8)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    trials = costtune.load_study("mp", storage=url).trials
    assert sorted(t.number for t in trials) == list(range(24))
    assert all(t.state == TrialState.COMPLETE for t in trials)
