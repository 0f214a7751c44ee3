"""Issue 13: dollar rungs that do not punish start-up, results of trials that end below a rung, and
rung levels chosen when a sweep gives none. Real simulated sweeps, judged by what was stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from costtune.providers import make_provider
from simworkloads import with_changes

from costtune.errors import SpecError
from costtune.history import TrialState
from costtune.money import format_usd
from costtune.runner.controller import SweepController
from costtune.runner.session import open_sweep
from costtune.samplers.rung_model import RungModelSampler
from costtune.schedulers import make_rung_scheduler
from costtune.schedulers.replay import replay_rungs
from costtune.spec import parse_sweep
from costtune.store import Store

BASE: dict[str, Any] = {
    "name": "rs",
    "objective": {"metric": "loss", "mode": "min"},
    "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}, "y": {"type": "uniform", "low": 0.0, "high": 1.0}},
    "sampler": {"type": "random", "seed": 5},
    "scheduler": {"type": "asha", "min_usd": 0.002, "max_usd": 0.018, "eta": 3},
    "budget": {"usd": 0.3},
    "resources": {
        "provider": "simulated", "region": "us-east-1", "instance_type": "m5.large", "market": "on-demand",
        "workers": 4,
        "simulation": {"workload": "simworkloads:steady", "max_steps": 200, "startup_seconds": 120, "seed": 0,
                       "preemptions_per_hour": 0},
    },
}
RATE = 96_000  # m5.large on demand, micro-dollars an hour (bundled snapshot)


def _run(store: Store, cfg: dict[str, Any], *, change_cap: bool = False) -> tuple[Any, Any, SweepController]:
    spec = parse_sweep(cfg)
    study, _ = open_sweep(store, spec, change_cap=change_cap)
    provider = make_provider("simulated", simulation=spec.resources.simulation, metric=spec.metric)
    controller = SweepController(spec, study, provider, trial_events=False)
    controller.run()
    return spec, study, controller


def test_a_long_startup_is_not_counted_at_a_rung(tmp_path: Path) -> None:
    """120 s of start-up ($0.0032 at $0.096/h) is more than the $0.002 first rung: every trial is still judged
    after $0.002 of ten-second steps past its first report (7 steps), not before it reports."""
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    spec, study, _controller = _run(store, BASE)
    billing = spec.resources.billing
    step = billing.charge(130_000, RATE) - billing.charge(120_000, RATE)
    judged = 0
    for trial in study.history().trials:
        if not trial.verdicts or len(store.attempts(study.id, trial.number)) != 1:
            continue
        reports = store.reports(study.id, trial.number)
        first = billing.charge(round(reports[0][2] * 1000), RATE)
        assert first > 2_000  # the start-up alone is past the first rung
        for level, value, _promoted in trial.verdicts:
            assert value is not None  # never "no result by the rung"
            # the value judged was reported after the rung's worth of steps past the first report
            at = [s for s, m, e in reports if m.get("loss") == value]
            assert at and at[0] - reports[0][0] >= level // step - 1, (trial.number, level, at)
            judged += 1
        if not trial.verdicts[-1][2]:
            spent_after = trial.cost_micros - first
            assert trial.verdicts[-1][0] - step < spent_after <= trial.verdicts[-1][0], trial.number
    assert judged > 10
    assert any(t.state == TrialState.STOPPED for t in study.history().trials)


def test_the_verdict_says_what_it_compared(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    events: list[str] = []
    spec = parse_sweep(BASE)
    study, _ = open_sweep(store, spec)
    provider = make_provider("simulated", simulation=spec.resources.simulation, metric=spec.metric)
    SweepController(spec, study, provider, on_event=events.append, trial_events=True).run()
    below = [e for e in events if "below the top 1/3 at $0.002 rung" in e]
    assert below, events[:20]
    startup = format_usd(spec.resources.billing.charge(130_000, RATE))  # 120 s start-up and the first step
    assert all(f"compared on its value after $0.002 spent past its first report, its {startup} start-up not "
               "counted" in e for e in below), below[:3]


def test_a_trial_that_finishes_below_a_rung_enters_it_and_the_replay_agrees(tmp_path: Path) -> None:
    """Trials end on their own after 12 steps ($0.0032 of training past their first report): most are
    promoted at $0.002 and finish below $0.006. Their final values enter the $0.006 and $0.018 rungs."""
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    cfg = with_changes(BASE, scheduler={"type": "bohb", "min_usd": 0.002, "max_usd": 0.018, "eta": 3,
                                        "min_points": 3},
                       resources__simulation__max_steps=12, budget={"usd": 0.15})
    spec, study, controller = _run(store, cfg)
    rungs = controller.rungs
    assert rungs is not None
    history = study.history()
    finished_below = [t for t in history.trials if t.state == TrialState.COMPLETE and t.verdicts
                      and t.verdicts[-1][2]]
    assert len(finished_below) >= 3
    for trial in finished_below:
        above = [lv for lv in rungs.ladder(trial.number) if lv > trial.verdicts[-1][0]]
        for level in above:
            assert rungs.results_at(level)[trial.number] == trial.value
    # BOHB's model fits at the highest rung with enough results: finished trials are what fills it
    sampler = study.sampler
    assert isinstance(sampler, RungModelSampler)
    seen = sampler.rung_history(spec.space, history)
    assert seen is not None
    top_numbers = {t.number for t in seen.trials if t.state == TrialState.COMPLETE}
    assert {t.number for t in finished_below} & top_numbers
    # a resumed sweep rebuilds exactly the same competitions from the store
    again = make_rung_scheduler(spec.scheduler, mode="min", budget_micros=spec.budget.usd_micros)
    assert again is not None
    cover = getattr(again, "cover", None)
    if cover is not None:
        cover(len(history.trials))
    replay_rungs(again, history, store.rung_reports(study.id))
    for level in rungs.levels():
        assert again.results_at(level) == rungs.results_at(level), level


def test_rungs_are_chosen_stored_and_kept_on_resume(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    cfg = with_changes(BASE, scheduler={"type": "asha"}, budget={"usd": 0.1})
    spec, _study, controller = _run(store, cfg)
    chosen = spec.scheduler
    low, high = chosen["min_usd_micros"], chosen["max_usd_micros"]
    assert high in {low * 3**k for k in range(1, 20)} and high <= 100_000 // 20 < high * 3  # on min_usd's ladder
    assert "budget.usd $0.10 / 20" in chosen["chosen"]
    stored = store.get_study("rs").spec["scheduler"]
    assert (stored["min_usd"], stored["max_usd"]) == (chosen["min_usd"], chosen["max_usd"])
    assert controller.rungs is not None and controller.rungs.levels()[0] == chosen["min_usd_micros"]
    # a raised cap would choose a larger max_usd today; the resumed sweep keeps the stored one
    raised = with_changes(cfg, budget={"usd": 0.4})
    assert parse_sweep(raised).scheduler["max_usd_micros"] > high
    spec2, _study2, controller2 = _run(store, raised, change_cap=True)
    assert spec2.scheduler["max_usd_micros"] == chosen["max_usd_micros"]
    assert controller2.rungs is not None and controller2.rungs.levels() == controller.rungs.levels()
    assert store.get_study("rs").spec["scheduler"]["max_usd"] == chosen["max_usd"]


@pytest.mark.parametrize(("scheduler", "budget", "field"), [
    ({"type": "asha", "min_usd": "abc"}, {"usd": 1}, "scheduler.min_usd"),
    ({"type": "hyperband", "max_usd": 0}, {"usd": 1}, "scheduler.max_usd"),
    ({"type": "sh"}, {"trials": 5}, "scheduler.max_usd"),  # nothing to choose max_usd from
])
def test_bad_rung_fields_name_the_field(scheduler: dict[str, Any], budget: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_sweep(with_changes(BASE, scheduler=scheduler, budget=budget))
    assert err.value.path == field


def test_a_resume_naming_one_rung_figure_is_held_to_the_stored_one(tmp_path: Path) -> None:
    """The file gives max_usd where the study chose both: a different value is refused, naming it (it used to
    be replaced by the stored one without a word); the same value resumes and keeps the chosen min_usd."""
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    cfg = with_changes(BASE, scheduler={"type": "asha"}, budget={"usd": 0.1})
    spec, _study, _controller = _run(store, cfg)
    chosen_max = spec.scheduler["max_usd"]
    other = with_changes(cfg, scheduler={"type": "asha", "max_usd": 0.02})
    with pytest.raises(Exception, match=r"scheduler\.max_usd.*0\.02") as err:
        open_sweep(store, parse_sweep(other))
    assert chosen_max in str(err.value)
    same = with_changes(cfg, scheduler={"type": "asha", "max_usd": chosen_max})
    spec2, _study2, _controller2 = _run(store, same)
    assert spec2.scheduler["min_usd_micros"] == spec.scheduler["min_usd_micros"]
    assert spec2.scheduler["chosen"].startswith("min_usd ")  # the stored reason for what was kept, alone


def test_a_rounded_min_usd_never_makes_two_rungs_a_hair_apart() -> None:
    from costtune.schedulers import rung_ladder

    assert rung_ladder(333, 1000, 3) == (333, 1000)
    assert rung_ladder(16_666, 50_000, 3) == (16_666, 50_000)
    assert rung_ladder(1000, 10_000, 3) == (1000, 3000, 9000, 10_000)  # 10% apart: a rung of its own


def test_a_finished_hyperband_plan_resumed_with_a_raised_cap_plans_another_iteration(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    cfg = with_changes(BASE, scheduler={"type": "hyperband", "min_usd": 0.002, "max_usd": 0.018, "eta": 3},
                       budget={"usd": 0.2})  # one $0.138 iteration
    _spec, study, first = _run(store, cfg)
    before = len(study.history().trials)
    assert before > 0 and "plan" in (first.status.stop_reason or "")
    _spec2, study2, again = _run(store, with_changes(cfg, budget={"usd": 0.5}), change_cap=True)
    assert len(study2.history().trials) > before, again.status.stop_reason
    assert store.balance(f"study:{study2.id}").spent_micros <= 500_000


@pytest.mark.parametrize(("kind", "first_cap", "raised_cap"), [
    ("hyperband", 0.15, 0.25), ("sh", 0.05, 0.08), ("bohb", 0.15, 0.25)])
def test_a_resumed_plan_whose_iterations_cost_less_than_planned_goes_on_under_a_raised_cap(
        tmp_path: Path, kind: str, first_cap: float, raised_cap: float) -> None:
    """Trials end after 10 steps ($0.00267), far below the top rung: an iteration really costs about a third of
    its plan, so the first run adds iterations until its cap. The raised cap holds no further *planned*
    iteration (a plan of fewer trials than the study has), only real ones: the resumed run, which has spent
    nothing yet, must still judge by what the last iteration really cost and run more, as far as the cap allows."""
    from costtune.schedulers import plan_brackets

    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    cfg = with_changes(BASE, scheduler={"type": kind, "min_usd": 0.002, "max_usd": 0.018, "eta": 3},
                       budget={"usd": first_cap}, resources__simulation__max_steps=10,
                       resources__simulation__startup_seconds=0)
    _spec, study, first = _run(store, cfg)
    before = len(study.history().trials)
    assert "plan" in (first.status.stop_reason or "")
    raised = round(raised_cap * 1_000_000)
    assert plan_brackets(kind, 2_000, 18_000, 3, raised).total_trials < before  # no planned iteration left
    per = first.rungs.plan.total_trials // first.rungs.plan.iterations  # type: ignore[union-attr]
    _spec2, study2, again = _run(store, with_changes(cfg, budget={"usd": raised_cap}), change_cap=True)
    trials = study2.history().trials
    assert len(trials) > before and (len(trials) - before) % per == 0, again.status.stop_reason
    assert "plan" in (again.status.stop_reason or "")
    spent = store.balance(f"study:{study2.id}").spent_micros
    last = sum(t.cost_micros for t in trials[-per:])
    assert spent <= raised < spent + last  # as many iterations as the cap holds, and no more


@pytest.mark.parametrize("kind", ["hyperband", "sh", "bohb"])
def test_a_plan_scaled_down_to_its_first_cap_keeps_its_brackets_when_the_cap_is_raised(tmp_path: Path,
                                                                                       kind: str) -> None:
    """A new user's crash: a cap below one iteration scales the brackets down; raising it with --change-cap
    planned full-size brackets, which the stored trials' verdicts did not fit (ValueError: "... is not a rung
    of this trial's ladder"). The study keeps the brackets it began with and repeats them."""
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    cfg = with_changes(BASE, scheduler={"type": kind, "min_usd": 0.002, "max_usd": 0.018, "eta": 3},
                       budget={"usd": 0.06}, resources__simulation__max_steps=60,
                       resources__simulation__startup_seconds=0)  # one full iteration costs $0.138
    _spec, study, first = _run(store, cfg)
    before = [(t.number, t.verdicts) for t in study.history().trials]
    assert first.rungs is not None and first.rungs.plan.iterations == 1  # type: ignore[union-attr]
    assert store.get_study("rs").spec["scheduler"]["plan_usd_micros"] == 60_000
    spec2, study2, again = _run(store, with_changes(cfg, budget={"usd": 0.3}), change_cap=True)
    assert again.rungs is not None
    assert again.rungs.plan.brackets == first.rungs.plan.brackets  # type: ignore[union-attr]
    assert spec2.scheduler["plan_usd_micros"] == 60_000  # the stored one, not the file's new cap
    trials = study2.history().trials
    assert len(trials) > len(before), again.status.stop_reason
    assert [(t.number, t.verdicts) for t in trials[:len(before)]] == before  # judged as they were
    assert store.balance(f"study:{study2.id}").spent_micros <= 300_000


