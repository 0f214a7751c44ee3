"""How a sweep ends and why (issue 7): one end condition, a true stop reason, a shared cap, seeded
preemptions, rung verdicts on this attempt's reports, the progress line's best. Simulated sweeps
through the real controller, store and ledger."""

from __future__ import annotations

import io
import itertools
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from costtune.providers import make_provider
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simworkloads import with_changes

from costtune.errors import SpecError
from costtune.history import TrialState
from costtune.money import format_usd
from costtune.runner.controller import SweepController
from costtune.runner.session import open_sweep
from costtune.schedulers import make_rung_scheduler
from costtune.spec import parse_sweep
from costtune.store import Store

BASE: dict[str, Any] = {
    "name": "end",
    "objective": {"metric": "loss", "mode": "min"},
    "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
    "sampler": {"type": "random", "seed": 1},
    "scheduler": {"type": "fifo"},  # every trial runs to its end: how a sweep ends is what differs
    "budget": {"trials": 2},
    "resources": {
        "provider": "simulated", "region": "us-east-1", "instance_type": "m5.large", "market": "spot",
        "workers": 3,
        "simulation": {"workload": "simworkloads:steady", "max_steps": 30, "startup_seconds": 30, "seed": 0,
                       "preemptions_per_hour": 2.0, "checkpoint": True},
    },
}
HARTMANN = {f"x{i}": {"type": "uniform", "low": 0, "high": 1} for i in range(1, 7)}


def cfg_with(**changes: Any) -> dict[str, Any]:
    return with_changes(BASE, **changes)


def run_sim(store: Store, cfg: dict[str, Any], **kwargs: Any) -> tuple[Any, Any, Any, Any]:
    spec = parse_sweep(cfg)
    study, _ = open_sweep(store, spec)
    provider = make_provider("simulated", simulation=spec.resources.simulation, metric=spec.metric)
    status = SweepController(spec, study, provider, trial_events=False, **kwargs).run()
    return spec, study, status, provider


def check_normal_end(store: Store, study: Any, status: Any, *, segment: int = 10_000) -> None:
    """At a normal end: nothing running, nothing queued unless the cap cannot fund it (and the stop
    reason says so), every attempt closed and charged, the ledger agrees, nothing held.

    ``segment``: the most a queued trial's next segment can need (a Hyperband trial in a later bracket
    needs up to its longest rung gap, its start-up on top, since rungs count money after a first report)."""
    trials = study.history().trials
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    queued = [t.number for t in trials if t.state == TrialState.QUEUED]
    if queued:
        many = len(queued) != 1
        assert status.stop_reason.startswith("budget.usd reached: "), (status.stop_reason, queued)
        # and, when it is known, what the cheapest of them needs to reach a first report
        assert re.search(f"; {len(queued)} queued trial{'s wait' if many else ' waits'} for more budget"
                         r"( \(~\$[0-9.]+ to a first report on [a-z0-9.]+ (spot|on-demand)\))?$", status.stop_reason)
        cap, spent, reserved = store.balance(f"study:{study.id}")
        assert cap is not None and cap - spent - reserved < segment  # too little left to fund its next segment
    total = 0
    for trial in trials:
        for attempt in store.attempts(study.id, trial.number):
            assert attempt.ended_at is not None and attempt.exit_reason is not None, (trial.number, attempt)
            total += attempt.cost_micros
        assert trial.cost_micros == sum(a.cost_micros for a in store.attempts(study.id, trial.number))
    _cap, spent, reserved = store.balance(f"study:{study.id}")
    assert (spent, reserved) == (total, 0)
    assert status.spend_micros == total


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_sweep_with_more_workers_than_trials_runs_its_preempted_trials_to_the_end(tmp_path: Path,
                                                                                    seed: int) -> None:
    """Issue 7: `trials: 2`, `workers: 3`, spot preemptions, checkpoints: the run ended with trial 0
    queued at step 22 of 29 ("all 2 trials run"), or with both queued ("no trial produced a value")."""
    cfg = cfg_with(space=HARTMANN, sampler={"type": "random", "seed": 0},
                   resources__simulation__workload="costtune.demo.workloads:hartmann6",
                   resources__simulation__max_steps=29, resources__simulation__startup_seconds=60,
                   resources__simulation__seed=seed)
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    _spec, study, status, _provider = run_sim(store, cfg)
    trials = study.history().trials
    assert [(t.state, t.last_step) for t in trials] == [(TrialState.COMPLETE, 28)] * 2
    assert status.stop_reason == "all 2 trials run (budget.trials)"
    check_normal_end(store, study, status)
    if seed == 2:  # this seed preempts trial 0 three times: it resumed from its checkpoints to the end
        assert [a.exit_reason for a in store.attempts(study.id, 0)] == ["preempted"] * 3 + ["completed"]


