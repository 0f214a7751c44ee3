"""How fast the dashboard's first view of a 10,000-trial study loads; prints figures, asserts nothing.

    python benchmarks/dashboard_load.py                      # a synthetic 10,000-trial study
    python benchmarks/dashboard_load.py --trials 20000
    python benchmarks/dashboard_load.py --db sqlite:///sim.db --study scale   # a real sweep's store
    python benchmarks/dashboard_load.py --browser            # also time it in Chromium (Playwright)

The first view is what a browser asks for when the study page opens: the page (with the first
leaderboard page inlined), its static assets and the chart series (``/api/v1/.../charts``). Each
is timed cold (a new server: nothing cached) through Starlette's TestClient, as CPU time of this
process (the machine is shared) and wall time; then the live poll and a leaderboard page sorted by
cost deep in the table. Target: first view under 2 s. The synthetic study is written with bulk
inserts (trials, 1.2 attempts and 3 reports each) because simulating 10,000 trials takes minutes.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from costtune.history import Mode
from costtune.store import Store
from costtune.store.models import AttemptRow, ReportRow, TrialRow


def synthetic(store: Store, name: str, trials: int) -> None:
    """A finished study of ``trials`` trials on three instance types, with rung-like costs."""
    rng = random.Random(0)
    space = {f"x{i}": {"type": "uniform", "low": 0.0, "high": 1.0} for i in range(1, 7)}
    spec = {"scheduler": {"type": "asha", "min_usd": 0.004, "max_usd": 0.108, "eta": 3}}
    info = store.create_study(name, metric="loss", mode=Mode.MIN, space=space, sampler={"type": "random"}, spec=spec,
                              budget_usd_micros=trials * 50_000)
    start = datetime.now(UTC) - timedelta(hours=10)
    types = [("m5.large", 39_500), ("c5.xlarge", 79_900), ("g4dn.xlarge", 216_100)]
    trial_rows, attempt_rows, report_rows = [], [], []
    attempt_id = report_id = 0
    for n in range(trials):
        params = {k: rng.random() for k in space}
        cost = rng.choice((4000, 4000, 4000, 12000, 12000, 36000, 108000))
        value = -3 + sum((v - 0.5) ** 2 for v in params.values()) + rng.random() * 3000 / cost
        when = start + timedelta(seconds=n * 3)
        state = "stopped" if cost < 108000 else "complete"
        trial_rows.append({"id": n + 1, "study_id": info.id, "number": n, "state": state,
                           "source": "sampler", "params_json": json.dumps(params), "value": value,
                           "metrics_json": json.dumps({"loss": value}), "last_step": cost // 1000,
                           "cost_micros": cost, "created_at": when, "started_at": when, "finished_at": when})
        for k in range(1 + (n % 5 == 0)):
            itype, rate = types[n % 3]
            attempt_id += 1
            attempt_rows.append({"id": attempt_id, "trial_id": n + 1, "number": k + 1, "idempotency_key": f"k{n}-{k}",
                                 "provider": "simulated", "region": "us-east-1", "instance_type": itype,
                                 "market": "spot",
                                 "rate_micros_per_hour": rate, "started_at": when, "ended_at": when,
                                 "exit_reason": "preempted" if k == 0 and n % 5 == 0 else "stopped",
                                 "billable_ms": cost * 3_600_000 // rate,
                                 "cost_micros": cost // (2 if n % 5 == 0 else 1),
                                 "start_step": 0, "waste_micros": 0, "bill_granule_s": 1, "bill_minimum_s": 0})
        for r in range(3):
            report_id += 1
            report_rows.append({"id": report_id, "trial_id": n + 1, "attempt_id": attempt_id, "step": r,
                                "metrics_json": json.dumps({"loss": value + (2 - r) * 0.1}), "elapsed_s": float(r),
                                "cost_micros": cost * (r + 1) // 3, "created_at": when})
    with store.engine.begin() as conn:
        conn.execute(TrialRow.__table__.insert(), trial_rows)  # type: ignore[attr-defined]
        conn.execute(AttemptRow.__table__.insert(), attempt_rows)  # type: ignore[attr-defined]
        conn.execute(ReportRow.__table__.insert(), report_rows)  # type: ignore[attr-defined]
    store.update_study(info.id, next_number=trials)


def timed(label: str, call) -> object:  # type: ignore[no-untyped-def]
    cpu, wall = time.process_time(), time.perf_counter()
    out = call()
    print(f"  {label}: {time.process_time() - cpu:.3f} s CPU, {time.perf_counter() - wall:.3f} s wall")
    return out


def first_view(store: Store, study: str) -> None:
    from starlette.testclient import TestClient

    from costtune.server.dashboard.app import routes
    from costtune.server.dashboard.auth import Access
    from costtune.server.run import _config

    app = _config(store, "127.0.0.1", 0, access_log=False, max_body=None,
                  routes=routes(store, Access("bench", open_read=True)), worker_api=False).app
    http = TestClient(app)
    from urllib.parse import urlencode

    from costtune.server.dashboard.queries import live_cursor

    info = store.get_study(study)
    print(f"study {study!r}: {len(store.history(info.id).trials)} trials")
    cursor = urlencode(live_cursor(store, info.id))  # what the page carries for its first live poll
    cpu, wall = time.process_time(), time.perf_counter()
    sizes = []
    for path in (f"/studies/{study}", "/static/ui.js", "/static/charts.js", "/static/dash.js",
                 "/static/uPlot.iife.min.js", "/static/dash.css",
                 "/static/uPlot.min.css", f"/api/v1/studies/{study}/charts", f"/api/v1/studies/{study}/live?{cursor}"):
        answer = timed(path, lambda p=path: http.get(p))
        assert answer.status_code == 200, (path, answer.status_code)  # type: ignore[attr-defined]
        sizes.append(len(answer.content))  # type: ignore[attr-defined]
    print(f"first view (page + assets + charts + first live poll), cold: {time.process_time() - cpu:.2f} s CPU, "
          f"{time.perf_counter() - wall:.2f} s wall, {sum(sizes) / 1e6:.2f} MB (target < 2 s)")
    timed("charts again (cached, nothing new)", lambda: http.get(f"/api/v1/studies/{study}/charts"))
    timed("live poll from the start (every report and trial new)", lambda: http.get(f"/api/v1/studies/{study}/live"))
    timed("leaderboard page 150 of 200, sorted by cost, descending",
          lambda: http.get(f"/api/v1/studies/{study}/trials?sort=cost&desc=1&offset=7450&limit=50"))
    timed("leaderboard filtered: state=complete, parameter text '0.12'",
          lambda: http.get(f"/api/v1/studies/{study}/trials?state=complete&q=0.12"))
    timed("studies list", lambda: http.get("/api/v1/studies"))


def in_browser(store: Store, study: str) -> None:
    import shutil

    from playwright.sync_api import sync_playwright

    from costtune.server.dashboard.app import routes
    from costtune.server.dashboard.auth import Access
    from costtune.server.run import BackgroundServer

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("browser: no chromium found, skipped")
        return
    with BackgroundServer(store, routes=routes(store, Access("bench", open_read=True)), worker_api=False) as srv, \
            sync_playwright() as p:
        chrome = p.chromium.launch(executable_path=browser, args=["--no-sandbox"])
        page = chrome.new_page(viewport={"width": 1400, "height": 1000})
        wall = time.perf_counter()
        page.goto(f"{srv.url}/studies/{study}")
        page.wait_for_selector("#chart-parallel[data-points]", timeout=60_000)
        print(f"browser: study page to every chart drawn: {time.perf_counter() - wall:.2f} s wall (server and "
              "browser share this machine)")
        chrome.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--db", help="an existing store (with --study) instead of a synthetic one")
    parser.add_argument("--study", default="dash-load")
    parser.add_argument("--browser", action="store_true", help="also time the page in Chromium")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(args.db or f"sqlite:///{Path(tmp) / 'load.db'}")
        if not args.db:
            timed(f"writing a synthetic {args.trials}-trial study", lambda: synthetic(store, args.study, args.trials))
        first_view(store, args.study)
        if args.browser:
            in_browser(store, args.study)
        store.close()


if __name__ == "__main__":
    main()
