"""The money and running-now pages' data: scopes against caps, burn-down with a forecast, live attempts.

Burn-down (per capped scope): the scope's charged reservations in the order they closed give its
spend over time; what is left of the cap is drawn against time. For a window scope (a spend
policy's ``policy:NAME:daily:2026-11-30``, or a UTC ``day:YYYY-MM-DD`` / ``month:YYYY-MM``) the
forecast is ``costtune policy status``'s, by the same function (``policies.windows.window_forecast``):
spend at the window's end at the run rate since the window began (held to a hard cap), what is left
then, the rate that assumes and when the cap is reached at it. For any other scope: the average rate
since its first charge, and when the cap is reached at the rate now burning (open attempts' hourly
rates). Money is integer micro-dollars.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from costtune.policies.windows import WindowSpan, span, span_of_scope, window_forecast
from costtune.reports.leaderboard import study_ladder
from costtune.server.dashboard.queries import iso, running_attempts, scope_rows
from costtune.store.ledger_models import ReservationRow

if TYPE_CHECKING:
    from costtune.policies.model import Policy
    from costtune.store import Store

POINTS_MAX = 400


def window_end(scope: str) -> datetime | None:
    """The end (UTC) of a calendar window scope, None for any other scope."""
    kind, _, rest = scope.partition(":")
    try:
        if kind == "day":
            return datetime.strptime(rest, "%Y-%m-%d").replace(tzinfo=UTC) + timedelta(days=1)
        if kind == "month":
            start = datetime.strptime(rest, "%Y-%m").replace(tzinfo=UTC)
            return (start + timedelta(days=32)).replace(day=1)
    except ValueError:
        return None
    return None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def calendar_span(scope: str) -> WindowSpan | None:
    """The UTC day or month of a ``day:YYYY-MM-DD`` / ``month:YYYY-MM`` scope, None for any other scope."""
    end = window_end(scope)
    if end is None:
        return None
    kind, _, rest = scope.partition(":")
    start = datetime.strptime(rest, "%Y-%m-%d" if kind == "day" else "%Y-%m").replace(tzinfo=UTC)
    return WindowSpan(scope, start, end, scope)


def _policy_window(scope: str, policies: list[Policy], now: datetime) -> tuple[WindowSpan, int | None] | None:
    """The window of a spend policy's scope and its cap in force (the policy's, as `costtune policy status`
    reads it, for its current window), None for a scope of no policy in force."""
    for policy in policies:
        current = span(policy, now)
        if current.scope == scope:
            return current, policy.cap_micros
        past = span_of_scope(policy, scope)
        if past is not None:
            return past, None
    return None


def burn_down(store: Store, scope: str, cap: int, spent: int, burn_per_hour: int,
              now: datetime | None = None, *, held: int = 0,
              window: tuple[WindowSpan, int | None] | None = None) -> dict[str, Any]:
    """``{"points": [[iso time, left micros], ...], "forecast": {...}}`` for one capped scope.

    ``window``: the scope's window and the cap its forecast uses (None: the ledger's ``cap``); without
    one, a ``day:``/``month:`` scope is its UTC calendar window. ``held``: micro-dollars held now."""
    now = now or datetime.now(UTC)
    with Session(store.engine) as s:
        rows = s.exec(select(ReservationRow.created_at, ReservationRow.closed_at, ReservationRow.charged_micros,
                             ReservationRow.scopes_json)
                      .where(col(ReservationRow.scopes_json).contains(json.dumps(scope)))
                      .where(ReservationRow.state == "charged")
                      .order_by(col(ReservationRow.closed_at))).all()
    total, points, first = 0, [], None
    for created, closed, charged, scopes in rows:
        if scope not in json.loads(scopes):
            continue
        first = first or _aware(created)
        total += int(charged or 0)
        points.append([iso(_aware(closed or created)), cap - total])
    if len(points) > POINTS_MAX:  # keep the shape, not every charge
        step = len(points) / POINTS_MAX
        points = [points[int(i * step)] for i in range(POINTS_MAX)] + [points[-1]]
    if first is not None:
        points.insert(0, [iso(first), cap])
    if window is None:
        calendar = calendar_span(scope)
        window = None if calendar is None else (calendar, None)
    if window is not None:
        return {"points": points, "forecast": _window_forecast(window[0], cap if window[1] is None else window[1],
                                                               spent + held, now)}
    forecast: dict[str, Any] = {"rate_micros_per_hour": None, "left_at_end_micros": None, "cap_reached_at": None}
    if first is not None and now > first:
        forecast["rate_micros_per_hour"] = int(spent / ((now - first).total_seconds() / 3600))
    if burn_per_hour > 0 and cap > spent:
        forecast["cap_reached_at"] = iso(now + timedelta(hours=(cap - spent) / burn_per_hour))
    return {"points": points, "forecast": forecast}


def _window_forecast(window: WindowSpan, cap: int, committed: int, now: datetime) -> dict[str, Any]:
    """A window scope's forecast, the figures `costtune policy status` shows (``window_forecast``)."""
    ahead = window_forecast(committed, cap, window, now)
    assert ahead is not None  # a window scope has a start and an end
    return {"window_start": iso(window.start), "window_end": iso(window.end),
            "forecast_micros": ahead.forecast_micros, "forecast_pace_micros": ahead.pace_micros,
            "forecast_at_cap": ahead.at_cap, "rate_micros_per_hour": ahead.rate_micros_per_hour,
            "left_at_end_micros": ahead.left_at_end_micros, "cap_reached_at": iso(ahead.cap_reached_at)}


