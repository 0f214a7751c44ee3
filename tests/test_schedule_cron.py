"""Standard cron semantics of schedules (issue 11 findings): Sunday is 0 and 7, 1-5 is Monday to
Friday, names, the day-of-month / day-of-week OR rule, and errors naming the flag and the value."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from costtune.errors import SpecError
from costtune.spec.cron import parse_cron
from costtune.spec.schedule_timing import make_trigger, next_fire, parse_every

SUNDAY = datetime(2026, 3, 1, 12, tzinfo=UTC)  # a Sunday, noon


def fires(cron: str, tz: str = "UTC", after: datetime = SUNDAY, n: int = 4) -> list[str]:
    trigger = make_trigger(cron=cron, every=None, tz=tz, anchor=after)
    out, t = [], after
    for _ in range(n):
        t = next_fire(trigger, t)
        out.append(t.astimezone(UTC).strftime("%a %Y-%m-%d %H:%M"))
    return out


@pytest.mark.parametrize("cron", ["0 2 * * 0", "0 2 * * 7", "0 2 * * sun", "0 2 * * SUN"])
def test_sunday_is_0_and_7_and_sun(cron: str) -> None:
    assert fires(cron, n=2) == ["Sun 2026-03-08 02:00", "Sun 2026-03-15 02:00"]


def test_1_to_5_is_monday_to_friday() -> None:
    assert fires("30 6 * * 1-5", n=6) == ["Mon 2026-03-02 06:30", "Tue 2026-03-03 06:30", "Wed 2026-03-04 06:30",
                                          "Thu 2026-03-05 06:30", "Fri 2026-03-06 06:30", "Mon 2026-03-09 06:30"]
    assert fires("30 6 * * mon-fri", n=6) == fires("30 6 * * 1-5", n=6)


def test_lists_steps_and_ranges() -> None:
    assert fires("*/20 9-10 * * sat", n=7) == [
        "Sat 2026-03-07 09:00", "Sat 2026-03-07 09:20", "Sat 2026-03-07 09:40", "Sat 2026-03-07 10:00",
        "Sat 2026-03-07 10:20", "Sat 2026-03-07 10:40", "Sat 2026-03-14 09:00"]
    assert fires("0 0 1 jan,jul *", n=2) == ["Wed 2026-07-01 00:00", "Fri 2027-01-01 00:00"]
    assert parse_cron("0 0 * * 5/1").weekdays == frozenset({5, 6, 0})  # 5-7: Friday to Sunday


def test_day_of_month_or_day_of_week_when_both_restricted() -> None:
    # Vixie cron: the 13th of any month OR any Friday (APScheduler would need both)
    assert fires("0 0 13 * 5", n=4) == ["Fri 2026-03-06 00:00", "Fri 2026-03-13 00:00",
                                        "Fri 2026-03-20 00:00", "Fri 2026-03-27 00:00"]
    assert fires("0 0 13 * 5", after=datetime(2026, 4, 5, tzinfo=UTC), n=3) == [
        "Fri 2026-04-10 00:00", "Mon 2026-04-13 00:00", "Fri 2026-04-17 00:00"]
    # a star in either day field: both must match (here: Fridays only, every day of month)
    assert fires("0 0 */1 * 5", n=1) == fires("0 0 * * 5", n=1)


def test_new_york_dst_days_at_two_local() -> None:
    # 2026-03-08 spring forward (02:00 does not exist: fires 03:00 EDT), 2026-11-01 fall back
    assert fires("0 2 * * *", "America/New_York", datetime(2026, 3, 7, 12, tzinfo=UTC), 2) == [
        "Sun 2026-03-08 07:00", "Mon 2026-03-09 06:00"]
    assert fires("0 2 * * 0", "America/New_York", datetime(2026, 10, 31, 12, tzinfo=UTC), 2) == [
        "Sun 2026-11-01 07:00", "Sun 2026-11-08 07:00"]


@pytest.mark.parametrize(("cron", "words"), [
    ("0 2 * * 8", "day of week 8 is out of range 0-7"),
    ("0 24 * * *", "hour 24 is out of range 0-23"),
    ("x * * * *", "minute 'x' is not a number"),
    ("0 2 * *", "must have 5 fields"),
    ("*/0 * * * *", "step '0'"),
    ("0 0 * * fri-mon", "runs backwards"),
    ("0 0 31 feb *", "never fires"),
])
def test_errors_name_the_flag_and_value(cron: str, words: str) -> None:
    with pytest.raises(SpecError) as err:
        make_trigger(cron=cron, every=None, tz="UTC", anchor=SUNDAY)
    assert str(err.value).startswith("--cron: ") and words in str(err.value) and repr(cron) in str(err.value)


def test_refresh_prices_flag_is_named() -> None:
    with pytest.raises(SpecError, match=r"^--refresh-prices-cron: .*got bad"):
        parse_cron("bad", "--refresh-prices-cron")


def test_every_limits_and_exactly_one_timing() -> None:
    with pytest.raises(SpecError, match=r"at most 366 days.*got 99999d"):
        parse_every("99999d")
    assert parse_every("366d") == 366 * 86400
    with pytest.raises(SpecError) as err:
        make_trigger(cron=None, every=None, tz="UTC", anchor=SUNDAY)
    assert "neither was given" in str(err.value) and "{" not in str(err.value)


def test_the_price_refresh_job_uses_standard_cron_too() -> None:
    from costtune.schedules.daemon import _StandardCron

    trigger = _StandardCron("0 4 * * 0")  # the APScheduler trigger of --refresh-prices-cron
    fire = trigger.get_next_fire_time(None, SUNDAY)
    assert fire.astimezone(UTC).strftime("%a %Y-%m-%d %H:%M") == "Sun 2026-03-08 04:00"
    assert trigger.get_next_fire_time(None, fire) == fire  # due now: APScheduler asks with now == fire time
