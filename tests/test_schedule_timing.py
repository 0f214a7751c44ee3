"""When a schedule fires: cron in a time zone across daylight-saving changes, intervals, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from costtune.errors import SpecError
from costtune.spec.schedule_timing import fire_times, make_trigger, next_fire, zone

NY = zone("America/New_York")
ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)


def cron(expr: str, tz: str = "America/New_York"):  # type: ignore[no-untyped-def]
    return make_trigger(cron=expr, every=None, tz=tz, anchor=ANCHOR)


def local_fires(trigger, start: datetime, end: datetime) -> list[datetime]:  # type: ignore[no-untyped-def]
    return [t.astimezone(NY) for t in fire_times(trigger, start, end)]


def test_two_am_fires_at_two_local_around_both_dst_changes() -> None:
    nightly = cron("0 2 * * *")
    # US 2026: clocks spring forward on 8 March (02:00 -> 03:00) and fall back on 1 November
    spring = local_fires(nightly, datetime(2026, 3, 6, 12, tzinfo=UTC), datetime(2026, 3, 10, 12, tzinfo=UTC))
    assert [(t.day, t.hour, t.minute) for t in spring] == [(7, 2, 0), (8, 3, 0), (9, 2, 0), (10, 2, 0)]
    # 02:00 does not exist on 8 March: the run fires once, at 03:00 EDT (07:00 UTC), like cron
    assert spring[1].astimezone(UTC) == datetime(2026, 3, 8, 7, tzinfo=UTC)
    assert spring[0].astimezone(UTC).hour == 7 and spring[2].astimezone(UTC).hour == 6  # EST, then EDT
    fall = local_fires(nightly, datetime(2026, 10, 30, 12, tzinfo=UTC), datetime(2026, 11, 3, 12, tzinfo=UTC))
    assert [(t.day, t.hour) for t in fall] == [(31, 2), (1, 2), (2, 2), (3, 2)]
    assert fall[1].astimezone(UTC) == datetime(2026, 11, 1, 7, tzinfo=UTC)  # 02:00 EST, after the repeated hour


def test_a_time_in_the_repeated_hour_fires_once() -> None:
    early = cron("30 1 * * *")
    fires = fire_times(early, datetime(2026, 10, 31, 12, tzinfo=UTC), datetime(2026, 11, 1, 23, tzinfo=UTC))
    assert fires == [datetime(2026, 11, 1, 5, 30, tzinfo=UTC)]  # 01:30 EDT; 01:30 EST does not fire again


def test_half_hourly_through_the_gap_never_fires_twice_at_one_instant() -> None:
    half = cron("*/30 * * * *")
    fires = fire_times(half, datetime(2026, 3, 8, 6, 0, tzinfo=UTC), datetime(2026, 3, 8, 8, 0, tzinfo=UTC))
    assert len(fires) == len(set(fires))
    assert [t.astimezone(NY).strftime("%H:%M") for t in fires] == ["01:30", "03:00", "03:30", "04:00"]


def test_next_fire_is_strictly_after_and_pure() -> None:
    daily = cron("0 2 * * *", tz="UTC")
    at = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)
    assert next_fire(daily, at) == at + timedelta(days=1)
    assert next_fire(daily, at - timedelta(seconds=1)) == at
    assert next_fire(daily, at) == next_fire(daily, at)  # same answer every time: no clock read


def test_every_counts_real_time_from_its_anchor() -> None:
    anchor = datetime(2026, 3, 7, 20, 0, tzinfo=UTC)
    six = make_trigger(cron=None, every="6h", tz="America/New_York", anchor=anchor)
    fires = fire_times(six, anchor, anchor + timedelta(days=1))
    assert [(t - anchor).total_seconds() / 3600 for t in fires] == [6, 12, 18, 24]  # DST changes nothing
    assert next_fire(six, anchor - timedelta(days=3)) == anchor


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"cron": "0 25 * * *"}, "--cron"),
    ({"cron": "0 2 * *"}, "--cron"),
    ({"cron": "0 0 30 2 *"}, "--cron"),  # 30 February never comes
    ({"cron": "0 2 * * *", "tz": "Mars/Olympus"}, "--tz"),
    ({"every": "5s"}, "--every"),
    ({"every": "6 hours"}, "--every"),
    ({"cron": "0 2 * * *", "every": "6h"}, "--cron/--every"),
    ({}, "--cron/--every"),
])
def test_bad_timing_names_the_flag(kwargs: dict[str, str], field: str) -> None:
    args = {"cron": None, "every": None, "tz": "UTC", **kwargs}
    with pytest.raises(SpecError) as caught:
        make_trigger(anchor=ANCHOR, **args)  # type: ignore[arg-type]
    assert caught.value.path == field
