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
    (["--cron", "0 2 * * *", "--tz", ""], "--tz: must be an IANA time zone name (such as UTC, Europe/Lisbon); "
                                          "leave --tz out for UTC, got ''"),
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
    assert "got bad" in result.output


def test_json_formats_give_money_twice_and_iso_times(tmp_path: Path) -> None:
    import json

    from test_scheduler import Clock, daemon, ts

    from costtune.spec.schedule_settings import ScheduleSettings
    from costtune.spec.schedule_timing import make_trigger

    db = str(tmp_path / "s.db")
    store = Store(f"sqlite:///{db}")
    from datetime import UTC, datetime

    trigger = make_trigger(cron="0 2 * * *", every=None, tz="UTC", anchor=datetime.fromtimestamp(ts(2026, 3, 6), UTC))
    store.add_schedule("nightly", trigger=trigger, sweep=sweep(trials=2), sweep_source=None,
                       settings=ScheduleSettings(artifact_root=str(tmp_path / "m"), summary_dir=str(tmp_path / "s"),
                                                 cap_micros=500_000), now_s=ts(2026, 3, 6))
    daemon(store, Clock(ts(2026, 3, 7, 2) + 5), "d").run_pending()
    store.close()
    (listed,) = json.loads(cli("schedule", "list", "--format", "json", "--db", db).output)
    assert (listed["cap_micros"], listed["cap_usd"]) == (500_000, "0.5")
    assert listed["last_run"]["fire_time"] == "2026-03-07T02:00:00Z" and listed["last_run"]["state"] == "finished"
    assert listed["last_run"]["spent_micros"] > 0 and listed["next_run"] == "2026-03-08T02:00:00Z"
    (version,) = json.loads(cli("models", "list", "--format", "json", "--db", db).output)
    from decimal import Decimal

    assert Decimal(version["run_cost_usd"]) * 1_000_000 == version["run_cost_micros"] > 0
    assert isinstance(version["run_cost_micros"], int) and version["created_at"].endswith("Z")
    assert json.loads(cli("models", "show", "nightly", "--json", "--db", db).output)["ref"] == "nightly:1"
    table = cli("models", "show", "nightly", "--db", db).output
    assert "ref: nightly:1" in table and "run_cost_usd:" in table
    assert cli("schedule", "pause", "nightly", "--db", db).exit_code == 0
    (paused,) = json.loads(cli("schedule", "list", "--format", "json", "--db", db).output)
    assert paused["next_run"] is None and paused["state"] == "paused"
    assert "- (paused)" in cli("schedule", "show", "nightly", "--db", db).output