def running_now(store: Store) -> list[dict[str, Any]]:
    """Every open attempt with its study's next dollar rung above the trial's spend (None without rungs)
    and the money still to go to it (``to_next_rung_micros``)."""
    rows = running_attempts(store)
    ladders: dict[int, tuple[int, ...] | None] = {}
    for row in rows:
        sid = row["study_id"]
        if sid not in ladders:
            info = next((s for s in store.list_studies() if s.id == sid), None)
            ladders[sid] = study_ladder(info.spec) if info else None
        ladder = ladders[sid] or ()
        nxt = next((level for level in ladder if level > row["trial_cost_micros"]), None)
        row["next_rung_micros"] = nxt
        row["to_next_rung_micros"] = None if nxt is None else nxt - row["trial_cost_micros"]
        rate = row["rate_micros_per_hour"]
        row["hours_to_next_rung"] = None if nxt is None or not rate else (nxt - row["trial_cost_micros"]) / rate
    return rows


def spend_overview(store: Store, now: datetime | None = None) -> dict[str, Any]:
    """Scopes (cap, spent, reserved, share used, burn-down) and the money burning now, per hour, as of
    ``now`` (default: the clock)."""
    now = now or datetime.now(UTC)
    policies = store.policies()
    running = running_attempts(store)
    burn_by_study: dict[str, int] = {}
    for row in running:
        key = f"study:{row['study_id']}"
        burn_by_study[key] = burn_by_study.get(key, 0) + row["rate_micros_per_hour"]
    total_burn = sum(r["rate_micros_per_hour"] for r in running)
    scopes = scope_rows(store)
    for row in scopes:
        burn = burn_by_study.get(row["scope"], total_burn if row["kind"] in ("day", "month") else 0)
        row["burn_micros_per_hour"] = burn
        committed = row["spent_micros"] + row["reserved_micros"]
        row["used"] = None if not row["cap_micros"] else committed / row["cap_micros"]
        if row["cap_micros"] is not None:
            window = _policy_window(row["scope"], policies, now) if row["kind"] == "policy" else None
            row["burn_down"] = burn_down(store, row["scope"], row["cap_micros"], row["spent_micros"], burn, now,
                                         held=row["reserved_micros"], window=window)
    audit = [{"at": iso(e.at), "actor": e.actor, "action": e.action, "study_id": e.study_id, "detail": e.detail}
             for e in store.audit_log()[-50:]]
    return {"scopes": scopes, "burn_micros_per_hour": total_burn, "running": len(running),
            "audit": list(reversed(audit))}
