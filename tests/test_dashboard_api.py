"""The dashboard's JSON API and pages through Starlette's TestClient, over real stores and sweeps.

What a user relies on: the numbers the pages show are the store's (and the reports'), the
leaderboard sorts and filters in the database, the live view returns only what is new, markup in
a parameter value stays text, and actions need the token (a cookie never authorizes one).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashtools import MARKUP, sim_spec
from starlette.testclient import TestClient

from costtune.reports.cost import best_vs_spend, pareto_front
from costtune.runner.simulate import run_simulated
from costtune.server.dashboard.app import routes
from costtune.server.dashboard.auth import Access
from costtune.server.run import _config
from costtune.store import Store

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def client(store: Store, *, open_read: bool = True) -> TestClient:
    config = _config(store, "127.0.0.1", 0, access_log=False, max_body=None,
                     routes=routes(store, Access(TOKEN, open_read=open_read)), worker_api=False)
    return TestClient(config.app)


@pytest.fixture(scope="module")
def swept_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished 12-trial sweep per module; each test gets its own copy of the file."""
    path = tmp_path_factory.mktemp("dash") / "swept.db"
    run_simulated(sim_spec("swept"), f"sqlite:///{path}")
    return path


@pytest.fixture
def swept(swept_file: Path, tmp_path: Path) -> Iterator[tuple[Store, TestClient]]:
    mine = tmp_path / "swept.db"
    shutil.copy(swept_file, mine)
    store = Store(f"sqlite:///{mine}")
    yield store, client(store)
    store.close()


def test_studies_and_study_summaries_are_the_stores_numbers(swept: tuple[Store, TestClient]) -> None:
    store, http = swept
    info = store.get_study("swept")
    history = store.history(info.id)
    row = http.get("/api/v1/studies").json()["studies"][0]
    assert row["name"] == "swept" and row["state"] == "finished" and row["trials"] == len(history.trials) == 12
    assert row["spend_micros"] == history.spent_micros > 0
    assert row["best"] == history.best().value  # type: ignore[union-attr]
    assert row["cap_micros"] == 5_000_000 and row["burn_micros_per_hour"] == 0 and row["paused"] is False
    summary = http.get("/api/v1/studies/swept").json()
    assert summary["spend_micros"] == history.spent_micros and set(summary["space"]) >= {"x1", "tag"}


def test_the_leaderboard_sorts_filters_and_pages_in_the_database(swept: tuple[Store, TestClient]) -> None:
    store, http = swept
    history = store.history(store.get_study("swept").id)
    by_cost = http.get("/api/v1/studies/swept/trials?sort=cost&limit=500").json()
    costs = [r["cost_micros"] for r in by_cost["rows"]]
    assert costs == sorted(costs) and by_cost["total"] == 12
    dear = http.get("/api/v1/studies/swept/trials?sort=cost&desc=1&limit=3").json()
    assert [r["cost_micros"] for r in dear["rows"]] == sorted(costs, reverse=True)[:3]
    best = http.get("/api/v1/studies/swept/trials?limit=1").json()["rows"][0]
    assert best["number"] == history.best().number  # type: ignore[union-attr]  # value, best first
    page2 = http.get("/api/v1/studies/swept/trials?sort=number&offset=10&limit=5").json()
    assert [r["number"] for r in page2["rows"]] == [10, 11] and page2["total"] == 12
    stopped = http.get("/api/v1/studies/swept/trials?state=stopped&limit=500").json()
    assert stopped["total"] == sum(t.state == "stopped" for t in history.trials)
    assert all(r["state"] == "stopped" for r in stopped["rows"])
    tagged = http.get("/api/v1/studies/swept/trials", params={"q": "onerror", "limit": 500}).json()
    assert tagged["total"] == sum(t.params["tag"] == MARKUP for t in history.trials)
    cheap = http.get(f"/api/v1/studies/swept/trials?max_cost={min(costs)}&limit=500").json()
    assert cheap["total"] == costs.count(min(costs))
    row = by_cost["rows"][0]
    attempts = store.attempts(store.get_study("swept").id, row["number"])
    assert row["attempts"] == len(attempts) and row["instance_type"] == attempts[-1].instance_type


def test_a_bad_leaderboard_query_is_refused_naming_the_field_and_value(swept: tuple[Store, TestClient]) -> None:
    for query, named in [("sort=price", "sort: must be one of number, value, cost, step, state, finished, got price"),
                         ("state=done", "state: must be among"),
                         ("limit=100000", "limit: must be from 1 to 500, got 100000"),
                         ("offset=-1", "offset: must be from 0"), ("desc=yes", "desc: must be 0 or 1, got 'yes'"),
                         ("min_cost=1.5", "min_cost: must be an integer, got '1.5'")]:
        answer = swept[1].get(f"/api/v1/studies/swept/trials?{query}")
        assert answer.status_code == 400 and named in answer.json()["error"], query


