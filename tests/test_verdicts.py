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


def test_trials_shows_why_each_verdict_went_as_the_live_output_said(tmp_path: Path) -> None:
    """The live output says why a trial was promoted or stopped at a rung; `costtune trials STUDY N` (and its
    JSON) shows the very same reason, read from the store, with each verdict."""
    import json

    from click.testing import CliRunner

    from costtune.cli import main
    from costtune.history import TrialState

    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    spec = parse_sweep(with_changes(ASHA))
    study, _ = open_sweep(store, spec)
    provider = make_provider("simulated", simulation=spec.resources.simulation, metric=spec.metric)
    events: list[str] = []
    SweepController(spec, study, provider, on_event=events.append, trial_events=True).run()
    judged = [t for t in study.history().trials if t.verdicts]
    stopped = [t for t in judged if t.state == TrialState.STOPPED]
    assert stopped and any(up for t in judged for _level, _v, up in t.verdicts)
    for trial in judged:
        as_json = CliRunner().invoke(main, ["trials", "verdicts", str(trial.number), "--db", store.url,
                                            "--format", "json"])
        assert as_json.exit_code == 0, as_json.output
        verdicts = json.loads(as_json.output)["verdicts"]
        assert [v["promoted"] for v in verdicts] == [up for _level, _v, up in trial.verdicts]
        assert all("spent past its first report" in v["reason"] and "start-up not counted" in v["reason"]
                   for v in verdicts), verdicts
        if trial in stopped:  # the stop's reason, word for word as it was shown live
            assert any(e.startswith(f"trial {trial.number} stopped") and f"({verdicts[-1]['reason']})" in e
                       for e in events), verdicts
    trial = next(t for t in judged if len(t.verdicts) > 1)  # promoted, then judged again
    verdicts = json.loads(CliRunner().invoke(main, ["trials", "verdicts", str(trial.number), "--db", store.url,
                                                    "--format", "json"]).output)["verdicts"]
    assert verdicts[0]["promoted"] and verdicts[0]["reason"] != verdicts[-1]["reason"]
    shown = CliRunner().invoke(main, ["trials", "verdicts", str(trial.number), "--db", store.url],
                               env={"COLUMNS": "400"})
    assert shown.exit_code == 0, shown.output
    flat = " ".join(shown.output.split())
    for i, v in enumerate(verdicts):  # a trial that ran its whole ladder is complete at its last rung, not stopped
        word = "promoted" if v["promoted"] else "complete" if i == len(verdicts) - 1 and \
            trial.state == TrialState.COMPLETE else "stopped"
        assert f"{word}: {' '.join(v['reason'].split())}" in flat, shown.output


def test_a_store_made_before_verdict_reasons_gains_the_column_and_keeps_its_verdicts(store_url: str) -> None:
    """A store written by the previous costtune (no trial.verdict_reasons_json; verdicts without reasons),
    on SQLite and PostgreSQL: opening it adds the column, its verdicts read back without reasons, and new
    verdicts store theirs."""
    from costtune.history import Mode, TrialState
    from costtune.store import Proposal

    old = Store(store_url)
    sid = old.create_study("old", metric="loss", mode=Mode.MIN, space={"x": {"type": "uniform", "low": 0, "high": 1}},
                           sampler={"type": "random"}).id
    ids = []
    for i in range(2):
        claimed = old.claim_next(sid, lambda h, n, s, i=i: Proposal({"x": i / 10}), owner="me")
        assert claimed is not None
        ids.append(claimed.id)
    with old.engine.begin() as conn:  # as the previous costtune left it
        conn.execute(text("ALTER TABLE trial DROP COLUMN verdict_reasons_json"))
        conn.execute(text("UPDATE trial SET verdicts_json = '[[2000, 0.5, true]]' WHERE id = :id"), {"id": ids[0]})
    old.close()

    store = Store(store_url)
    (first, second) = store.history(sid).trials
    assert first.verdicts == ((2000, 0.5, True),) and first.verdict_reasons == ()
    store.record_verdict(ids[0], 6000, 0.4, False, "below the top 1/3 at $0.006 rung")
    store.record_verdict(ids[1], 2000, 0.9, False, "below the top 1/3 at $0.002 rung")
    store.finish_trial(ids[1], TrialState.STOPPED)
    (first, second) = store.history(sid).trials
    assert first.verdicts == ((2000, 0.5, True), (6000, 0.4, False))
    assert first.verdict_reasons == ((6000, "below the top 1/3 at $0.006 rung"),)
    assert second.verdict_reasons == ((2000, "below the top 1/3 at $0.002 rung"),)
    store.record_verdict(ids[1], 2000, 0.8, True)  # judged again at that level: the old reason goes with it
    assert store.history(sid).trials[1].verdict_reasons == ()
    store.close()
