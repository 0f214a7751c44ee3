"""Screenshots of the dashboard's study and money pages (PNG), from a running dashboard or a new one.

    costtune run examples/simulated/hyperband.yaml --db sqlite:///sim.db
    python benchmarks/dashboard_screenshots.py --db sqlite:///sim.db --study sim-hyperband --out shots/

Starts the dashboard in-process on a free loopback port (or uses ``--url``), opens the pages in
Chromium through Playwright (Debian's ``/usr/bin/chromium`` unless ``--browser`` says otherwise),
waits for the charts to hold data points and writes ``study.png``, ``trial.png``, ``money.png``
and ``running.png``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from urllib.parse import quote


def find_browser(given: str | None = None) -> str | None:
    """A Chromium to drive: ``given``, $COSTTUNE_CHROMIUM, or chromium / chromium-browser / google-chrome on PATH."""
    import os

    for candidate in (given, os.environ.get("COSTTUNE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (found := shutil.which(candidate) or (Path(candidate).is_file() and candidate)):
            return str(found)
    return None


def shoot(url: str, study: str, out: Path, browser: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as p:
        chrome = p.chromium.launch(executable_path=browser, args=["--no-sandbox"])
        page = chrome.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/studies/{quote(study, safe='')}")
        page.wait_for_selector("#chart-best[data-points]", timeout=30_000)
        page.wait_for_selector("#chart-parallel[data-points]", timeout=30_000)
        written.append(out / "study.png")
        page.screenshot(path=str(written[-1]), full_page=True)
        page.click("#leaderboard tbody tr a")
        page.wait_for_selector("#attempts", timeout=30_000)
        written.append(out / "trial.png")
        page.screenshot(path=str(written[-1]), full_page=True)
        for name in ("money", "running"):
            page.goto(f"{url}/{name}")
            page.wait_for_selector("#app > *", timeout=30_000)
            page.wait_for_timeout(300)
            written.append(out / f"{name}.png")
            page.screenshot(path=str(written[-1]), full_page=True)
        chrome.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", help="store URL (a dashboard is started over it)")
    parser.add_argument("--url", help="a running dashboard instead, e.g. http://127.0.0.1:8471")
    parser.add_argument("--study", required=True)
    parser.add_argument("--out", default="dashboard-shots")
    parser.add_argument("--browser", default=None)
    args = parser.parse_args()
    browser = find_browser(args.browser)
    if browser is None:
        sys.exit("no Chromium found: apt-get install chromium (or pass --browser PATH)")
    if args.url:
        paths = shoot(args.url.rstrip("/"), args.study, Path(args.out), browser)
    else:
        from costtune.server.dashboard.app import routes
        from costtune.server.dashboard.auth import Access, new_token
        from costtune.server.run import BackgroundServer
        from costtune.store import Store

        store = Store(args.db)
        served = routes(store, Access(new_token(), open_read=True))
        with BackgroundServer(store, routes=served, worker_api=False) as srv:
            paths = shoot(srv.url, args.study, Path(args.out), browser)
    for path in paths:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