def _same_steps(drawn: list[list[Any]], full: list[dict[str, Any]]) -> None:
    """The drawn step curve is the report's: its first and last points and every change of the best."""
    rows = [[r["cumulative_micros"], r["best"], r["trial"]] for r in full]
    changes = [row for k, row in enumerate(rows) if k == 0 or row[1] != rows[k - 1][1]]
    assert drawn == changes + ([rows[-1]] if rows[-1] != changes[-1] else [])


def test_charts_are_the_reports_series_and_follow_new_trials(swept: tuple[Store, TestClient]) -> None:
    store, http = swept
    info = store.get_study("swept")
    charts = http.get("/api/v1/studies/swept/charts").json()
    history = store.history(info.id)
    _same_steps(charts["best_vs_spend"], best_vs_spend(history))
    assert [p[2] for p in charts["pareto"]] == [t.number for t in pareto_front(history)]
    assert sum(r["cost_micros"] for r in charts["placement"]) == history.spent_micros
    assert charts["rungs"] == [4000, 12000, 36000] and charts["curves"] and charts["curves"][0]["points"]
    assert charts["parallel"]["rows"] and "tag" in charts["parallel"]["params"]
    report = http.get("/api/v1/studies/swept/report").json()  # what `costtune report --format json` prints
    assert [r["trial"] for r in report["pareto"]] == [p[2] for p in charts["pareto"]]
    assert report["summary"] and report["spend_by_placement"]
    assert set(http.get("/api/v1/studies/swept/report?section=pareto").json()) == {"study", "metric", "mode", "pareto"}
    assert "section: must be one of" in http.get("/api/v1/studies/swept/report?section=x").json()["error"]
    run_simulated(sim_spec("swept", trials=20), store)  # the same study, resumed with more trials
    again = http.get("/api/v1/studies/swept/charts").json()
    assert again["finished"] == 20 and again["best_vs_spend"][-1][0] == store.history(info.id).spent_micros
    _same_steps(again["best_vs_spend"], best_vs_spend(store.history(info.id)))


def test_the_live_view_returns_only_what_is_new(swept: tuple[Store, TestClient]) -> None:
    store, http = swept
    first = http.get("/api/v1/studies/swept/live").json()
    assert first["trials"] == 12 and first["reports"] and len(first["trials_changed"]) == 12
    cursor = first["cursor"]
    quiet = http.get("/api/v1/studies/swept/live", params=cursor).json()
    assert quiet["reports"] == [] and quiet["trials_changed"] == [] and quiet["cursor"] == cursor
    run_simulated(sim_spec("swept", trials=15), store)
    later = http.get("/api/v1/studies/swept/live", params=cursor).json()
    assert later["trials"] == 15 and {t["number"] for t in later["trials_changed"]} >= {12, 13, 14}
    assert {r["trial"] for r in later["reports"]} <= {t["number"] for t in later["trials_changed"]}


def test_a_trial_page_shows_attempts_charges_and_logs_as_text(swept: tuple[Store, TestClient]) -> None:
    store, http = swept
    info = store.get_study("swept")
    number = next(t.number for t in store.history(info.id).trials if t.params["tag"] == MARKUP)
    detail = http.get(f"/api/v1/studies/swept/trials/{number}").json()
    assert detail["params"]["tag"] == MARKUP
    assert sum(a["cost_micros"] for a in detail["attempts"]) == detail["cost_micros"] > 0
    assert detail["attempts"][0]["instance_type"] in ("m5.large", "c5.xlarge") and detail["curve"]
    assert http.get("/api/v1/studies/swept/trials/999").status_code == 404
    assert http.get("/api/v1/studies/nope/trials").json() == {"error": "study: no study named 'nope'"}
    for path in (f"/studies/swept/trials/{number}", "/studies/swept", "/", "/running", "/money"):
        page = http.get(path)
        assert page.status_code == 200 and "<script>window.pwned" not in page.text and "<img src=x" not in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
    missing = http.get("/studies/%3Cimg%20src%3Dx%20onerror%3Dwindow.pwned%3D3%3E")  # a name from the address bar
    assert missing.status_code == 404 and "<img src=x" not in missing.text
    assert "&lt;img src=x onerror=window.pwned=3&gt;" in missing.text
    inlined = http.get(f"/studies/swept/trials/{number}").text
    assert "\\u003cscript\\u003ewindow.pwned=2\\u003c/script\\u003e" in inlined