SCHEDULERS = {
    "fifo": {"type": "fifo"},
    "asha": {"type": "asha", "min_usd": 0.002, "max_usd": 0.008, "eta": 2},
    "sh": {"type": "sh", "min_usd": 0.002, "max_usd": 0.008, "eta": 2},
    "hyperband": {"type": "hyperband", "min_usd": 0.002, "max_usd": 0.008, "eta": 2},
    "bohb": {"type": "bohb", "min_usd": 0.002, "max_usd": 0.008, "eta": 2},
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(sorted(SCHEDULERS)),
    workers=st.integers(1, 4),
    trials=st.one_of(st.none(), st.integers(1, 3)),
    usd_cents=st.one_of(st.none(), st.integers(1, 6)),
    preemptions=st.sampled_from([0.0, 4.0, 30.0]),
    checkpoint=st.booleans(),
    on_demand=st.booleans(),
)
def test_every_small_sweep_ends_with_nothing_running_or_wrongly_queued(
        kind: str, workers: int, trials: int | None, usd_cents: int | None, preemptions: float,
        checkpoint: bool, on_demand: bool) -> None:
    budget: dict[str, Any] = {}
    if trials is not None:
        budget["trials"] = trials
    if usd_cents is not None or trials is None or kind in ("sh", "hyperband", "bohb"):
        budget["usd"] = (usd_cents or 3) / 100
    cfg = cfg_with(scheduler=SCHEDULERS[kind], budget=budget, resources__workers=workers,
                   resources__market="on-demand" if on_demand else "spot",
                   resources__simulation__preemptions_per_hour=preemptions,
                   resources__simulation__checkpoint=checkpoint)
    try:
        parse_sweep(cfg)
    except SpecError:
        return  # a plan the budget cannot hold is refused up front (tested elsewhere)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/s.db")
        try:
            _spec, study, status, _provider = run_sim(store, cfg)
            check_normal_end(store, study, status)
            if not [t for t in study.history().trials if t.state == TrialState.QUEUED]:
                assert not status.stop_reason.endswith("for more budget")
        finally:
            store.close()


def test_the_hyperband_example_leaves_no_trial_queued(tmp_path: Path) -> None:
    import yaml

    raw = yaml.safe_load((Path(__file__).parent.parent / "examples/simulated/hyperband.yaml").read_text())
    raw["resources"]["simulation"]["preemptions_per_hour"] = 2.0  # many preempted, re-queued trials
    raw["budget"]["usd"] = 2.0
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    spec, study, status, _provider = run_sim(store, raw)
    assert status.preemptions > 0
    rungs = make_rung_scheduler(spec.scheduler, mode="min", budget_micros=spec.budget.usd_micros)
    assert rungs is not None
    gaps = [b - a for t in study.history().trials for a, b in itertools.pairwise((0, *rungs.ladder(t.number)))]
    check_normal_end(store, study, status, segment=max(gaps))


def test_a_manual_sweep_whose_configs_ran_out_says_so_not_budget(tmp_path: Path) -> None:
    """Issue 7: it said "budget.usd reached" after spending $0.03 of $0.50, because a reservation
    refused once on the way latched the reason."""
    configs = [{"x": x / 10} for x in range(6)]
    cfg = cfg_with(sampler={"type": "manual", "configs": configs}, budget={"usd": 0.5},
                   resources__market="on-demand", resources__workers=3)
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    _spec, study, status, _provider = run_sim(store, cfg)
    assert [t.state for t in study.history().trials] == [TrialState.COMPLETE] * 6
    assert status.stop_reason == "every configuration in sampler.configs has run"
    check_normal_end(store, study, status)


