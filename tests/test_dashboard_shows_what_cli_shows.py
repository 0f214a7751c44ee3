"""Findings of a second new-user test of the dashboard, `costtune serve` and `costtune run`, each pinned by
what the user saw: the time billed the page shows is the CLI's, a policy window's forecast on /money is
`costtune policy status`'s, a run of a paused study says why it waits, and small refusals and names."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from costtune.policies.parse import parse_policy
from costtune.policies.status import window_rows
from costtune.policies.windows import span
from costtune.providers import make_provider
from dashtools import sim_spec
from sqlmodel import Session, select
from test_dashboard_findings import AUTH, client

from costtune.history import Mode
from costtune.money import format_usd
from costtune.reports.leaderboard import rows, time_cells
from costtune.runner.controller import SweepController
from costtune.runner.session import open_sweep
from costtune.server.dashboard.money import spend_overview
from costtune.store import Store
from costtune.store.models import AttemptRow, TrialRow, utcnow
from costtune.store.reads import attempt_rows, trial_costs

SPACE = {"lr": {"type": "uniform", "low": 0.0, "high": 1.0}}


def test_the_study_page_shows_the_time_billed_the_leaderboard_shows(store: Store) -> None:
    """Trial 8 of fin-a: attempts held 1425.5 s and 448.575 s, billed per started second (1426 + 449 s):
    `costtune leaderboard` said 31 m 15 s, the page 31 m 14 s (the held time)."""
    info = store.create_study("fin-a", metric="loss", mode=Mode.MIN, space=SPACE, sampler={"type": "random"},
                              queued=[{"lr": 0.5}])
    with Session(store.engine) as s:
        trial = s.exec(select(TrialRow).where(TrialRow.study_id == info.id)).one()
        trial.state, trial.value, trial.cost_micros = "complete", 0.35, 41_620
        s.add(trial)
        for number, held in ((1, 1_425_500), (2, 448_575)):
            s.add(AttemptRow(trial_id=trial.id, number=number, idempotency_key=f"k{number}", provider="simulated",
                             instance_type="c5.xlarge", market="spot", rate_micros_per_hour=80_000,
                             billable_ms=held, cost_micros=20_810, started_at=utcnow(), ended_at=utcnow(),
                             bill_granule_s=1, bill_minimum_s=0))
        s.commit()
    costs = trial_costs(attempt_rows(store, info.id))
    header, cells = time_cells(rows(store.history(info.id), costs))
    assert (header, cells) == ("time billed", ["31 m 15 s"])  # what `costtune leaderboard fin-a` prints
    http = client(store)
    [row] = http.get("/api/v1/studies/fin-a/trials?sort=cost&desc=1").json()["rows"]
    assert row["charged_ms"] == 1_875_000 and row["charged_ms_text"] == cells[0]
    assert row["billable_ms"] == 1_874_075 and row["billable_ms_text"] == "31 m 14 s"  # held time, named so
    assert '"charged_ms_text":"31 m 15 s"' in http.get("/studies/fin-a").text  # the page's first view
    script = (Path(__file__).parents[1] / "costtune/server/dashboard/static/dash.js").read_text()
    assert '{ label: "time billed", num: true, get: (r) => T(r, "charged_ms") }' in script


def _nlp_daily(store: Store, committed: int, now: datetime) -> str:
    store.apply_policies([parse_policy({"name": "nlp-daily", "scope": {"tags": {"team": "nlp"}}, "cap_usd": 0.40,
                                        "window": {"period": "daily", "timezone": "America/New_York"}})])
    scope = span(store.policies()[0], now).scope
    store.reserve(f"k-{scope}", [scope], committed, caps={scope: 400_000})
    store.charge(f"k-{scope}", committed)
    return scope


def test_a_policy_windows_forecast_on_money_is_policy_status(store: Store) -> None:
    """nlp-daily ($0.40 a day, $0.3936 spent): the API had left_at_end and cap_reached_at null and a rate
    since the first charge, while `costtune policy status` forecast $0.400 (cap)."""
    now = datetime(2026, 11, 30, 18, tzinfo=UTC)  # 13:00 in New York: 8 of the window's 24 hours are gone
    scope = _nlp_daily(store, 393_608, now)
    [status] = window_rows(store, store.policies(), now)
    assert status["forecast_micros"] == 400_000 and status["forecast_at_cap"]  # `policy status`: $0.400 (cap)
    [row] = [r for r in spend_overview(store, now)["scopes"] if r["scope"] == scope]
    ahead = row["burn_down"]["forecast"]
    assert (ahead["forecast_micros"], ahead["forecast_pace_micros"], ahead["forecast_at_cap"]) == (
        status["forecast_micros"], status["forecast_pace_micros"], True)
    assert ahead["window_end"] == status["window_end"] and ahead["left_at_end_micros"] == 0
    pace_per_hour = (status["forecast_pace_micros"] - 393_608) / 11  # the rest of the window: 11 hours
    assert abs(ahead["rate_micros_per_hour"] - pace_per_hour) <= 1
    reached = datetime.fromisoformat(ahead["cap_reached_at"])
    assert now < reached < datetime.fromisoformat(status["window_end"])
    later = spend_overview(store, now + timedelta(minutes=5))["scopes"]  # no new spend: the same figures
    assert next(r for r in later if r["scope"] == scope)["burn_down"]["forecast"]["forecast_micros"] == 400_000
    ended = spend_overview(store, now + timedelta(days=1))["scopes"]  # yesterday's window: what it ended with
    past = next(r for r in ended if r["scope"] == scope)["burn_down"]["forecast"]
    assert (past["forecast_micros"], past["left_at_end_micros"], past["cap_reached_at"]) == (393_608, 6_392, None)


def test_the_spend_api_forecasts_the_current_window(store: Store) -> None:
    scope = _nlp_daily(store, 399_999, datetime.now(UTC))
    spend = client(store).get("/api/v1/spend").json()
    ahead = next(r for r in spend["scopes"] if r["scope"] == scope)["burn_down"]["forecast"]
    assert ahead["forecast_micros"] == 400_000 and ahead["forecast_micros_text"] == format_usd(400_000)
    assert ahead["forecast_at_cap"]
    assert ahead["left_at_end_micros_text"] == "$0" and ahead["window_end"] is not None


def test_a_run_of_a_paused_study_says_it_is_paused_and_how_to_resume(store: Store) -> None:
    """`costtune run` on a study paused from the dashboard waited forever; its progress line never said why."""
    spec = sim_spec("paused", trials=3, workers=2, steps=5)
    study, _ = open_sweep(store, spec)
    store.set_paused(study.id, True, actor="dashboard:ana@lab for 127.0.0.1")
    warnings: list[str] = []
    events: list[str] = []
    controller = SweepController(spec, study, make_provider("simulated", simulation=spec.resources.simulation,
                                                            metric=spec.metric),
                                 trial_events=False, on_warning=warnings.append, on_event=events.append)
    runner = threading.Thread(target=controller.run, daemon=True)
    runner.start()
    until = time.monotonic() + 30
    while "paused" not in controller.status.note and time.monotonic() < until:
        time.sleep(0.05)
    note = controller.status.note
    assert note.startswith("paused by dashboard:ana@lab for 127.0.0.1 at ") and " UTC: " in note
    assert "POST /api/v1/studies/paused/resume" in note and "resume launches" in note
    assert warnings and warnings[0] == f"study 'paused' is {note}"
    assert controller.status.launched == 0 and runner.is_alive()
    store.set_paused(study.id, False, actor="dashboard:ana@lab for 127.0.0.1")
    runner.join(timeout=60)
    assert not runner.is_alive() and controller.status.finished == 3
    assert "study 'paused' resumed: launching again" in events and "paused" not in controller.status.note


def test_a_trial_number_that_is_not_one_is_a_400_naming_it(store: Store) -> None:
    store.create_study("fin-a", metric="loss", mode=Mode.MIN, space=SPACE, sampler={"type": "random"},
                       queued=[{"lr": 0.5}])
    http = client(store)
    for path in ("/api/v1/studies/fin-a/trials/-1", "/api/v1/studies/fin-a/trials/abc", "/studies/fin-a/trials/-1"):
        answer = http.get(path)
        assert answer.status_code == 400, path
        assert "trial: must be a trial number" in answer.text and (path.rsplit("/", 1)[1] in answer.text)
    stop = http.post("/api/v1/studies/fin-a/trials/-1/stop", headers=AUTH)
    assert stop.status_code == 400 and stop.json()["error"] == (
        "trial: must be a trial number (an integer from 0), got '-1'")
    unknown = http.get("/api/v1/studies/fin-a/trials/7")
    assert unknown.status_code == 404 and unknown.json()["error"] == "trial: study 'fin-a' has no trial number 7"


def test_serve_on_a_busy_port_says_so_before_any_banner_or_token(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from costtune.cli.app import main

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        for command in ("serve", "dashboard"):
            done = CliRunner().invoke(main, [command, "--bind", f"127.0.0.1:{port}", "--db",
                                             f"sqlite:///{tmp_path / 's.db'}"])
            assert done.exit_code == 2, done.output
            assert done.output.startswith(f"error: --bind: cannot listen on 127.0.0.1:{port}: "), done.output
            assert "token" not in done.output and "costtune " not in done.output
            assert not (tmp_path / "s.db").exists()  # nothing created either
    finally:
        busy.close()


def test_the_schedules_api_names_and_writes_next_run_as_the_cli(store: Store) -> None:
    from costtune.schedules.records import schedule_record
    from costtune.spec.schedule_settings import ScheduleSettings
    from costtune.spec.schedule_timing import make_trigger

    now = int(datetime(2026, 3, 6, 12, tzinfo=UTC).timestamp())
    trigger = make_trigger(cron="0 2 * * *", every=None, tz="UTC", anchor=datetime.fromtimestamp(now, UTC))
    store.add_schedule("nightly", trigger=trigger, sweep={"name": "q1"}, sweep_source=None,
                       settings=ScheduleSettings(), now_s=now)
    cli = schedule_record(store.get_schedule("nightly"), None, [], detail=False)  # `schedule list --format json`
    [shown] = client(store).get("/api/v1/schedules").json()["schedules"]
    assert shown["next_run"] == cli["next_run"] == "2026-03-07T02:00:00Z" and "next_fire" not in shown
    script = (Path(__file__).parents[1] / "costtune/server/dashboard/static/dash.js").read_text()
    assert "r.next_run" in script and "next_fire" not in script