def test_a_bad_enqueue_body_quotes_the_choices_and_the_value_as_written(swept: tuple[Store, TestClient]) -> None:
    """New-user report item 12: the API said ``must be one of ['m5.large', ...]``, a Python list."""
    store, http = swept
    params = {**{f"x{i}": 0.5 for i in range(1, 7)}, "tag": "plain", "instance_type": "m9.huge"}
    bad = http.post("/api/v1/studies/swept/enqueue", json={"params": params, "raise_trials": 13}, headers=AUTH)
    assert bad.status_code == 400
    assert bad.json()["error"] == "config.instance_type: must be one of [m5.large, c5.xlarge], got m9.huge"
    listed = http.post("/api/v1/studies/swept/enqueue", json={"params": {**params, "instance_type": ["m5.large"]},
                                                                "raise_trials": 13}, headers=AUTH)
    assert listed.status_code == 400 and listed.json()["error"].endswith(", got [m5.large]"), listed.text
    assert len(store.history(store.get_study("swept").id).trials) == 12


def test_actions_need_the_token_in_a_header_and_change_nothing_without_it(swept: tuple[Store, TestClient]) -> None:
    store, http = swept
    info = store.get_study("swept")
    before = len(store.history(info.id).trials)
    config = {"params": {**{f"x{i}": "0.5" for i in range(1, 7)}, "tag": "plain", "instance_type": "m5.large"}}
    assert http.post("/api/v1/studies/swept/enqueue", json=config).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert http.post("/api/v1/studies/swept/enqueue", json=config, headers=wrong).status_code == 403
    http.cookies.set("costtune_session", TOKEN)  # a cookie is what a cross-site form would carry: never enough
    assert http.post("/api/v1/studies/swept/enqueue", json=config).status_code == 401
    assert http.post("/api/v1/studies/swept/pause").status_code == 401
    assert http.get("/api/v1/studies/swept/export?format=csv").status_code == 401
    assert len(store.history(info.id).trials) == before and not store.controls(info.id).paused
    bad = http.post("/api/v1/studies/swept/enqueue", json={"params": {**config["params"], "x1": "7"}}, headers=AUTH)
    assert bad.status_code == 400 and "config.x1" in bad.json()["error"] and "7" in bad.json()["error"]
    full = http.post("/api/v1/studies/swept/enqueue", json=config, headers=AUTH)
    assert full.status_code == 400 and "budget.trials" in full.json()["error"]  # the study holds its 12
    assert "raise_trials 13" in full.json()["error"]  # the request's field, not the CLI's flag
    assert len(store.history(info.id).trials) == before
    raised = http.post("/api/v1/studies/swept/enqueue", json={**config, "raise_trials": 13}, headers=AUTH)
    assert raised.status_code == 200, raised.text
    queued = store.trial(info.id, raised.json()["queued"])
    assert queued.state == "queued" and queued.params["x1"] == 0.5 and queued.source == "manual"
    assert http.post(f"/api/v1/studies/swept/trials/{queued.number}/stop", headers=AUTH).json()["state"] == "stopped"
    assert http.post(f"/api/v1/studies/swept/trials/{queued.number}/stop", headers=AUTH).status_code == 409
    assert http.post("/api/v1/studies/swept/pause", headers={"X-Costtune-Token": TOKEN}).json()["changed"] is True
    assert store.controls(info.id).paused and http.get("/api/v1/studies").json()["studies"][0]["paused"]
    assert http.post("/api/v1/studies/swept/resume", headers=AUTH).json()["changed"] is True
    csv = http.get("/api/v1/studies/swept/export?format=csv", headers=AUTH)
    assert csv.status_code == 200 and csv.text.splitlines()[0].startswith("rank,trial,state,value")
    assert len(csv.text.splitlines()) == 14  # header + 13 trials
    doc = json.loads(http.get("/api/v1/studies/swept/export?format=json", headers=AUTH).text)
    assert len(doc["trials"]) == 13
    actions = [e.action for e in store.audit_log(study_id=info.id)]
    for action in ("trials.set", "trial.enqueue", "trial.stop", "study.pause", "study.resume", "leaderboard.export"):
        assert action in actions
    assert [e.actor for e in store.audit_log(action="trial.enqueue")] == ["dashboard for testclient"]