def test_the_budget_reason_names_the_studys_spend_not_this_runs(tmp_path: Path) -> None:
    """An acceptance run: of two `costtune run` of one study, the second said "budget.usd reached: $0 of
    $0.30 spent" while the study had spent $0.30. The reason quotes the study's books, which hold what
    another controller charged too."""
    cfg = cfg_with(scheduler={"type": "fifo"}, budget={"usd": 0.05, "trials": 40}, resources__workers=2,
                   resources__market="on-demand", resources__simulation__preemptions_per_hour=0)
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    spec = parse_sweep(cfg)
    study, _ = open_sweep(store, spec)
    scope = f"study:{study.id}"
    store.reserve("another-controller:attempt", [scope], 20_000)  # what another run of the study spent
    store.charge("another-controller:attempt", 20_000)
    provider = make_provider("simulated", simulation=spec.resources.simulation, metric=spec.metric)
    status = SweepController(spec, study, provider, trial_events=False).run()
    spent = store.balance(scope).spent_micros
    assert spent > 20_000 and spent > status.spend_micros  # this run's own spend is the smaller figure

    assert status.stop_reason.startswith(f"budget.usd reached: {format_usd(spent)} of $0.05 spent")


def test_a_binding_cap_is_shared_by_the_workers(tmp_path: Path) -> None:
    """Issue 7: without rungs a launch reserved min(ten instance-minutes, all that is left), so under a
    binding cap `workers: 2` ran one trial at a time. Now each launch takes a share: both run at once."""
    cfg = cfg_with(scheduler={"type": "fifo"}, budget={"usd": 0.01, "trials": 4}, resources__workers=2,
                   resources__market="on-demand", resources__simulation__preemptions_per_hour=0)
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    _spec, study, status, provider = run_sim(store, cfg)
    handles = sorted(provider._attempts.values(), key=lambda h: h.launched_at)
    first, second = handles[:2]
    assert first.launched_at == second.launched_at == 0.0  # both start at once
    assert min(first.ended_at, second.ended_at) > 60  # and both run for a while side by side
    spent = status.spend_micros
    assert spent <= 10_000
    assert status.stop_reason.startswith("budget.usd reached: ")
    check_normal_end(store, study, status)


def preemptions_of(store: Store, name: str) -> list[tuple[int, list[tuple[str | None, int]]]]:
    study = store.get_study(name)
    return [(t.number, [(a.exit_reason, a.billable_ms) for a in store.attempts(study.id, t.number)])
            for t in store.history(study.id).trials]


def test_preemptions_depend_on_the_sweep_not_on_what_else_the_store_holds(tmp_path: Path) -> None:
    """Issue 7: the draws were seeded by ids of store rows, so one seed gave other sweeps elsewhere."""
    cfg = cfg_with(name="seeded", budget={"trials": 6}, resources__simulation__preemptions_per_hour=20.0)
    empty = Store(f"sqlite:///{tmp_path / 'empty.db'}")
    run_sim(empty, cfg)
    busy = Store(f"sqlite:///{tmp_path / 'busy.db'}")
    for other in ("first", "second"):  # other studies take the low trial and attempt ids
        run_sim(busy, cfg_with(name=other, budget={"trials": 3}))
    run_sim(busy, cfg)
    expected = preemptions_of(empty, "seeded")
    assert sum(r == "preempted" for _n, attempts in expected for r, _ms in attempts) >= 3
    assert preemptions_of(busy, "seeded") == expected


def test_the_progress_line_shows_the_best_finished_trial_as_the_leaderboard_ranks_it(tmp_path: Path) -> None:
    """Issue 8: "best" was the best intermediate report (and even a failed trial's)."""
    cfg = cfg_with(sampler={"type": "manual", "configs": [{"x": 0.1}, {"x": 0.9}, {"x": 0.5}]},
                   budget={"trials": 3}, resources__market="on-demand",
                   resources__simulation__workload="simworkloads:overfits")
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    _spec, study, status, _provider = run_sim(store, cfg)
    history = study.history()
    best = history.best()
    assert best is not None and (status.best_trial, status.best_value) == (best.number, best.value)
    reported = [m["loss"] for _s, m, _e in store.reports(study.id, 0)]
    assert min(reported) < status.best_value  # an intermediate value was better than any final one
    assert [t.state for t in history.trials] == [TrialState.FAILED, TrialState.COMPLETE, TrialState.COMPLETE]


