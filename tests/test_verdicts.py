"""Rung verdicts are stored when made: "$ at rung" and a resume's replay read them, never re-derive them."""

from __future__ import annotations

from pathlib import Path

from costtune.providers import make_provider
from simworkloads import with_changes
from sqlalchemy import text

from costtune.reports.leaderboard import rows, study_ladder
from costtune.runner.controller import SweepController
from costtune.runner.session import open_sweep
from costtune.schedulers import make_rung_scheduler
from costtune.schedulers.replay import replay_rungs
from costtune.spec import parse_sweep
from costtune.store import Store

ASHA = {
    "name": "verdicts",
    "objective": {"metric": "loss", "mode": "min"},
    "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
    "sampler": {"type": "random", "seed": 3},
    "scheduler": {"type": "asha", "min_usd": 0.002, "max_usd": 0.018, "eta": 3},
    "budget": {"usd": 0.08},
    "resources": {"provider": "simulated", "region": "us-east-1", "instance_type": "m5.large",
                  "market": "on-demand", "workers": 2,
                  "simulation": {"workload": "simworkloads:steady", "max_steps": 400, "seed": 0}},
}


def test_verdicts_are_stored_as_made_and_read_back_unchanged(tmp_path: Path) -> None:
    """Issue 7: "$ at rung" was derived from a trial's spend, so a spend booked again later (recovery)
    moved it; a resume re-derived every verdict from reports. Now both read the stored verdicts."""
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    spec = parse_sweep(with_changes(ASHA))
    study, _ = open_sweep(store, spec)
    provider = make_provider("simulated", simulation=spec.resources.simulation, metric=spec.metric)
    SweepController(spec, study, provider, trial_events=False).run()
    history = study.history()
    ladder = study_ladder(study.info.spec)
    assert ladder is not None
    judged = [t for t in history.trials if t.verdicts]
    assert len(judged) >= 4 and all(t.cost_micros < ladder[0] for t in history.trials if not t.verdicts)
    assert any(up for t in judged for _level, _v, up in t.verdicts)  # some promoted, some stopped
    assert any(not t.verdicts[-1][2] for t in judged)
    before = {r["trial"]: r["rung_micros"] for r in rows(history, ladder=ladder)}
    assert {n: r for n, r in before.items() if r is not None} == {
        t.number: max(level for level, _v, _up in t.verdicts) for t in judged}

    with store.engine.begin() as conn:  # the spend booked again later: a verdict made stays as made
        conn.execute(text("UPDATE trial SET cost_micros = cost_micros + 50000"))
    again = study.history()
    numbers = {t.number for t in judged}
    assert {r["trial"]: r["rung_micros"] for r in rows(again, ladder=ladder) if r["trial"] in numbers} == {
        n: r for n, r in before.items() if n in numbers}

    rungs = make_rung_scheduler(spec.scheduler, mode="min", budget_micros=spec.budget.usd_micros)
    assert rungs is not None
    replay_rungs(rungs, again, {})  # no reports at all: the replay needs only the stored verdicts
    for level in ladder:
        expected = {t.number: v for t in judged for lv, v, _up in t.verdicts if lv == level and v is not None}
        assert rungs.results_at(level) == expected
    store.close()
