"""When a schedule fires: cron expressions in a time zone, or a fixed interval, as pure functions.

``next_fire(trigger, after)`` is the only clock-free question the scheduler asks: the first fire
time strictly after ``after`` (an aware datetime). Nothing here reads the system clock, so tests
drive it with any ``now`` they like.

Cron expressions are standard five-field cron (``costtune.spec.cron``: 0 and 7 are Sunday, names,
ranges, lists, steps, and Vixie cron's rule that a day matches when EITHER a restricted day of month
or a restricted day of week does) -- not APScheduler's own dialect, which counts Monday as 0.
The expression is evaluated on the *wall clock* of the
schedule's time zone, then each wall time is turned into an instant by these rules:

- **Spring forward (a wall time that does not exist)**: the run fires at the same wall time shifted by
  the length of the gap, i.e. ``0 2 * * *`` in America/New_York fires at 03:00 EDT on the day 02:00 is
  skipped -- once, like the cron implementations that run jobs whose time was skipped. Several
  skipped wall times that land on one instant fire once.
- **Fall back (a wall time that happens twice)**: the run fires at the first occurrence only (the
  daylight-saving one, ``fold=0``); the repeated hour does not fire again.

``--every`` schedules are plain elapsed time from their anchor (the time they were added), so they
know nothing of daylight saving: ``every 6h`` is 6 real hours apart all year.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from costtune.errors import SpecError
from costtune.spec.cron import parse_cron
from costtune.zones import iana_zone

_EVERY = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_EVERY_S = 60  # a sweep every few seconds is a mistake, not a schedule
MAX_EVERY_S = 366 * 86400  # an interval longer than a year is a typo, not a schedule
_SEARCH_DAYS = 366 * 5  # a cron that matches nothing in 5 years (e.g. 30 February) is refused


@dataclass(frozen=True)
class Trigger:
    """A schedule's timing: exactly one of ``cron`` (with ``tz``) or ``every_s`` (with ``anchor``)."""

    cron: str | None
    tz: str
    every_s: int | None = None
    anchor: datetime | None = None  # aware; interval schedules fire at anchor + k * every_s

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron {self.cron!r} ({self.tz})"
        return f"every {format_every(self.every_s or 0)}"

    def to_dict(self) -> dict[str, object]:
        return {"cron": self.cron, "tz": self.tz, "every_s": self.every_s,
                "anchor": None if self.anchor is None else self.anchor.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Trigger:
        anchor = data.get("anchor")
        return cls(cron=data.get("cron"), tz=str(data.get("tz") or "UTC"),  # type: ignore[arg-type]
                   every_s=data.get("every_s"),  # type: ignore[arg-type]
                   anchor=None if anchor is None else datetime.fromisoformat(str(anchor)))


def zone(tz: str, field: str = "--tz") -> ZoneInfo:
    """The IANA time zone ``tz``; ``SpecError`` naming ``field`` when there is no such zone."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise SpecError(field, "is not a known IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)",
                        tz) from None


def parse_every(text: str, field: str = "--every") -> int:
    """``"6h"`` -> 21600 seconds; units s, m, h, d; at least one minute."""
    match = _EVERY.match(str(text))
    if not match:
        raise SpecError(field, "must be a number and a unit s, m, h or d (e.g. 30m, 6h, 1d)", text)
    seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds < MIN_EVERY_S:
        raise SpecError(field, f"must be at least {MIN_EVERY_S} seconds", text)
    if seconds > MAX_EVERY_S:
        raise SpecError(field, f"must be at most {MAX_EVERY_S // 86400} days (use --cron for yearly runs)", text)
    return seconds


def format_every(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def make_trigger(*, cron: str | None, every: str | None, tz: str, anchor: datetime) -> Trigger:
    """Validate the timing flags; ``SpecError`` names the flag and the value.

    Exactly one of ``cron`` / ``every``. A cron expression must have five fields and match at
    least once in five years.
    """
    if (cron is None) == (every is None):
        given = "neither was given" if cron is None else f"both were given (--cron {cron!r}, --every {every!r})"
        raise SpecError("--cron/--every", f"give exactly one of --cron EXPR or --every INTERVAL; {given}")
    tz = iana_zone(tz, "--tz")
    if every is not None:
        return Trigger(cron=None, tz=tz, every_s=parse_every(every), anchor=anchor.astimezone(UTC))
    assert cron is not None
    fields = cron.split()
    parse_cron(cron)
    trigger = Trigger(cron=" ".join(fields), tz=tz)
    if next_fire(trigger, anchor) is None:
        raise SpecError("--cron", "never fires (no date matches it in five years)", cron)
    return trigger


def to_instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """A naive wall time in ``tz`` -> the aware UTC instant it fires at (rules in the module doc)."""
    local = wall.replace(tzinfo=tz, fold=0)
    back = local.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    if back != wall:  # in a spring-forward gap: shift by the gap's length
        gap = local.utcoffset() - wall.replace(tzinfo=tz, fold=1).utcoffset()  # type: ignore[operator]
        local = (wall + abs(gap)).replace(tzinfo=tz, fold=0)
    return local.astimezone(UTC)


def next_fire(trigger: Trigger, after: datetime) -> datetime | None:
    """The first fire time strictly after ``after`` (aware), as an aware UTC datetime; None if none.

    Pure: no clock is read. Cron schedules follow the daylight-saving rules of the module doc.
    """
    after = after.astimezone(UTC)
    if trigger.every_s is not None:
        anchor = (trigger.anchor or after).astimezone(UTC)
        if after < anchor:
            return anchor
        steps = int((after - anchor).total_seconds() // trigger.every_s) + 1
        return anchor + timedelta(seconds=steps * trigger.every_s)
    assert trigger.cron is not None
    tz = zone(trigger.tz)
    cron = parse_cron(trigger.cron)
    # near a clock change, start a few hours back on the wall clock: a gap shifts wall times forward
    back = timedelta(hours=4, minutes=1)
    calm = (after - back).astimezone(tz).utcoffset() == after.astimezone(tz).utcoffset()
    probe = after.astimezone(tz).replace(tzinfo=None) - (timedelta(minutes=1) if calm else back)
    limit = probe + timedelta(days=_SEARCH_DAYS)
    while probe < limit:
        candidate = cron.next_after(probe, limit_days=(limit - probe).days)
        if candidate is None:
            return None
        instant = to_instant(candidate, tz)
        if instant > after:
            return instant
        probe = candidate
    return None


def fire_times(trigger: Trigger, after: datetime, until: datetime, limit: int = 10_000) -> list[datetime]:
    """Every fire time in ``(after, until]``, oldest first, at most ``limit`` (the newest kept)."""
    out: list[datetime] = []
    current = after
    while True:
        nxt = next_fire(trigger, current)
        if nxt is None or nxt > until:
            return out
        out.append(nxt)
        if len(out) > limit:
            out.pop(0)
        current = nxt
