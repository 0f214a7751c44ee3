"""Wrong use of ask/tell and suggest_* (a new user's report): a clear ``InputError`` naming the argument,
and nothing changed in any study; a trial left as it was stays tellable. Real stores, real trials."""

from __future__ import annotations

from typing import Any

import pytest

import costtune
from costtune.errors import InputError, SpecError
from costtune.history import TrialState
from costtune.reports.cost import best_vs_spend, cost_per_improvement, pareto_front
from costtune.reports.leaderboard import rows
from costtune.store import study_scope

SPACE = {"x": {"type": "uniform", "low": 0, "high": 1}}


def _state(study: costtune.Study) -> list[Any]:
    """All a user could see change: each trial, its reports and attempts, and the study's money."""
    trials = [(t.number, t.state, t.value, t.error, t.last_step, t.metrics, t.cost_micros) for t in study.trials]
    reports = [study.store.reports(study.id, t.number) for t in study.trials]
    attempts = [[(a.exit_reason, a.cost_micros) for a in study.store.attempts(study.id, t.number)]
                for t in study.trials]
    return [trials, reports, attempts, tuple(study.store.balance(study_scope(study.id)))]


def test_telling_a_trial_of_another_study_is_refused_and_changes_neither(store_url: str) -> None:
    """`b.tell(trial_of_a, 0.123)` failed a's trial 0 with b's value and returned b's trial 0, still running."""
    a = costtune.create_study("api-u1", storage=store_url, metric="loss", space=SPACE, usd_per_hour=36,
                              budget_usd=1)
    b = costtune.create_study("api-u2", storage=store_url, metric="loss", space=SPACE, usd_per_hour=36,
                              budget_usd=1)
    ta, tb = a.ask(), b.ask()
    before = (_state(a), _state(b))
    with pytest.raises(SpecError, match=r"^trial: trial 0 belongs to study 'api-u1', not 'api-u2'; tell it with "
                                        r"the study that asked for it$"):
        b.tell(ta, 0.123)
    assert (_state(a), _state(b)) == before
    assert b.tell(tb, 0.5).value == 0.5 and a.tell(ta, 0.25).value == 0.25  # each still tells through its own
    assert [(t.state, t.value) for t in (*a.trials, *b.trials)] == [(TrialState.COMPLETE, 0.25),
                                                                   (TrialState.COMPLETE, 0.5)]


def test_a_trial_told_through_another_object_of_its_study_is_booked_where_it_runs(tmp_path: Any) -> None:
    """The same study opened twice in one process: the trial's money is in the books of the object that asked."""
    url = str(tmp_path / "s.db")
    study = costtune.create_study("twice", storage=url, metric="loss", space=SPACE, usd_per_hour=36, budget_usd=1)
    again = costtune.load_study("twice", storage=url)
    trial = study.ask()
    trial.report(0, loss=0.5)
    told = again.tell(trial, 0.4)
    assert (told.state, told.value) == (TrialState.COMPLETE, 0.4)
    (attempt,) = study.store.attempts(study.id, 0)
    assert attempt.exit_reason == "completed" and attempt.cost_micros == told.cost_micros
    _cap, spent, held = study.store.balance(study_scope(study.id))
    assert (spent, held) == (told.cost_micros, 0)  # charged, nothing left held


@pytest.mark.parametrize("given", [12345, "0", None])
def test_tell_refuses_what_is_not_a_trial_naming_the_argument(tmp_path: Any, given: Any) -> None:
    """`study.tell(12345, 0.1)` raised AttributeError: 'int' object has no attribute 'closed'."""
    study = costtune.create_study("num", storage=str(tmp_path / "s.db"), metric="loss", space=SPACE)
    trial = study.ask()
    before = _state(study)
    with pytest.raises(SpecError, match=r"^trial: must be the Trial that ask\(\) returned \(a costtune.Trial\), "
                                        r"got "):
        study.tell(given, 0.1)
    assert _state(study) == before
    assert study.tell(trial, 0.1).state == TrialState.COMPLETE


@pytest.mark.parametrize(("value", "message"), [
    ("abc", "value: must be a number or a dict of metric names to numbers, got abc"),
    ([1], "value: must be a number or a dict of metric names to numbers, got [1]"),
    (True, "value: must be a number or a dict of metric names to numbers, got true"),
    ("0.5", "value: must be a number or a dict of metric names to numbers, got '0.5'"),
    ({"loss": "0.5"}, "value: loss must be a finite number, got \"0.5\""),
    ({}, "value: no metric given"),
    (None, "value: must be a number or a dict of metric names to numbers, got null"),
])
def test_tell_raises_for_a_value_of_the_wrong_type_and_leaves_the_trial_tellable(
        tmp_path: Any, value: Any, message: str) -> None:
    """These silently failed the trial ("objective returned 'abc', not a number ..."); None failed it with "no value
    for metric 'loss' was reported or returned" although it had reported one, and every later tell was refused."""
    study = costtune.create_study("wrong", storage=str(tmp_path / "s.db"), metric="loss", space=SPACE, usd_per_hour=36,
                                  budget_usd=1)
    trial = study.ask()
    trial.report(0, loss=0.9)
    before = _state(study)
    with pytest.raises(SpecError) as info:
        study.tell(trial, value)
    assert str(info.value).startswith(message)
    assert _state(study) == before and study.trials[0].state == TrialState.RUNNING
    done = study.tell(trial, 0.5)
    assert (done.state, done.value) == (TrialState.COMPLETE, 0.5)


