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


def span_of_scope(policy: Policy, scope: str) -> WindowSpan | None:
    """The window of ``policy`` whose ledger scope key is ``scope`` (``policy:NAME:daily:2026-11-30``, a
    past window too), None when the key is not one of its windows."""
    head = f"policy:{policy.name}:{policy.window.period}:"
    if policy.window.period == "total" or not scope.startswith(head):
        return None
    try:
        first = date.fromisoformat(scope[len(head):])
    except ValueError:
        return None
    noon = datetime(first.year, first.month, first.day, 12, tzinfo=ZoneInfo(policy.window.timezone))
    found = span(policy, noon)
    return found if found.scope == scope else None


def forecast_micros(committed: int, window: WindowSpan, now: datetime) -> int:
    """Spend at the window's end at the run rate so far: committed / elapsed fraction, with the fraction
    counted as at least a tenth (the first minutes of a window do not extrapolate from one launch)."""
    fraction = window.elapsed_fraction(now)
    if fraction >= 1.0:
        return committed
    return int(committed / max(fraction, 0.1))


@dataclass(frozen=True)
class WindowForecast:
    """Where a capped window is heading, the one rule of ``costtune policy status`` and the dashboard.

    ``pace_micros``: committed spend at the window's end at the run rate so far (``forecast_micros``);
    ``forecast_micros``: that held to a hard cap (launches stop at it; never below what is committed);
    ``at_cap``: the two differ (shown ``(cap)``); ``rate_micros_per_hour``: the rate the pace assumes for
    the rest of the window (for an ended window, its committed spend over its length);
    ``left_at_end_micros``: the cap less the forecast, at least 0 (None without a cap);
    ``cap_reached_at``: when the cap is reached at that rate, if before the window's end (else None).
    Money in micro-dollars."""

    pace_micros: int
    forecast_micros: int
    at_cap: bool
    rate_micros_per_hour: int
    left_at_end_micros: int | None
    cap_reached_at: datetime | None


def window_forecast(committed: int, cap: int | None, window: WindowSpan, now: datetime) -> WindowForecast | None:
    """The forecast of a window that has ``committed`` micro-dollars (spent + held) under ``cap`` (None:
    no hard cap) at ``now`` (aware; naive is UTC); None for a total window (it has no end)."""
    if window.start is None or window.end is None:
        return None
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    pace = forecast_micros(committed, window, now)
    forecast = pace if cap is None else min(pace, max(cap, committed))
    left_hours = max(0.0, (window.end - now).total_seconds() / 3600)
    if left_hours > 0:
        rate = (pace - committed) / left_hours
    else:
        rate = committed / max((window.end - window.start).total_seconds() / 3600, 1e-9)
    reached = None
    if cap is not None and committed < cap < pace and rate > 0:
        reached = now + timedelta(hours=(cap - committed) / rate)
    return WindowForecast(pace, forecast, forecast != pace, int(rate),
                          None if cap is None else max(0, cap - forecast), reached)
