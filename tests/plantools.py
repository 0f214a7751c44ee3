"""What the `costtune plan` tests share: the CLI run in this process on a wide console, and a plan as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from costtune.cli import main


def cli(*args: str) -> Result:
    """``costtune ARGS`` in this process; tables on 200 columns, so no cell wraps."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


def plan_json(path: Path, db: Path, *flags: str) -> dict[str, Any]:
    """`costtune plan PATH --db DB --format json --no-forecast FLAGS`, which must exit 0, as a mapping."""
    result = cli("plan", str(path), "--db", str(db), "--format", "json", "--no-forecast", *flags)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)