def test_a_dict_without_the_objective_is_refused_while_the_trial_reported_none(tmp_path: Any) -> None:
    """`tell(t, {"acc": 0.3})` on a trial that never reported the objective failed it ("no value for metric 'loss'
    ...") and refused every later tell; now it raises and the trial can be told its value. A trial that reported the
    objective may be told other metrics: it ends on what it reported."""
    study = costtune.create_study("nodict", storage=str(tmp_path / "s.db"), metric="loss", space=SPACE)
    trial = study.ask()
    before = _state(study)
    with pytest.raises(SpecError, match=r"^value: has no 'loss' \(the objective\) and trial 0 reported none"):
        study.tell(trial, {"acc": 0.3})
    assert _state(study) == before
    assert study.tell(trial, {"acc": 0.3, "loss": 0.4}).value == 0.4
    other = study.ask()
    other.report(0, loss=0.7)
    assert (study.tell(other, {"acc": 0.2}).state, study.trials[1].value) == (TrialState.COMPLETE, 0.7)


def test_a_non_finite_value_still_fails_the_trial_with_its_reason(tmp_path: Any) -> None:
    """The README's NaN rule is kept: a NaN (or inf) told fails the trial, stored with why; it does not raise."""
    study = costtune.create_study("nan", storage=str(tmp_path / "s.db"), metric="loss", space=SPACE)
    for value in (float("nan"), {"loss": float("inf")}):
        failed = study.tell(study.ask(), value)
        assert failed.state == TrialState.FAILED and failed.error is not None
        assert failed.error.startswith("objective loss was ")


def test_an_objective_returning_the_wrong_type_fails_its_trial_and_optimize_goes_on(tmp_path: Any) -> None:
    study = costtune.create_study("ret", storage=str(tmp_path / "s.db"), metric="loss", space=SPACE)
    returns = iter(["abc", {"loss": [1]}, 0.5])
    study.optimize(lambda trial: next(returns), n_trials=3)
    assert [(t.state, t.error) for t in study.trials] == [
        (TrialState.FAILED, "objective returned abc: must be a number or a dict of metric names to numbers"),
        (TrialState.FAILED, "objective returned {loss: [1]}: loss must be a finite number, got [1]"),
        (TrialState.COMPLETE, None)]


@pytest.mark.parametrize(("suggest", "message"), [
    (lambda t: t.suggest_float("alpha", 5, 1), "space.alpha.high: must be > low (5), got 1"),
    (lambda t: t.suggest_int("n", 1, 8, step=0), "space.n.step: must be >= 1, got 0"),
    (lambda t: t.suggest_categorical("kind", 5), "space.kind.choices: must be a non-empty list, got 5"),
    (lambda t: t.suggest_float("x", 0, 2), "space.x: already defined as {type: uniform, low: 0, high: 1}, asked "
                                           "now as {type: uniform, low: 0, high: 2}"),
])
def test_a_suggest_with_bad_arguments_leaves_nothing_running_or_held(tmp_path: Any, suggest: Any,
                                                                      message: str) -> None:
    """`suggest_float("alpha", 5, 1)` raised but left its trial `running (controller gone)`, holding money."""
    study = costtune.create_study("sug", storage=str(tmp_path / "s.db"), metric="loss", space=SPACE, usd_per_hour=36,
                                  budget_usd=1)
    trial = study.ask()
    assert study.store.balance(study_scope(study.id)).reserved_micros > 0  # ask() reserved its first segment
    with pytest.raises(SpecError) as info:
        suggest(trial)
    assert str(info.value).startswith(message)
    (stored,) = study.trials
    assert stored.state == TrialState.FAILED and stored.error == str(info.value)
    (attempt,) = study.store.attempts(study.id, 0)
    assert attempt.exit_reason == "failed"
    _cap, spent, held = study.store.balance(study_scope(study.id))
    assert (spent, held) == (stored.cost_micros, 0)
    assert set(study.space_dict()) == {"x"}  # the bad parameter did not join the space
    study.optimize(lambda t: t.suggest_float("y", 0, 1), n_trials=1)  # the study goes on
    assert study.trials[-1].state == TrialState.COMPLETE


