"""Findings of a new-user test of the dashboard, each pinned by what the user saw go wrong.

A study whose trials have no value (stopped before reporting, failed, queued) must not break any
page; API bodies are checked with the CLI's rules; huge numbers in paths are refused, not a 500.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlmodel import Session, col, select
from starlette.testclient import TestClient

from costtune.history import Mode
from costtune.server.dashboard.app import routes
from costtune.server.dashboard.auth import Access
from costtune.server.run import _config
from costtune.store import Store
from costtune.store.models import TrialRow

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SPACE = {"lr": {"type": "uniform", "low": 0.0, "high": 1.0}}


def client(store: Store, *, open_read: bool = True) -> TestClient:
    config = _config(store, "127.0.0.1", 0, access_log=False, max_body=None,
                     routes=routes(store, Access(TOKEN, open_read=open_read)), worker_api=False)
    return TestClient(config.app, raise_server_exceptions=False)


def _study(store: Store, name: str, mode: Mode, states: dict[int, tuple[str, float | None]], queued: int) -> None:
    """A study of ``len(states) + queued`` trials; ``states`` sets trial number -> (state, value)."""
    info = store.create_study(name, metric="loss", mode=mode, space=SPACE, sampler={"type": "random", "seed": 0},
                              spec={"name": name, "budget": {"trials": 10}},
                              queued=[{"lr": 0.1 * (k + 1)} for k in range(len(states) + queued)])
    with Session(store.engine) as s:
        for row in s.exec(select(TrialRow).where(TrialRow.study_id == info.id)).all():
            if row.number in states:
                row.state, row.value = states[row.number]
                s.add(row)
        s.commit()


@pytest.fixture
def valueless(store_url: str) -> Iterator[tuple[Store, TestClient]]:
    """'empty' has a stopped trial that never reported, a failed one and a queued one; 'mixed' has one
    value among trials without; 'maxed' maximizes with a stopped trial without a value first.
    On SQLite and PostgreSQL (the reads are SQL aggregates: both must be None-safe)."""
    store = Store(store_url)
    _study(store, "empty", Mode.MIN, {0: ("stopped", None), 1: ("failed", None)}, queued=1)
    _study(store, "mixed", Mode.MIN, {0: ("stopped", None), 1: ("complete", 0.25), 2: ("failed", None)}, queued=1)
    _study(store, "maxed", Mode.MAX, {0: ("stopped", None), 1: ("stopped", 0.5)}, queued=0)
    yield store, client(store)
    store.close()


def test_trials_without_values_break_no_page(valueless: tuple[Store, TestClient]) -> None:
    _store, http = valueless
    rows = {r["name"]: r for r in http.get("/api/v1/studies").json()["studies"]}
    assert rows["empty"]["best"] is None and rows["empty"]["trials"] == 3
    assert rows["mixed"]["best"] == 0.25 and rows["maxed"]["best"] == 0.5
    for name in ("empty", "mixed", "maxed"):
        for path in (f"/studies/{name}", f"/api/v1/studies/{name}", f"/api/v1/studies/{name}/charts",
                     f"/api/v1/studies/{name}/report", f"/api/v1/studies/{name}/live", f"/studies/{name}/trials/0",
                     f"/api/v1/studies/{name}/trials/0"):
            assert http.get(path).status_code == 200, path
        for key in ("value", "cost", "step", "state", "finished", "number"):
            for desc in ("0", "1"):
                page = http.get(f"/api/v1/studies/{name}/trials?sort={key}&desc={desc}")
                assert page.status_code == 200, (name, key, desc)
                if key == "value":  # trials without a value sort last, whichever the direction
                    values = [r["value"] for r in page.json()["rows"]]
                    assert values == sorted(values, key=lambda v: v is None)
    for path in ("/", "/money", "/running", "/schedules", "/api/v1/spend", "/api/v1/running"):
        assert http.get(path).status_code == 200, path


def test_stopping_a_trial_before_it_reported_keeps_every_page_up(valueless: tuple[Store, TestClient]) -> None:
    store, http = valueless
    stopped = http.post("/api/v1/studies/mixed/trials/3/stop", headers=AUTH)  # the queued one
    assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"
    with Session(store.engine) as s:
        assert s.exec(select(TrialRow.value).where(col(TrialRow.number) == 3)).all() == [None]
    assert http.get("/").status_code == 200 and http.get("/studies/mixed").status_code == 200
    assert http.get("/api/v1/studies").json()["studies"][1]["best"] == 0.25


def test_an_enqueue_body_is_checked_by_the_clis_rules(valueless: tuple[Store, TestClient]) -> None:
    store, http = valueless
    info = store.get_study("mixed")
    spec_before, trials_before = info.spec, store.trial_count(info.id)
    url = "/api/v1/studies/mixed/enqueue"
    for body, names in (({"params": {"lr": 0.5}, "raise_trials": 99999999999999999999},
                         ("raise_trials", "99999999999999999999", "9223372036854775807")),
                        ({"params": {"lr": 0.5}, "raise_trials": 0}, ("raise_trials", ">= 1", "0")),
                        ({"params": {"lr": 0.5}, "raise_trials": True}, ("raise_trials", "true")),
                        ({"params": {"lr": 0.5}, "raise_trials": "12"}, ("raise_trials", "'12'")),
                        ({"params": {"lr": 0.5}, "raise_trials": 2}, ("raise_trials", "must be more", "2")),
                        ({"params": {"lr": 7}}, ("config.lr", "7")),
                        ({"params": [0.5]}, ("params",)),
                        ({"params": {"lr": 0.5}, "raise_trial": 20, "priority": 1}, ("'priority'", "'raise_trial'"))):
        answer = http.post(url, json=body, headers=AUTH)
        assert answer.status_code == 400, (body, answer.text)
        for name in names:
            assert name in answer.json()["error"], (body, answer.json())
    twice = http.post(url, content=b'{"params": {"lr": 0.5}, "params": {"lr": 0.6}}', headers=AUTH)
    assert twice.status_code == 400 and "'params'" in twice.json()["error"] and "twice" in twice.json()["error"]
    assert http.post("/api/v1/studies/mixed/pause", json={"now": 1}, headers=AUTH).status_code == 400
    assert store.get_study("mixed").spec == spec_before and store.trial_count(info.id) == trials_before
    assert not store.controls(info.id).paused
    raised = http.post(url, json={"params": {"lr": 0.5}, "raise_trials": 9223372036854775807}, headers=AUTH)
    assert raised.status_code == 200, raised.text
    assert store.get_study("mixed").spec["budget"]["trials"] == 9223372036854775807
    [entry] = store.audit_log(action="trials.set", study_id=info.id)
    assert entry.detail["reason"] == "dashboard enqueue (raise_trials)" and "testclient" in entry.actor


def test_huge_numbers_in_paths_are_refused_not_a_crash(valueless: tuple[Store, TestClient]) -> None:
    _store, http = valueless
    huge = "99999999999999999999"
    for path in (f"/api/v1/studies/mixed/trials/{huge}", f"/studies/mixed/trials/{huge}",
                 "/api/v1/studies/mixed/trials/2147483648", "/api/v1/studies/mixed/trials/2147483647"):
        answer = http.get(path)
        assert answer.status_code == 404, (path, answer.status_code)
        assert huge in answer.text or "214748364" in answer.text
    stop = http.post(f"/api/v1/studies/mixed/trials/{huge}/stop", headers=AUTH)
    assert stop.status_code == 404 and huge in stop.json()["error"]
    for query in (f"offset={huge}", f"min_cost={huge}", f"limit={huge}", "offset=-1"):
        answer = http.get(f"/api/v1/studies/mixed/trials?{query}")
        assert answer.status_code == 400 and query.split("=")[0] in answer.json()["error"], query
    answer = http.get(f"/api/v1/studies/mixed/live?after_report={huge}")
    assert answer.status_code == 400 and "after_report" in answer.json()["error"]


def test_login_takes_the_token_by_post_and_the_cookie_is_not_the_token(valueless: tuple[Store, TestClient]) -> None:
    store, _ = valueless
    http = client(store, open_read=False)
    wrong = http.post("/login", data={"token": "secrettok456"}, follow_redirects=False)
    assert wrong.status_code == 403 and "not this dashboard's token" in wrong.text
    assert wrong.headers.get("set-cookie") is None and "secrettok456" not in wrong.text
    in_url = http.get(f"/login?token={TOKEN}", follow_redirects=False)  # would reach the access log
    assert in_url.status_code == 400 and "POST" in in_url.text and in_url.headers.get("set-cookie") is None
    assert http.get("/").status_code == 401
    login = http.post("/login", data={"token": TOKEN, "next": "/studies/mixed"}, follow_redirects=False)
    assert login.status_code == 303 and login.headers["location"] == "/studies/mixed"
    session = http.cookies.get("costtune_session")
    assert session and TOKEN not in session and len(session) == 64
    assert http.get("/studies/mixed").status_code == 200 and http.get("/api/v1/studies").status_code == 200
    # the read cookie never acts: an action needs the token itself
    assert http.post("/api/v1/studies/mixed/pause").status_code == 401
    assert http.post("/api/v1/studies/mixed/pause", headers={"Authorization": f"Bearer {session}"}).status_code == 403


def test_a_token_in_a_url_is_not_written_to_the_access_log() -> None:
    import logging

    from costtune.server.run import _RedactTokens

    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/login?next=/&token=secrettok456", "1.1", 400), None)
    assert _RedactTokens().filter(record)
    line = record.getMessage()
    assert "secrettok456" not in line and "/login?next=/&token=***" in line


def test_money_and_durations_are_the_clis_strings(valueless: tuple[Store, TestClient]) -> None:
    from datetime import timedelta

    from costtune.money import format_usd, format_usd_column
    from costtune.reports.fmt import format_duration
    from costtune.store.models import AttemptRow, utcnow

    store, http = valueless
    costs = {0: 9_985, 1: 64_000, 2: 221_615}  # $0.009985, $0.064, $0.221615: spend $0.2956
    with Session(store.engine) as s:
        rows = s.exec(select(TrialRow).where(TrialRow.study_id == store.get_study("mixed").id)).all()
        for row in rows:
            row.cost_micros = costs.get(row.number, 0)
            s.add(row)
        running = next(r for r in rows if r.number == 3)
        running.state = "running"
        s.add(AttemptRow(trial_id=running.id, number=1, idempotency_key="k-local", provider="local",
                         rate_micros_per_hour=3_600_000, billable_ms=4_500_000, cost_micros=4_500_000,
                         started_at=utcnow() - timedelta(minutes=75)))
        s.commit()
    study = next(r for r in http.get("/api/v1/studies").json()["studies"] if r["name"] == "mixed")
    assert study["spend_micros"] == 295_600 and study["spend_micros_text"] == "$0.296" == format_usd(295_600)
    assert study["burn_micros_per_hour_text"] == "$3.60/h"
    board = http.get("/api/v1/studies/mixed/trials?sort=number").json()["rows"]
    column = [r["cost_micros_text"] for r in board]
    assert column == format_usd_column([r["cost_micros"] for r in board]) == ["$0.00999", "$0.06400", "$0.22162", "$0"]
    assert {len(t.split(".")[1]) for t in column if "." in t} == {5}  # one column, one number of decimals
    live = http.get("/api/v1/running").json()
    [attempt] = live["attempts"]
    assert attempt["billable_ms_text"] == "1 h 15 m" == format_duration(4500)
    assert attempt["market"] is None and attempt["placement"] == "local at $3.60/h"  # not "on-demand"
    assert live["burn_micros_per_hour_text"] == "$3.60/h" and live["spent_micros_text"] == "$4.50"
    detail = http.get("/api/v1/studies/mixed/trials/3").json()
    assert detail["attempts"][0]["billable_ms_text"] == "1 h 15 m" and detail["cost_micros_text"] == "$0"
    assert '"spend_micros_text":"$0.296"' in http.get("/studies/mixed").text  # the page's first view, same text
    from costtune.server.dashboard.text import with_text

    ratios = with_text([{"usd_per_unit_gain": "0.468344"}, {"usd_per_unit_gain": None}])
    assert [r["usd_per_unit_gain_text"] for r in ratios] == ["$0.468", "-"]


def test_schedules_show_their_own_study_and_no_next_run_while_paused(valueless: tuple[Store, TestClient]) -> None:
    from datetime import UTC, datetime

    from costtune.spec.schedule_settings import ScheduleSettings
    from costtune.spec.schedule_timing import make_trigger

    store, http = valueless
    now = int(datetime(2026, 3, 6, 12, tzinfo=UTC).timestamp())
    trigger = make_trigger(cron="0 2 * * *", every=None, tz="UTC", anchor=datetime.fromtimestamp(now, UTC))
    for name, paused in (("nightly", False), ("weekly", True)):
        store.add_schedule(name, trigger=trigger, sweep={"name": "q1"}, sweep_source=None,
                           settings=ScheduleSettings(), now_s=now, paused=paused)
    shown = {s["name"]: s for s in http.get("/api/v1/schedules").json()["schedules"]}
    assert shown["nightly"]["study"] is None and shown["weekly"]["study"] is None  # no run yet: not "q1"
    assert shown["nightly"]["next_run"] == "2026-03-07T02:00:00Z"
    assert shown["weekly"]["paused"] and shown["weekly"]["next_run"] is None  # the CLI's "-"


def test_an_infinite_value_does_not_hide_the_finite_best(valueless: tuple[Store, TestClient]) -> None:
    store, http = valueless
    _study(store, "diverged", Mode.MAX, {0: ("complete", float("inf")), 1: ("complete", 0.75),
                                         2: ("stopped", float("-inf"))}, queued=0)
    row = next(r for r in http.get("/api/v1/studies").json()["studies"] if r["name"] == "diverged")
    assert row["best"] == 0.75
    assert http.get("/studies/diverged").status_code == 200


def test_the_pages_format_money_like_the_cli() -> None:
    """The browser's own formatter (chart legends) is costtune.money.format_usd, digit for digit."""
    import json
    import random
    import shutil
    import subprocess

    from costtune.money import format_usd
    from costtune.server.dashboard.app import STATIC

    node = shutil.which("node")
    if node is None:
        pytest.skip("no node to run the dashboard's script")
    script = ("const src = require('fs').readFileSync(process.argv[1], 'utf8');"
              "const usd = new Function(src.slice(src.indexOf('  function usd(micros)'),"
              " src.indexOf('  const rate =')) + '; return usd;')();"
              "console.log(JSON.stringify(JSON.parse(process.argv[2]).map(usd)));")
    rng = random.Random(7)
    cases = [0, 5, 995, 9_985, 64_000, 96_000, 295_600, 468_344, 9_999_995, 1_234_500_000, -43, 10**15]
    cases += [rng.randrange(-10**12, 10**12) for _ in range(500)] + [rng.randrange(0, 10**6) for _ in range(500)]
    out = subprocess.run([node, "-e", script, str(STATIC / "ui.js"), json.dumps(cases)], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    assert json.loads(out) == [format_usd(c) for c in cases]