def test_a_rung_waits_for_this_attempts_first_report_within_one_rung_of_grace(tmp_path: Path) -> None:
    """Issue 7: a first rung below the start-up cost stopped every trial ("no result by the rung"); a
    relaunched trial was judged on a value from before its interruption. A verdict now uses this
    attempt's report; rungs count money after the first report (issue 13), with one grace when a
    start-up outruns its estimate."""
    warnings: list[str] = []
    # m5.large on demand, $0.096/h: 60 s of start-up cost $0.0016, above the $0.001 first rung
    cfg = cfg_with(scheduler={"type": "asha", "min_usd": 0.001, "max_usd": 0.004, "eta": 2},
                   budget={"usd": 0.05}, resources__market="on-demand", resources__workers=2,
                   resources__simulation__startup_seconds=60, resources__simulation__preemptions_per_hour=0)
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    _spec, study, status, _provider = run_sim(store, cfg, on_warning=warnings.append)
    trials = study.history().trials
    # Judged on a result, all but the last few: once the cap cannot fund the grace, on what there is.
    # (Before, every trial was stopped at $0.001 with "no result by the $0.001 rung".)
    assert sum(t.value is None for t in trials if t.state.finished) <= 2
    assert len(trials) > 10
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= 3  # promoted past the first rung to the top
    # The first report comes after 60 s of start-up and a 10 s step ($0.00187 at $0.096/h), above the
    # $0.001 first rung: rungs count money after the first report, so no "raise min_usd" advice any more.
    assert warnings == []
    check_normal_end(store, study, status)


def test_a_relaunched_trial_is_judged_on_what_this_attempt_reported(tmp_path: Path) -> None:
    cfg = cfg_with(scheduler={"type": "asha", "min_usd": 0.004, "max_usd": 0.016, "eta": 2},
                   budget={"usd": 0.2}, resources__workers=3, resources__simulation__startup_seconds=60,
                   resources__simulation__preemptions_per_hour=12.0, resources__simulation__max_steps=200)
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    _spec, study, status, _provider = run_sim(store, cfg)
    relaunched = 0
    for trial in study.history().trials:
        attempts = store.attempts(study.id, trial.number)
        if len(attempts) < 2 or attempts[-1].exit_reason not in ("stopped", "completed"):
            continue
        relaunched += 1
        steps = [s for s, _m, _e in store.reports(study.id, trial.number)]
        # its last attempt started at its checkpoint and reported before it was judged
        assert steps and steps[-1] >= attempts[-1].start_step, (trial.number, attempts[-1])
    assert relaunched >= 2
    check_normal_end(store, study, status)


def test_the_progress_line_says_why_fewer_trials_run_than_asked() -> None:
    from rich.console import Console
    from rich.progress import Progress, TextColumn

    from costtune.runner.session import _update
    from costtune.runner.status import RunStatus

    spec = parse_sweep(cfg_with(budget={"usd": 0.01, "trials": 4}))

    class Named:
        metric = "loss"

    progress = Progress(TextColumn("{task.fields[detail]}"), console=Console(file=io.StringIO()))
    task = progress.add_task("end", total=4, count="", detail="", by_money=False)
    note = "budget.usd: $0.005 left, running trials hold the rest; a trial needs $0.01 to start"
    status = RunStatus(running=1, workers=3, note=note, best_value=0.5, best_trial=2)
    _update(progress, task, status, spec, Named())  # type: ignore[arg-type]
    detail = progress.tasks[0].fields["detail"]
    assert detail.startswith(f"running 1 of 3 workers ({note})  failed 0  best loss 0.5 (trial 2)")
    status.running = 3
    _update(progress, task, status, spec, Named())  # type: ignore[arg-type]
    assert progress.tasks[0].fields["detail"].startswith("running 3  failed 0")


