"""What the CLI shows a user is what the store holds: values a user copies back work, listings say why."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from costtune.cli import main


@pytest.fixture(autouse=True)
def _own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSTTUNE_HOME", str(tmp_path / "home"))


def _cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


REPORT = "print('costtune:report {{\"step\": 0, \"loss\": 1.0}}')"  # braces doubled: not placeholders


def test_rungs_costtune_chose_are_shown_exactly_and_a_file_giving_them_resumes(tmp_path: Path) -> None:
    # $0.05/h: 120 s is $0.0016666..., stored as 1,667 micro-dollars; shown rounded ($0.00167) a user who
    # copied it into the file was refused on resume ("already exists with scheduler.min_usd 0.001667").
    db = str(tmp_path / "store.db")
    sweep: dict[str, Any] = {
        "name": "chosen", "objective": {"metric": "loss", "mode": "min"},
        "space": {"x": {"type": "uniform", "low": 0, "high": 1}},
        "sampler": {"type": "random", "seed": 0}, "scheduler": {"type": "asha"},
        "budget": {"usd": 1, "trials": 1},
        "resources": {"provider": "local", "usd_per_hour": 0.05, "workers": 1},
        "command": [sys.executable, "-c", REPORT],
    }
    path = _write(tmp_path / "sweep.yaml", sweep)
    assert _cli("run", str(path), "--db", db, "--quiet").exit_code == 0
    plan = " ".join(_cli("plan", str(path), "--db", db, "--no-forecast").stdout.split())
    shown_min = re.search(r"min_usd \$([0-9.]+) = 120 s", plan)
    assert shown_min is not None, plan
    assert shown_min.group(1) == "0.001667"  # every micro-dollar of what is stored
    listed = re.search(r"asha \(\$([0-9.]+) to \$([0-9.]+), eta 3\)", _cli("studies", "--db", db).stdout)
    assert listed is not None and listed.group(1) == shown_min.group(1)
    assert f"rung ladder (eta 3): ${shown_min.group(1)} ->" in plan
    # the user writes what was shown into the file: the study resumes with it
    sweep["scheduler"] = {"type": "asha", "min_usd": float(shown_min.group(1)), "max_usd": float(listed.group(2))}
    sweep["budget"]["trials"] = 2
    again = _cli("run", str(_write(path, sweep)), "--db", db, "--quiet")
    assert again.exit_code == 0, again.output
