"""Input checks of `schedule add / update` and `scheduler` (issue 11 findings): errors name the flag
and what the user typed, exit 2 and store nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_schedule_cli import cli, write
from test_scheduler import sweep

from costtune.store import Store


@pytest.mark.parametrize(("args", "words"), [
    (["--cron", "0 2 * * *", "--summary-dir", "/proc/x"], "--summary-dir: is inside /proc"),
    (["--cron", "0 2 * * *", "--cap", "0.0000001"], "--cap: must be at least $0.000001"),
    (["--every", "99999d"], "--every: must be at most 366 days"),
    (["--every", "6h", "--tz", "Europe/Berlin"], "--tz: applies to --cron schedules only"),
    (["--cron", "0 2 * * 8"], "--cron: day of week 8 is out of range 0-7"),
    ([], "give exactly one of --cron EXPR or --every INTERVAL; neither was given"),
])
def test_bad_schedule_input_exits_2_and_stores_nothing(tmp_path: Path, args: list[str], words: str) -> None:
    db = str(tmp_path / "s.db")
    result = cli("schedule", "add", "q1", write(tmp_path, sweep()), *args, "--db", db)
    assert result.exit_code == 2, result.output
    assert words in result.output and "{" not in result.output
    if "--cap" in args:
        assert "'0.0000001'" in result.output  # what was typed, not "got 0"
    store = Store(f"sqlite:///{db}")
    assert store.list_schedules() == []
    store.close()


def test_update_without_a_change_says_so_and_wrong_case_is_hinted(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    assert cli("schedule", "add", "Q1", write(tmp_path, sweep()), "--every", "1d", "--db", db).exit_code == 0
    result = cli("schedule", "update", "Q1", "--db", db)
    assert result.exit_code == 0 and "nothing changed" in result.output
    missing = cli("schedule", "show", "q1", "--db", db)
    assert missing.exit_code == 2 and "did you mean 'Q1'" in missing.output
    moved = cli("schedule", "update", "Q1", "--tz", "UTC", "--db", db)
    assert moved.exit_code == 2 and "--tz: applies to --cron schedules only" in moved.output


def test_scheduler_names_the_refresh_prices_flag(tmp_path: Path) -> None:
    result = cli("scheduler", "--once", "--refresh-prices-cron", "bad", "--db", str(tmp_path / "s.db"))
    assert result.exit_code == 2 and "--refresh-prices-cron: must have 5 fields" in result.output
    assert "'bad'" in result.output