def test_a_resume_that_restated_a_chosen_rung_still_keeps_it_when_the_file_drops_it(tmp_path: Path) -> None:
    """Restating the chosen max_usd (the same value) stored it as given; a later resume whose file leaves it
    out chose it anew from its raised cap and was refused ("the file says 0.04"). The stored value is kept."""
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    cfg = with_changes(BASE, scheduler={"type": "asha"}, budget={"usd": 0.1})
    spec, _study, _controller = _run(store, cfg)
    chosen = spec.scheduler["max_usd"]
    _run(store, with_changes(cfg, scheduler={"type": "asha", "max_usd": chosen}))
    note = store.get_study("rs").spec["scheduler"].get("chosen", "")
    assert not [part for part in note.split("; ") if part.startswith("max_usd")]  # stored as given now
    spec3, _study3, _controller3 = _run(store, with_changes(cfg, budget={"usd": 0.4}), change_cap=True)
    assert spec3.scheduler["max_usd"] == chosen
    assert "max_usd" in spec3.scheduler["chosen"] and "stored with the study" in spec3.scheduler["chosen"]


def test_a_plan_scaled_down_to_its_first_cap_keeps_its_brackets_when_the_cap_is_removed(tmp_path: Path) -> None:
    """The second new user's crash: the same study resumed with budget.trials and no budget.usd (`--change-cap`
    removes the cap) planned full-size brackets and crashed on every later run."""
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    cfg = with_changes(BASE, scheduler={"type": "hyperband", "min_usd": 0.002, "max_usd": 0.018, "eta": 3},
                       budget={"usd": 0.06}, resources__simulation__max_steps=60,
                       resources__simulation__startup_seconds=0)
    _spec, study, first = _run(store, cfg)
    before = len(study.history().trials)
    spec2, study2, again = _run(store, with_changes(cfg, budget={"trials": before + 8}), change_cap=True)
    assert spec2.scheduler["plan_usd_micros"] == 60_000 and store.get_study("rs").budget_usd_micros is None
    assert again.rungs is not None
    assert again.rungs.plan.brackets == first.rungs.plan.brackets  # type: ignore[union-attr]
    # without a cap a plan runs its iterations (one here, the one it began with) and ends: no crash, no reshaping
    assert len(study2.history().trials) == again.rungs.plan.total_trials >= before  # type: ignore[union-attr]
    assert "plan" in (again.status.stop_reason or "")


def test_a_start_up_longer_than_its_grace_still_reaches_its_first_report_on_what_the_cap_has_left(
        tmp_path: Path) -> None:
    """900 s of start-up on a $0.03 cap: the estimate (the start-up alone) ran out a step before the first
    report and the full grace (another 900 s) did not fit the cap, so the trial was judged on nothing and its
    $0.0245 bought no result. The grace now takes what the cap has left: the trial reports and is judged."""
    cfg = with_changes(BASE, scheduler={"type": "hyperband", "eta": 3}, budget={"usd": 0.03}, resources__workers=1,
                       space={f"x{i}": {"type": "uniform", "low": 0.0, "high": 1.0} for i in range(1, 7)},
                       resources__simulation__startup_seconds=900, resources__simulation__max_steps=50,
                       resources__simulation__workload="costtune.demo.workloads:hartmann6")  # 30 s steps
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    _spec, study, _controller = _run(store, cfg)
    first = study.history().trials[0]
    assert first.value is not None and first.last_step is not None
    assert first.verdicts and all(value is not None for _, value, _ in first.verdicts)
    assert sum(t.cost_micros for t in study.history().trials) <= 30_000  # the cap holds
