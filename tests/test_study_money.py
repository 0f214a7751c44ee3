"""In-process studies honour their money settings: dollar rungs, budget_usd through the ledger, NaN.

Real stores (SQLite and PostgreSQL through ``store_url``), real wall-clock trials; time bounds are
derived from what the trials really did (their stored report times), never from a fixed figure.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any

import pytest

import costtune
from costtune.errors import InputError, SpecError, StopTrial, TrialFailed
from costtune.history import TrialState
from costtune.reports.leaderboard import rows, study_ladder
from costtune.study.books import IN_PROCESS_BILLING

ASHA = {"type": "asha", "min_usd": 0.001, "max_usd": 0.009, "eta": 3}  # the example
LADDER = (1_000, 3_000, 9_000)  # micro-dollars; at $36/h = 10 micro-dollars a millisecond: 0.1, 0.3, 0.9 s


def _slope(trial: costtune.Trial) -> None:
    """Reports every ~10 ms until told to stop: loss falls with steps, x sets how good it gets."""
    x = trial.params["x"]
    for step in range(400):
        time.sleep(0.01)
        trial.report(step, loss=x + 1.0 / (step + 1))
        if trial.should_stop():
            raise StopTrial()
    raise AssertionError("a trial ran past max_usd without should_stop()")


def test_asha_in_process_stops_trials_at_dollar_rungs(store_url: str) -> None:
    study = costtune.create_study("asha", storage=store_url, metric="loss",
                                  space={"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
                                  sampler={"type": "random", "seed": 1}, scheduler=ASHA, usd_per_hour="36")
    study.optimize(_slope, n_trials=8)
    history = study.history()
    assert [t.number for t in history.trials] == list(range(8))
    assert all(t.state.finished for t in history.trials)
    stopped = [t for t in history.trials if t.state == TrialState.STOPPED]
    assert stopped, "should_stop() never fired"
    assert history.trials[0].state == TrialState.COMPLETE  # the first result at each rung runs on, to the top
    ladder = study_ladder(study.info.spec)
    assert ladder == LADDER
    board = {r["trial"]: r for r in rows(history, None, ladder)}
    reported = study.store.rung_reports(study.id)  # per trial: (its spend at each report, loss)
    for trial in history.trials:
        (attempt,) = study.store.attempts(study.id, trial.number)
        assert attempt.cost_micros == IN_PROCESS_BILLING.charge(attempt.billable_ms, 36_000_000)
        costs = [c for c, _v in reported[trial.number]]
        # Judged at the report whose spend reached a rung, and stopped right there: the report
        # before it was below that rung.
        level = max(lv for lv in LADDER if lv <= costs[-1])
        assert len(costs) >= 2 and costs[-2] < level <= costs[-1]
        # "$ at rung" is the highest rung its spend reached: that one, unless the objective took
        # longer to return than the spend between two rungs (only a badly stalled machine does)
        reached = max(lv for lv in LADDER if lv <= trial.cost_micros)
        assert board[trial.number]["rung_micros"] == reached
        assert board[trial.number]["rung_usd"] == {1_000: "0.001", 3_000: "0.003", 9_000: "0.009"}[reached]
        if trial.cost_micros - costs[-1] < 2_000:  # returned within 0.2 s of its last report
            assert reached == level
    # ASHA at the first rung (trials ran one after another): a trial runs on when its loss there
    # ranks in the top max(1, n // 3) of the n losses recorded at that rung so far.
    at_first: list[float] = []
    for trial in history.trials:
        costs = [c for c, _v in reported[trial.number]]
        first = next(i for i, c in enumerate(costs) if c >= LADDER[0])  # the report judged at $0.001
        at_first.append(reported[trial.number][first][1])  # type: ignore[arg-type]
        rank = sorted(at_first).index(at_first[-1]) + 1
        promoted = first < len(costs) - 1  # it reported again: it ran on
        if promoted or costs[-1] < LADDER[1]:  # (a stall past two rungs in one report would hide which)
            assert promoted == (rank <= max(1, len(at_first) // 3)), (trial.number, at_first)
    assert study.store.balance(f"study:{study.id}") == (None, study.spend_micros(), 0)


def test_ask_tell_trials_are_judged_at_rungs_too(tmp_path: Any) -> None:
    study = costtune.create_study("asktell", storage=str(tmp_path / "s.db"), metric="loss",
                                  scheduler=ASHA, usd_per_hour="36")
    verdicts = []
    for x in (0.1, 0.9):
        trial = study.ask()
        step = 0
        while not trial.should_stop():
            time.sleep(0.01)
            trial.report(step, loss=x)
            step += 1
        verdicts.append(trial.stop_reason)
        study.tell(trial, state=TrialState.STOPPED)
    assert verdicts[0].startswith("ran to max_usd ($")  # the first at every rung runs on to the top
    assert verdicts[1].startswith("below the top 1/3 at $0.001 rung")


def _bound_micros(study: Any, rate_micros: int) -> int:
    """The documented overshoot bound, from what each trial really did: rate x (its longest interval
    between two reports, the start counted as one + the time from its last report to its end)."""
    total = 0
    for trial in study.trials:
        for attempt in study.store.attempts(study.id, trial.number):
            times = [0.0, *(elapsed for _s, _m, elapsed in study.store.reports(study.id, trial.number))]
            gaps = [b - a for a, b in itertools.pairwise(times)] or [0.0]
            tail = attempt.billable_ms / 1000 - times[-1]
            total += IN_PROCESS_BILLING.charge(int((max(gaps) + tail) * 1000) + 1, rate_micros)
    return total


@pytest.mark.parametrize("n_jobs", [1, 3])
def test_a_5_cent_cap_holds_within_the_documented_bound(store_url: str, n_jobs: int) -> None:
    study = costtune.create_study(f"cap{n_jobs}", storage=store_url, metric="loss",
                                  space={"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
                                  budget_usd="0.05", usd_per_hour="360")  # 10 cents a second

    def every_tenth_of_a_second(trial: costtune.Trial) -> float:
        for step in range(8):
            time.sleep(0.1)
            trial.report(step, loss=trial.params["x"])
            if trial.should_stop():
                raise StopTrial()
        return trial.params["x"]

    study.optimize(every_tenth_of_a_second, n_trials=100, n_jobs=n_jobs)
    spent = study.spend_micros()
    assert spent <= 50_000 + _bound_micros(study, 360_000_000)
    assert study.stop_reason is not None and study.stop_reason.startswith("budget_usd $0.05 cannot fund")
    assert any(t.state == TrialState.STOPPED for t in study.trials)  # stopped by the cap, mid-run
    # every attempt went through the ledger: charged exactly, nothing left held
    assert study.store.balance(f"study:{study.id}") == (50_000, spent, 0)
    assert study.store.unledgered_spend(study.id) == 0


def test_a_cap_that_cannot_fund_a_trial_refuses_ask(tmp_path: Any) -> None:
    study = costtune.create_study("ask-cap", storage=str(tmp_path / "s.db"), budget_usd="0.001",
                                  usd_per_hour="36", scheduler=ASHA | {"min_usd": 0.002, "max_usd": 0.018})
    with pytest.raises(costtune.CosttuneError, match=r"budget_usd \$0.001 cannot fund"):
        study.ask()
    assert study.trials == [] or all(t.state == TrialState.QUEUED for t in study.trials)


def test_rung_settings_are_checked_like_a_sweep_file(tmp_path: Any) -> None:
    url = str(tmp_path / "s.db")
    with pytest.raises(SpecError, match=r"usd_per_hour: an asha scheduler judges trials by the dollars"):
        costtune.create_study("norate", storage=url, scheduler=ASHA)
    with pytest.raises(SpecError, match=r"scheduler\.eta: must be an integer >= 2"):
        costtune.create_study("badeta", storage=url, scheduler=ASHA | {"eta": 1}, usd_per_hour=36)
    with pytest.raises(SpecError, match=r"budget_usd: too small"):
        costtune.create_study("tiny", storage=url, scheduler=ASHA | {"type": "hyperband"}, usd_per_hour=36,
                              budget_usd="0.005")
    assert costtune.Store(url).list_studies() == []


# -- a NaN objective -----------------------------------------------------------------------------
def test_a_nan_objective_fails_the_trial_with_its_reason_and_optimize_goes_on(
        store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    study = costtune.create_study("nan", storage=store_url, metric="val_loss",
                                  space={"x": {"type": "uniform", "low": 0.0, "high": 1.0}})

    def objective(trial: costtune.Trial) -> float:
        for step in range(5):
            loss = float("nan") if trial.number == 0 and step == 3 else 1.0 / (step + 1)
            costtune.report(step=step, val_loss=loss, acc=float("inf") if step == 1 else 0.5)
        return 0.2

    with caplog.at_level(logging.WARNING, logger="costtune.study"):
        study.optimize(objective, n_trials=3)
    first, *rest = study.trials
    assert first.state == TrialState.FAILED
    assert first.error == "objective val_loss was NaN at step 3"
    assert first.last_step == 2 and first.value == pytest.approx(1 / 3)
    assert [t.state for t in rest] == [TrialState.COMPLETE] * 2  # it is not the user's bug: the loop goes on
    assert "metric acc was inf at step 1; dropped" in caplog.text
    assert [m for _s, m, _e in study.store.reports(study.id, 1)][1] == {"val_loss": 0.5}
    (attempt,) = study.store.attempts(study.id, 0)
    assert attempt.exit_reason == "failed"


def test_tell_and_report_share_one_non_finite_rule(tmp_path: Any) -> None:
    study = costtune.create_study("tellnan", storage=str(tmp_path / "s.db"), metric="loss")
    trial = study.ask()
    trial.report(0, loss=2.0)
    failed = study.tell(trial, {"loss": float("-inf"), "acc": 0.3})
    # a told value belongs to the last step the trial reported (step 0 here), not one past it
    assert failed.state == TrialState.FAILED and failed.error == "objective loss was -inf at step 0"
    trial = study.ask()
    done = study.tell(trial, {"loss": 0.4, "acc": float("nan")})
    assert done.state == TrialState.COMPLETE and done.metrics == {"loss": 0.4}
    trial = study.ask()
    with pytest.raises(TrialFailed, match="objective loss was NaN at step 0"):
        trial.report(loss=float("nan"))
    with pytest.raises(InputError, match="already finished"):  # already ended: telling it again is refused
        study.tell(trial, 1.0)
    assert study.trials[-1].state == TrialState.FAILED
    with pytest.raises(TrialFailed):
        trial.report(loss=1.0)
    with pytest.raises(SpecError, match="report: step must be an integer from 0 to 2147483647"):
        study.ask().report(-1, loss=1.0)


def test_an_in_process_hyperband_study_keeps_its_brackets_when_its_cap_is_raised(store_url: str) -> None:
    """The sweep-file fix, in process: a cap too small for one iteration scales the brackets down; a raised cap
    must repeat those brackets (its trials ran in them), not plan full-size ones they do not fit."""
    from costtune.schedulers import make_rung_scheduler, plan_brackets

    hb = {"type": "hyperband", "min_usd": 0.001, "max_usd": 0.027, "eta": 3}
    study = costtune.create_study("hb-raise", storage=store_url, metric="loss", scheduler=hb, usd_per_hour=36,
                                  budget_usd=0.05, space={"x": {"type": "uniform", "low": 0.0, "high": 1.0}})
    stored = study.info.spec["scheduler"]
    assert stored["plan_usd_micros"] == 50_000
    first = make_rung_scheduler(stored, mode="min", budget_micros=50_000)
    full = plan_brackets("hyperband", 1_000, 27_000, 3, None)
    assert first is not None and first.plan.brackets != full.brackets  # type: ignore[attr-defined]  # scaled down
    study.set_cap("0.5", reason="more room")
    again = costtune.load_study("hb-raise", storage=store_url)
    assert again.info.budget_usd_micros == 500_000
    raised = make_rung_scheduler(again.info.spec["scheduler"], mode="min", budget_micros=500_000)
    assert raised is not None
    assert raised.plan.brackets == first.plan.brackets  # type: ignore[attr-defined]
    assert raised.plan.iterations > first.plan.iterations  # type: ignore[attr-defined]