def test_the_controller_names_the_room_left_when_the_cap_funds_fewer_workers(tmp_path: Path) -> None:
    """3 workers, $0.01 first rungs, a $0.025 cap: two trials hold $0.02 and their start-up, the third
    cannot start."""
    cfg = cfg_with(scheduler={"type": "asha", "min_usd": 0.01, "max_usd": 0.03, "eta": 3},
                   budget={"usd": 0.025, "trials": 6}, resources__workers=3)
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    spec = parse_sweep(cfg)
    study, _ = open_sweep(store, spec)
    provider = make_provider("simulated", simulation=spec.resources.simulation, metric=spec.metric)
    notes: list[str] = []
    controller = SweepController(spec, study, provider, trial_events=True,
                                 on_event=lambda _message: notes.append(controller.status.note))
    controller.run()
    # A first reservation is the first rung plus the start-up (30 s, billed as the 60 s minimum): rungs
    # count money after a trial's first report.
    need = 10_000 + spec.resources.billing.charge(30_000, spec.resources.rate_for("m5.large", "spot"))
    assert (f"budget.usd: {format_usd(25_000 - 2 * need)} left, running trials hold the rest; a trial needs "
            f"{format_usd(need)} to start") in notes


def test_sampler_configs_count_toward_budget_trials_and_an_excess_changes_nothing(tmp_path: Path) -> None:
    """Queued configurations count toward budget.trials on every path (issue 7: 41 of 40): a file
    listing more than the budget is refused, and configs added on resume past it change nothing."""
    with pytest.raises(SpecError, match=r"sampler\.configs: lists 3 configurations, more than budget\.trials \(2\)"):
        parse_sweep(cfg_with(sampler__configs=[{"x": 0.1}, {"x": 0.2}, {"x": 0.3}]))
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    _spec, study, status, _provider = run_sim(store, cfg_with(sampler__configs=[{"x": 0.1}]))
    check_normal_end(store, study, status)
    before = [(t.number, t.state, t.params) for t in study.history().trials]
    assert len(before) == 2
    grown = parse_sweep(cfg_with(sampler__configs=[{"x": 0.1}, {"x": 0.2}]))
    with pytest.raises(SpecError, match=r"budget\.trials: study 'end' holds 2 trials and sampler\.configs adds 1"):
        open_sweep(store, grown)
    assert [(t.number, t.state, t.params) for t in study.history().trials] == before
    assert store.get_study("end").spec == cfg_with(sampler__configs=[{"x": 0.1}])  # the stored file, unchanged


def test_a_resume_of_a_study_holding_its_trials_says_so_and_never_blames_the_cap(tmp_path: Path) -> None:
    """Issue 7: a resume of a study that already held budget.trials said "budget.usd reached"; one
    holding more than a lowered budget.trials said "all N trials run" with N below what `studies` shows."""
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    cfg = cfg_with(budget={"trials": 2, "usd": 0.05})
    _spec, study, _status, _provider = run_sim(store, cfg)
    assert len(study.history().trials) == 2
    _spec, study, again, _provider = run_sim(store, cfg)
    assert again.stop_reason == "all 2 trials run (budget.trials)" and again.launched == 0
    _spec, study, lower, _provider = run_sim(store, cfg_with(budget={"trials": 1, "usd": 0.05}))
    assert lower.stop_reason == "the study holds 2 trials, more than budget.trials (1): all have run (budget.trials)"


@pytest.mark.parametrize(("usd", "kind", "reason"), [
    ("0.004", "budget", "budget.usd reached: $0.004 of $0.004 spent; it stopped 2 trials before their end"),
    ("0.02", "limit", "all 2 trials run (budget.trials)"),
])
def test_a_cap_reached_exactly_as_the_trial_limit_is_named_as_the_end(tmp_path: Path, usd: str, kind: str,
                                                                       reason: str) -> None:
    """A tester's run: both trials stopped by a cap spent to the micro-dollar ($0.004 of $0.004), and the
    run said 'all 2 trials run (budget.trials)'. The money ended it, and the reason says so; trials that
    ran to their end under a looser cap still end on budget.trials."""
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    cfg = cfg_with(budget__usd=usd, resources__market="on-demand", resources__workers=2,
                   resources__simulation__preemptions_per_hour=0.0)
    _spec, study, status, _provider = run_sim(store, cfg)
    assert (status.stop_kind, status.stop_reason) == (kind, reason)
    stopped = [t for t in study.history().trials if t.state == TrialState.STOPPED]
    assert len(stopped) == (2 if kind == "budget" else 0)
