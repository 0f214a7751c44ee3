"""``costtune dashboard`` as a user starts it, and the same pages beside the worker API of ``costtune serve``."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from dashtools import sim_spec
from starlette.testclient import TestClient

from costtune.runner.simulate import run_simulated
from costtune.store import Store


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_dashboard_command_prints_its_token_and_serves_pages_and_actions(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'store.db'}"
    run_simulated(sim_spec("cli", trials=3), db)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "COSTTUNE_DASHBOARD_TOKEN"}
    proc = subprocess.Popen(["costtune", "dashboard", "--db", db, "--bind", f"127.0.0.1:{port}", "--quiet"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        while not any("#token=" in line for line in lines):
            line = proc.stderr.readline()  # type: ignore[union-attr]
            assert line, "".join(lines)
            lines.append(line)
        token = re.search(r"#token=(\S+)", "".join(lines)).group(1)  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                with urllib.request.urlopen(base + "/api/v1/studies", timeout=5) as answer:
                    studies = json.load(answer)["studies"]
                break
            except OSError:
                time.sleep(0.1)
        assert [s["name"] for s in studies] == ["cli"]
        with urllib.request.urlopen(base + "/studies/cli", timeout=5) as answer:
            assert b"/static/uPlot.iife.min.js" in answer.read()
        with urllib.request.urlopen(base + "/static/uPlot.iife.min.js", timeout=5) as answer:
            assert answer.read().startswith(b"/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
        body = json.dumps({"params": {**{f"x{i}": 0.5 for i in range(1, 7)}, "tag": "plain",
                                      "instance_type": "m5.large"}, "raise_trials": 4}).encode()
        refused = urllib.request.Request(base + "/api/v1/studies/cli/enqueue", data=body, method="POST")
        try:
            urllib.request.urlopen(refused, timeout=5)
            raise AssertionError("enqueue without the token was accepted")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
        allowed = urllib.request.Request(base + "/api/v1/studies/cli/enqueue", data=body, method="POST",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(allowed, timeout=5) as answer:
            assert json.load(answer)["queued"] == 3
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    store = Store(db)
    assert store.trial(store.get_study("cli").id, 3).state == "queued"
    store.close()


def test_a_bad_bind_is_refused_naming_the_flag(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from costtune.cli.app import main

    result = CliRunner().invoke(main, ["dashboard", "--db", f"sqlite:///{tmp_path / 's.db'}", "--bind", "nowhere:x"])
    assert result.exit_code == 2 and "--bind" in result.output and "nowhere:x" in result.output
    assert not (tmp_path / "s.db").exists()


def test_serve_has_the_worker_api_and_the_dashboard(tmp_path: Path) -> None:
    from costtune.cli.dashboard import dashboard_routes
    from costtune.server.app import create_app

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    app = create_app(store, extra_routes=dashboard_routes(store, "0.0.0.0", 8470, public_read=False))
    http = TestClient(app)
    assert http.get("/healthz").json() == {"ok": True}
    assert http.get("/api/v1/studies").status_code == 401  # not a loopback bind: reading needs the token
    assert http.get("/v1/attempts/1/launch").status_code == 401
    store.close()


def test_every_shipped_asset_is_package_data() -> None:
    """A non-editable install ships what the pages load: each static file matches pyproject's package-data."""
    import fnmatch
    import tomllib

    root = Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "costtune.server.dashboard"]
    static = root / "costtune" / "server" / "dashboard" / "static"
    files = sorted(p.name for p in static.iterdir())
    shipped = {"uPlot.iife.min.js", "uPlot.min.css", "uPlot.LICENSE", "ui.js", "charts.js", "dash.js", "dash.css"}
    assert shipped <= set(files)
    for name in files:
        assert any(fnmatch.fnmatch(f"static/{name}", pattern) for pattern in patterns), name
    assert "MIT License" in (static / "uPlot.LICENSE").read_text()
