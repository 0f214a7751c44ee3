"""The dashboard in a real browser: Playwright (Python) driving Debian's Chromium.

Skips with a reason when Playwright or a Chromium is missing (``apt-get install chromium``; .ci/run
installs it). One browser per session; each test opens its own page on a dashboard served by
uvicorn on a free loopback port over a store of simulated sweeps.
"""

from __future__ import annotations

import importlib.util
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashtools import MARKUP, sim_spec

from costtune.runner.simulate import run_simulated
from costtune.server.dashboard.app import routes
from costtune.server.dashboard.auth import Access
from costtune.server.run import BackgroundServer
from costtune.store import Store

TOKEN = "browser-token"


def _chromium() -> str | None:
    import os

    for name in (os.environ.get("COSTTUNE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")  # closed after this module: its event loop must not outlive it
def browser() -> Iterator[Any]:
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("playwright is not installed (pip install 'costtune[test]')")
    path = _chromium()
    if path is None:
        pytest.skip("no Chromium to drive: apt-get install chromium (or set COSTTUNE_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chrome = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield chrome
        chrome.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Store, str]]:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    with BackgroundServer(store, routes=routes(store, Access(TOKEN, open_read=True)), worker_api=False) as srv:
        yield store, srv.url
    store.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert errors == [], errors


def _until(predicate: Any, timeout: float = 30.0) -> None:
    """Poll from Python: the pages' Content-Security-Policy forbids the string evaluation of wait_for_function."""
    import time

    until = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < until, "timed out"
        time.sleep(0.2)


def _points(tab: Any, chart: str) -> int:
    tab.wait_for_selector(f"#{chart}[data-points]")
    return int(tab.get_attribute(f"#{chart}", "data-points"))


def test_studies_study_charts_sorting_and_a_trial(served: tuple[Store, str], page: Any) -> None:
    store, url = served
    run_simulated(sim_spec("finished", trials=15), store)
    page.goto(url + "/")
    page.click("#studies a:text('finished')")
    page.wait_for_url("**/studies/finished")
    for chart in ("chart-best", "chart-pareto", "chart-curves", "chart-parallel"):
        assert _points(page, chart) > 0, chart
    assert page.locator("#chart-best canvas").count() == 1 and page.locator("#chart-parallel canvas").count() == 1
    assert page.locator("#placement-table tbody tr").count() == 2  # two instance types
    page.click("#leaderboard th[data-sort=cost]")
    page.wait_for_selector("#leaderboard th.asc[data-sort=cost]")
    cells = page.locator("#leaderboard tbody tr td:nth-child(4)").all_inner_texts()
    costs = [float(c.lstrip("$")) for c in cells]
    assert costs == sorted(costs) and len(costs) == 15
    assert page.locator(f"#leaderboard td:text-is('{MARKUP}')").count() > 0  # markup shown as text
    assert page.evaluate("window.pwned") is None
    page.click("#leaderboard tbody tr:first-child a")
    page.wait_for_selector("#attempts tbody tr")
    assert page.inner_text("#t-state") in ("stopped", "complete")
    assert _points(page, "chart-trial") > 0
    assert page.locator("details pre.log").count() == 2  # stdout and stderr tails
    text = page.inner_text("main")
    assert "[object " not in text and "\nnull\n" not in text
    assert page.evaluate("window.pwned") is None
    page.goto(url + "/money")  # the other pages draw without a script error (the fixture checks)
    assert _points(page, "chart-burn-0") > 1  # the study's cap burning down
    for other, shown in (("/running", "#r-count"), ("/schedules", "#app p.empty")):
        page.goto(url + other)
        page.wait_for_selector(shown)


def test_a_running_sweep_shows_on_the_open_page_and_enqueue_needs_the_token(served: tuple[Store, str],
                                                                              page: Any) -> None:
    store, url = served
    run_simulated(sim_spec("live", trials=3), store)
    page.goto(url + "/studies/live")
    page.wait_for_selector("#chart-best[data-points]")
    assert page.inner_text("#f-trials") == "3"
    spend_before = page.inner_text("#f-spend")
    page.evaluate("window.__same_page = true")
    sweep = threading.Thread(target=run_simulated, args=(sim_spec("live", trials=60, workers=2), store))
    sweep.start()
    try:
        _until(lambda: int(page.inner_text("#f-trials")) > 3)  # while the sweep runs
    finally:
        sweep.join()
    _until(lambda: page.inner_text("#f-trials") == "60")
    assert page.inner_text("#f-spend") != spend_before
    assert page.evaluate("window.__same_page") is True  # updated without a reload

    for name in (f"x{i}" for i in range(1, 7)):
        page.fill(f"#enqueue input[data-param='{name}']", "0.25")
    page.select_option("#enqueue select[data-param='tag']", MARKUP)  # a choice made of markup is an option's text
    page.select_option("#enqueue select[data-param='instance_type']", "c5.xlarge")
    page.click("#enqueue button[type=submit]")
    page.wait_for_selector("#enqueue-result.bad")
    assert "token" in page.inner_text("#enqueue-result")
    assert len(store.history(store.get_study("live").id).trials) == 60  # refused: nothing queued
    page.fill("#token", TOKEN)
    page.click("#tokenform button")
    page.click("#enqueue button[type=submit]")
    _until(lambda: "budget.trials" in page.inner_text("#enqueue-result"))  # the study holds its 60 trials
    page.fill("#raise-trials", "61")
    page.click("#enqueue button[type=submit]")
    page.wait_for_selector("#enqueue-result.ok")
    assert page.inner_text("#enqueue-result") == "queued trial 60"
    run_simulated(sim_spec("live", trials=61, workers=2), store)  # the sweep runs the queued configuration
    page.goto(url + "/studies/live/trials/60")
    page.wait_for_selector("#attempts tbody tr")
    assert page.inner_text("#t-state") in ("stopped", "complete")
    assert "c5.xlarge" in page.inner_text("#attempts")
    assert store.trial(store.get_study("live").id, 60).params["tag"] == MARKUP


def test_a_token_link_signs_in_by_post_and_a_wrong_token_is_refused(browser: Any, page: Any, tmp_path: Path) -> None:
    """Off loopback (reading needs the token): the printed #token= link signs the browser in by a POST
    form, the cookie is not the token, and the token never appears in a URL the server saw."""
    store = Store(f"sqlite:///{tmp_path / 'closed.db'}")
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    with BackgroundServer(store, routes=routes(store, Access(TOKEN, open_read=False)), worker_api=False) as srv:
        page.goto(srv.url + "/#token=wrong-one")
        _until(lambda: "not this dashboard's token" in page.inner_text("#app"))
        assert page.context.cookies() == []
        page.goto(srv.url + "/#token=" + TOKEN)
        _until(lambda: page.query_selector("#search") is not None)  # the studies page, read with the cookie
        [cookie] = page.context.cookies()
        assert cookie["name"] == "costtune_session" and TOKEN not in cookie["value"] and cookie["httpOnly"]
    store.close()
    assert not any(TOKEN in url.split("#")[0] or "wrong-one" in url.split("#")[0] for url in seen), seen