def test_schedule_list_at_80_columns_cuts_no_word(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    db = str(tmp_path / "s.db")
    for name in ("a", "b"):
        assert cli("schedule", "add", name, write(tmp_path, sweep()), "--cron", "0 2 * * 1-5",
                   "--tz", "America/Argentina/Buenos_Aires", "--db", db).exit_code == 0
    out = subprocess.run([sys.executable, "-m", "costtune.cli", "schedule", "list", "--db", db],
                         env={**os.environ, "COLUMNS": "80"}, capture_output=True, text=True, check=True).stdout
    assert all(len(line) <= 80 for line in out.splitlines()), out
    assert "2026" in out or "2027" in out  # the next run is kept whole
    assert "timing" in out.split("not shown")[0]  # it fits, wrapped at a space: the zone is whole on one line
    assert "(America/Argentina/Buenos_Aires)" in out


@pytest.mark.parametrize("tz", ["localtime", "posix/Europe/Lisbon", "right/UTC", "Factory", "Mars/Base"])
def test_only_iana_zones_pass_in_schedules_policy_windows_and_spend(tmp_path: Path, tz: str) -> None:
    """NU1 item 9: localtime and posix/ or right/ copies were accepted (localtime differs between machines
    sharing a store) while utc was refused; one validator, naming the field and the value, for all three."""
    from costtune.policies import parse_policy

    from costtune.errors import SpecError

    db = str(tmp_path / "s.db")
    result = cli("schedule", "add", "q1", write(tmp_path, sweep()), "--cron", "0 2 * * *", "--tz", tz, "--db", db)
    assert result.exit_code == 2, result.output
    assert "--tz: is not a known IANA time zone" in result.output and f"got {tz}" in result.output
    with pytest.raises(SpecError) as caught:
        parse_policy({"name": "p", "cap_usd": 1, "window": {"period": "daily", "timezone": tz}})
    assert caught.value.path == "window.timezone" and f"got {tz}" in str(caught.value)
    spend = cli("spend", "--by", "day", "--timezone", tz, "--db", db)
    assert spend.exit_code == 2 and "--timezone: is not a known IANA time zone" in spend.output
    assert f"got {tz}" in spend.output
    store = Store(f"sqlite:///{db}")
    assert store.list_schedules() == []
    store.close()


def test_utc_in_any_case_is_utc_everywhere(tmp_path: Path) -> None:
    from costtune.policies import parse_policy

    db = str(tmp_path / "s.db")
    added = cli("schedule", "add", "q1", write(tmp_path, sweep()), "--cron", "0 2 * * *", "--tz", "utc", "--db", db)
    assert added.exit_code == 0, added.output
    assert "(UTC)" in cli("schedule", "show", "q1", "--db", db).output
    assert parse_policy({"name": "p", "cap_usd": 1, "window": {"period": "daily", "timezone": "utc"}}
                        ).window.timezone == "UTC"
    assert parse_policy({"name": "p", "cap_usd": 1, "window": {"period": "daily", "timezone": "Etc/UTC"}}
                        ).window.timezone == "Etc/UTC"
    assert cli("spend", "--by", "day", "--timezone", "utc", "--db", db).exit_code == 0


def test_coalesced_runs_and_summary_files_show_iso_times_not_epoch_seconds(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """NU1 item 11: `schedule show` said "coalesced into the run of 1796078625" and the summary file had
    "fire_time": 1796077443, where the README promises ISO 8601; an older store's reason and summary read
    the new way."""
    import json
    import re
    from datetime import UTC, datetime

    from sqlmodel import Session, select
    from test_scheduler import Clock, daemon, ts

    from costtune.cli.common import out_console
    from costtune.schedules.records import summary_times
    from costtune.spec.schedule_settings import ScheduleSettings
    from costtune.spec.schedule_timing import make_trigger
    from costtune.store.schedule_models import ScheduleRunRow

    monkeypatch.setattr(out_console, "width", 200)  # the note column is shown whole
    db = str(tmp_path / "s.db")
    store = Store(f"sqlite:///{db}")
    trigger = make_trigger(cron="0 2 * * *", every=None, tz="UTC", anchor=datetime.fromtimestamp(ts(2026, 3, 6), UTC))
    store.add_schedule("co", trigger=trigger, sweep=sweep(trials=1), sweep_source=None,
                       settings=ScheduleSettings(summary_dir=str(tmp_path / "s"), misfire_grace_s=4 * 86400),
                       now_s=ts(2026, 3, 6))
    daemon(store, Clock(ts(2026, 3, 9, 12)), "d").run_pending()  # three nights due at once: coalesced
    (written,) = (tmp_path / "s").rglob("*.json")
    summary = json.loads(written.read_text())
    assert summary["fire_time"] == "2026-03-09T02:00:00Z" and summary["fire_s"] == ts(2026, 3, 9, 2)
    shown = cli("schedule", "show", "co", "--db", db).output
    assert "coalesced into the run of 2026-03-09T02:00:00Z" in " ".join(shown.split())
    assert not re.search(r"\b1\d{9}\b", shown)
    # a store written before: an epoch in the reason, an epoch fire_time in the summary
    with Session(store.engine) as s:
        for row in s.exec(select(ScheduleRunRow)).all():
            if row.reason and "coalesced" in row.reason:
                row.reason = f"coalesced into the run of {ts(2026, 3, 9, 2)}"
                s.add(row)
        s.commit()
    store.close()
    old = " ".join(cli("schedule", "show", "co", "--db", db).output.split())
    assert "coalesced into the run of 2026-03-09T02:00:00Z" in old and not re.search(r"\b1\d{9}\b", old)
    runs = json.loads(cli("schedule", "show", "co", "--format", "json", "--db", db).output)["runs"]
    assert "coalesced into the run of 2026-03-09T02:00:00Z" in json.dumps(runs)
    assert summary_times({"fire_time": ts(2026, 3, 9, 2)}) == {"fire_time": "2026-03-09T02:00:00Z",
                                                               "fire_s": ts(2026, 3, 9, 2)}


def test_without_any_zone_list_a_zone_zoneinfo_loads_still_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine with neither tzdata's list nor zone files must not refuse every zone but UTC: the name is then
    checked by loading it; the host's own `localtime` and the posix/right copies stay refused."""
    from costtune import zones
    from costtune.errors import SpecError

    monkeypatch.setattr(zones, "iana_names", lambda: frozenset())
    assert zones.iana_zone("Europe/Lisbon", "tz") == "Europe/Lisbon"
    for name in ("localtime", "posix/Europe/Lisbon", "Mars/Base"):
        with pytest.raises(SpecError, match="is not a known IANA time zone"):
            zones.iana_zone(name, "tz")
