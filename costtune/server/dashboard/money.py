"""The money and running-now pages' data: scopes against caps, burn-down with a forecast, live attempts.

Burn-down (per capped scope): the scope's charged reservations in the order they closed give its
spend over time; what is left of the cap is drawn against time. The forecast extends the average
spend rate of the scope so far (spent / time since its first reservation), and for a window scope
(``day:YYYY-MM-DD``, ``month:YYYY-MM``) says what is left at the window's end; for any other scope,
when the cap is reached at the rate now burning (open attempts' hourly rates). Money is integer
micro-dollars.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from costtune.reports.leaderboard import study_ladder
from costtune.server.dashboard.queries import iso, running_attempts, scope_rows
from costtune.store.ledger_models import ReservationRow

if TYPE_CHECKING:
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


def burn_down(store: Store, scope: str, cap: int, spent: int, burn_per_hour: int,
              now: datetime | None = None) -> dict[str, Any]:
    """``{"points": [[iso time, left micros], ...], "forecast": {...}}`` for one capped scope."""
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
    forecast: dict[str, Any] = {"rate_micros_per_hour": None, "left_at_end_micros": None, "cap_reached_at": None}
    end = window_end(scope)
    if first is not None and now > first:
        rate = spent / ((now - first).total_seconds() / 3600)
        forecast["rate_micros_per_hour"] = int(rate)
        if end is not None:
            forecast["window_end"] = iso(end)
            forecast["left_at_end_micros"] = int(cap - spent - rate * max(0.0, (end - now).total_seconds() / 3600))
    if burn_per_hour > 0 and cap > spent:
        forecast["cap_reached_at"] = iso(now + timedelta(hours=(cap - spent) / burn_per_hour))
    return {"points": points, "forecast": forecast}


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


def spend_overview(store: Store) -> dict[str, Any]:
    """Scopes (cap, spent, reserved, share used, burn-down) and the money burning now, per hour."""
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
            row["burn_down"] = burn_down(store, row["scope"], row["cap_micros"], row["spent_micros"], burn)
    audit = [{"at": iso(e.at), "actor": e.actor, "action": e.action, "study_id": e.study_id, "detail": e.detail}
             for e in store.audit_log()[-50:]]
    return {"scopes": scopes, "burn_micros_per_hour": total_burn, "running": len(running),
            "audit": list(reversed(audit))}