def test_a_bad_suggest_inside_optimize_fails_the_trial_with_its_reason_and_raises(tmp_path: Any) -> None:
    study = costtune.create_study("sug-opt", storage=str(tmp_path / "s.db"), metric="loss", usd_per_hour=36,
                                  budget_usd=1)
    with pytest.raises(SpecError, match=r"^space\.alpha\.high: "):
        study.optimize(lambda t: t.suggest_float("alpha", 5, 1), n_trials=3)
    (stored,) = study.trials
    assert (stored.state, stored.error) == (TrialState.FAILED, "space.alpha.high: must be > low (5), got 1")
    assert study.store.balance(study_scope(study.id)).reserved_micros == 0


def test_last_step_is_the_last_reported_step_for_in_process_trials(tmp_path: Any) -> None:
    """Steps 0..5 showed `last step: 6`: the returned value was booked as a report one step past the last."""
    study = costtune.create_study("steps", storage=str(tmp_path / "s.db"), metric="loss", space=SPACE)

    def objective(trial: costtune.Trial) -> float:
        for step in range(6):
            trial.report(step, loss=1.0 / (step + 1))
        return 0.1

    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert (trial.state, trial.value, trial.last_step) == (TrialState.COMPLETE, 0.1, 5)
    assert {step for step, _m, _e in study.store.reports(study.id, 0)} == set(range(6))
    asked = study.ask()
    asked.report(3, loss=0.7)
    assert study.tell(asked, 0.2).last_step == 3
    assert study.tell(study.ask(), 0.3).last_step == 0  # told with no report: its value is at step 0


def test_an_objective_returning_none_ends_on_what_it_reported(tmp_path: Any) -> None:
    """`tell(trial, None)` is refused, but an objective that returns None keeps its meaning: its reports stand
    (and with none, the trial fails saying so)."""
    study = costtune.create_study("none", storage=str(tmp_path / "s.db"), metric="loss", space=SPACE)

    def objective(trial: costtune.Trial) -> None:
        if trial.number == 0:
            trial.report(0, loss=0.25)

    study.optimize(objective, n_trials=2)
    assert [(t.state, t.value, t.error) for t in study.trials] == [
        (TrialState.COMPLETE, 0.25, None),
        (TrialState.FAILED, None, "no value for metric 'loss' was reported or returned")]


@pytest.mark.parametrize("end", ["told", "failed"])
def test_suggest_on_a_finished_trial_is_refused_and_changes_nothing(tmp_path: Any, end: str) -> None:
    """`t = a.ask(); a.tell(t, 0.5); t.suggest_float("zz", 0, 1)` returned a value and stored zz with the
    complete trial (and in the study's space)."""
    study = costtune.create_study("late", storage=str(tmp_path / "s.db"), metric="loss", space=SPACE, usd_per_hour=36,
                                  budget_usd=1)
    trial = study.ask()
    if end == "told":
        study.tell(trial, 0.5)
    else:
        with pytest.raises(costtune.TrialFailed):
            trial.report(0, loss=float("nan"))
    before = (_state(study), study.space_dict())
    state = "complete" if end == "told" else "failed"
    for suggest in (lambda: trial.suggest_float("zz", 0, 1), lambda: trial.suggest_float("x", 0, 1)):
        with pytest.raises(InputError, match=rf"^trial 0 has already finished \({state}\); a finished trial takes "
                                             r"no new parameters$"):
            suggest()
    assert (_state(study), study.space_dict()) == before and set(study.trials[0].params) == {"x"}


def test_a_failed_trial_keeps_its_last_value_but_is_never_a_result(tmp_path: Any) -> None:
    """A trial that reported loss 0.1 and was then told inf is failed and keeps the 0.1 it reported (the README:
    the leaderboard shows every trial's value, the scatter marks failed trials with an x), but it is never ranked,
    the best, on the Pareto front, an improvement or a point of the best-value curve."""
    study = costtune.create_study("fail-val", storage=str(tmp_path / "s.db"), metric="loss", space=SPACE,
                                  usd_per_hour=36)
    study.tell(study.ask(), 0.5)
    trial = study.ask()
    trial.report(0, loss=0.1)
    failed = study.tell(trial, float("inf"))
    assert (failed.state, failed.value, failed.error) == (TrialState.FAILED, 0.1, "objective loss was inf at step 0")
    history = study.history()
    assert study.best_value == 0.5
    assert [(r["trial"], r["rank"]) for r in rows(history)] == [(0, 1), (1, None)]
    assert [t.number for t in pareto_front(history)] == [0]
    assert [r["trial"] for r in cost_per_improvement(history)] == [0]
    assert [r["best"] for r in best_vs_spend(history)] == [0.5, 0.5]


@pytest.mark.parametrize("given", ["hyperband", "garbage", 5])
def test_a_scheduler_that_is_neither_a_mapping_nor_a_scheduler_is_refused(tmp_path: Any, given: Any) -> None:
    """`create_study(..., scheduler="hyperband")` quietly made a FIFO study (and was accepted on an ASHA one)."""
    db = tmp_path / "s.db"
    with pytest.raises(SpecError, match=r"^scheduler: must be a mapping such as \{type: asha"):
        costtune.create_study("sched", storage=str(db), metric="loss", space=SPACE, scheduler=given)
    assert not db.exists()