def test_off_loopback_reading_needs_the_token_too(swept: tuple[Store, TestClient]) -> None:
    http = client(swept[0], open_read=False)
    for path in ("/api/v1/studies", "/api/v1/spend", "/api/v1/studies/swept/trials"):
        assert http.get(path).status_code == 401
    assert http.get("/").status_code == 401 and "swept" not in http.get("/").text
    assert http.get("/api/v1/studies", headers=AUTH).status_code == 200
    assert http.post("/login", data={"token": "wrong"}, follow_redirects=False).headers.get("set-cookie") is None
    assert http.get("/").status_code == 401
    login = http.post("/login", data={"token": TOKEN, "next": "//evil.example"}, follow_redirects=False)
    assert login.status_code == 303 and login.headers["location"] == "/"
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert http.get("/").status_code == 200 and http.get("/api/v1/studies").status_code == 200


def test_money_and_running_pages_read_the_ledger(swept: tuple[Store, TestClient]) -> None:
    store, http = swept
    info = store.get_study("swept")
    spend = http.get("/api/v1/spend").json()
    scope = next(s for s in spend["scopes"] if s["scope"] == f"study:{info.id}")
    balance = store.balance(f"study:{info.id}")
    assert scope["label"] == "study swept" and scope["cap_micros"] == 5_000_000
    assert scope["spent_micros"] == balance.spent_micros and scope["reserved_micros"] == 0
    points: list[Any] = scope["burn_down"]["points"]
    assert points[0][1] == 5_000_000 and points[-1][1] == 5_000_000 - balance.spent_micros
    assert http.get("/api/v1/running").json()["attempts"] == [] and spend["burn_micros_per_hour"] == 0


def test_every_read_works_on_postgresql_too(store_url: str) -> None:
    """The grouped and filtered queries are plain SQL both backends run (skipped without PostgreSQL)."""
    if not store_url.startswith("postgresql"):
        pytest.skip("the SQLite store is what the other tests use")
    store = Store(store_url)
    try:
        run_simulated(sim_spec("pg", trials=6), store)
        http = client(store)
        history = store.history(store.get_study("pg").id)
        assert http.get("/api/v1/studies").json()["studies"][0]["spend_micros"] == history.spent_micros
        rows = http.get("/api/v1/studies/pg/trials?sort=cost&desc=1&q=onerror&state=stopped,complete").json()["rows"]
        assert [r["cost_micros"] for r in rows] == sorted((r["cost_micros"] for r in rows), reverse=True)
        charts = http.get("/api/v1/studies/pg/charts").json()
        assert sum(r["cost_micros"] for r in charts["placement"]) == history.spent_micros
        live = http.get("/api/v1/studies/pg/live").json()
        assert http.get("/api/v1/studies/pg/live", params=live["cursor"]).json()["trials_changed"] == []
        assert http.get("/api/v1/spend").json()["scopes"][0]["burn_down"]["points"]
        assert http.get("/api/v1/studies/pg/trials/0").json()["attempts"]
    finally:
        store.close()


def test_the_schedules_page_lists_schedules_and_model_versions(swept: tuple[Store, TestClient]) -> None:
    from datetime import UTC, datetime

    from costtune.history import Mode
    from costtune.spec.schedule_settings import ScheduleSettings
    from costtune.spec.schedule_timing import make_trigger

    store, http = swept
    now = int(datetime(2026, 3, 6, 12, tzinfo=UTC).timestamp())
    trigger = make_trigger(cron="0 2 * * *", every=None, tz="UTC", anchor=datetime.fromtimestamp(now, UTC))
    store.add_schedule("nightly", trigger=trigger, sweep={"name": "swept"}, sweep_source=None,
                       settings=ScheduleSettings(), now_s=now)
    store.add_model_version("digits", promote="better", artifact_path=lambda v: f"/tmp/m{v}", study_name="swept",
                            trial_number=3, metric="loss", mode=Mode.MIN, value=0.25, params={"tag": MARKUP},
                            run_cost_micros=1200, reach_cost_micros=900)
    data = http.get("/api/v1/schedules").json()
    [schedule] = data["schedules"]
    assert schedule["name"] == "nightly" and schedule["timing"] == "cron '0 2 * * *' (UTC)"
    assert schedule["next_run"] == "2026-03-07T02:00:00Z" and schedule["runs"] == [] and not schedule["paused"]
    [version] = data["models"]
    shown = (version["ref"], version["promoted"], version["value"], version["run_cost_micros"])
    assert shown == ("digits:1", True, 0.25, 1200)
    page = http.get("/schedules")
    assert page.status_code == 200 and "<img src=x" not in page.text and 'href="/schedules"' in page.text
