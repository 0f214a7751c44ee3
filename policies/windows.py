"""Where a window starts and ends, and its ledger scope key.

A window starts at local midnight (``zoneinfo``) of its period's first day in the policy's time zone,
so a daily window is 23 or 25 hours long on DST days. Its ledger scope key carries the start date
(``policy:vision-daily:daily:2026-11-30``): a new day or month is a new scope that starts at zero,
with no job resetting anything. A segment's money counts in the window it was reserved in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from costtune.policies.model import Policy, Window


@dataclass(frozen=True)
class WindowSpan:
    """One window: ``start``/``end`` aware datetimes in UTC (None for a total window) and its scope key."""

    scope: str
    start: datetime | None
    end: datetime | None
    label: str  # what a person reads: "daily 2026-11-30 (Europe/Lisbon)"

    def elapsed_fraction(self, now: datetime) -> float:
        """How far through the window ``now`` is, from 0 to 1 (total windows: 1)."""
        if self.start is None or self.end is None:
            return 1.0
        length = (self.end - self.start).total_seconds()
        return min(1.0, max(0.0, (now - self.start).total_seconds() / length))


def window_start_date(window: Window, local: datetime) -> date:
    """The local date the window containing ``local`` (aware, in the window's zone) began on."""
    today = local.date()
    if window.period == "daily":
        return today
    if window.period == "weekly":
        return today - timedelta(days=(today.isoweekday() - window.reset_day) % 7)
    # monthly
    if today.day >= window.reset_day:
        return today.replace(day=window.reset_day)
    previous = today.replace(day=1) - timedelta(days=1)
    return previous.replace(day=window.reset_day)


def _next_start(window: Window, start: date) -> date:
    if window.period == "daily":
        return start + timedelta(days=1)
    if window.period == "weekly":
        return start + timedelta(days=7)
    month = start.month % 12 + 1
    return start.replace(year=start.year + (start.month == 12), month=month)


def span(policy: Policy, now: datetime) -> WindowSpan:
    """The window of ``policy`` that contains ``now`` (an aware datetime; a naive one is taken as UTC)."""
    window = policy.window
    if window.period == "total":
        return WindowSpan(f"policy:{policy.name}:total", None, None, "total")
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    zone = ZoneInfo(window.timezone)
    first = window_start_date(window, now.astimezone(zone))
    nxt = _next_start(window, first)
    start = datetime(first.year, first.month, first.day, tzinfo=zone).astimezone(UTC)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone).astimezone(UTC)
    key = f"policy:{policy.name}:{window.period}:{first.isoformat()}"
    return WindowSpan(key, start, end, f"{window.period} from {first.isoformat()} ({window.timezone})")


def forecast_micros(committed: int, window: WindowSpan, now: datetime) -> int:
    """Spend at the window's end at the run rate so far: committed / elapsed fraction, with the fraction
    counted as at least a tenth (the first minutes of a window do not extrapolate from one launch)."""
    fraction = window.elapsed_fraction(now)
    if fraction >= 1.0:
        return committed
    return int(committed / max(fraction, 0.1))
