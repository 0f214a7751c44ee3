"""User text is never rich markup: names, values, metrics, commands and trial stderr print as written."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

TRIAL = """
import json, os, sys
if os.environ["COSTTUNE_PARAM_C"] == "[/]":
    print("boom [/] [red]x[/red]", file=sys.stderr)
    sys.exit(3)
print(json.dumps({"step": 0, "loss": 0.5}))
"""


def test_brackets_in_values_metrics_and_stderr_print_literally_and_never_crash(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "COSTTUNE_DB"}
    env["COSTTUNE_HOME"] = str(tmp_path / "home")
    (tmp_path / "t.py").write_text(TRIAL)
    doc = {"name": "m1", "objective": {"metric": "loss", "mode": "min"},
           "space": {"c": {"type": "categorical", "choices": ["[bold]", "[/]"]}},
           "sampler": {"type": "grid"}, "budget": {"trials": 2, "max_failures": 0},
           "resources": {"provider": "local", "usd_per_hour": 1},
           "command": ["python", "t.py", "--c=[/x]{c}"]}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["costtune", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    run = cli("run", "s.yaml")
    assert "Traceback" not in run.stderr and "MarkupError" not in run.stderr
    assert "trial 0 started: c=[bold]" in run.stderr  # an event line (dim)
    assert "boom [/] [red]x[/red]" in run.stdout  # the failure list at the end quotes stderr
    board = cli("leaderboard", "m1")
    assert "[bold]" in board.stdout and "[/]" in board.stdout
    detail = cli("trials", "m1", "1")
    assert "'--c=[/x][/]'" in detail.stdout and "boom [/] [red]x[/red]" in detail.stdout
    missing = cli("leaderboard", "m[/]")  # an error quoting user input
    assert missing.returncode == 2 and "'m[/]'" in missing.stderr and "Traceback" not in missing.stderr
