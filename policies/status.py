"""Where each policy stands now: its current window's cap, spend, held money, forecast and alerts.

Read-only over the store (``balance``, ``fired_alerts``); used by ``costtune policy status``,
``costtune policy explain`` and ``costtune spend --policies``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from costtune.policies.model import Policy
from costtune.policies.windows import span, window_forecast


def window_rows(store: Any, policies: list[Policy], now: datetime) -> list[dict[str, Any]]:
    """One row per policy: name, scope, window label and key, start/end (ISO, UTC), cap, soft cap,
    spent, held, left (micro-dollars; None when uncapped), forecast to the window's end (the run rate's,
    ``forecast_pace_micros``, held to a hard cap: ``forecast_at_cap``), and the thresholds fired in this window."""
    fired: dict[str, list[str]] = {}
    for alert in store.fired_alerts():
        fired.setdefault(alert.scope, []).append(alert.threshold)
    rows = []
    for policy in policies:
        window = span(policy, now)
        _cap, spent, held = store.balance(window.scope)
        cap = policy.cap_micros
        # a hard cap stops launches at it: the window cannot end above it (nor below what it already committed)
        ahead = window_forecast(spent + held, cap, window, now)  # the dashboard's /money forecast too
        pace = None if ahead is None else ahead.pace_micros
        forecast = None if ahead is None else ahead.forecast_micros
        rows.append({
            "policy": policy.name, "scope": policy.scope_text, "window": window.label, "ledger_scope": window.scope,
            "window_start": window.start.isoformat() if window.start else None,
            "window_end": window.end.isoformat() if window.end else None,
            "cap_micros": cap, "soft_cap_micros": policy.soft_cap_micros, "spent_micros": spent,
            "held_micros": held, "left_micros": None if cap is None else max(0, cap - spent - held),
            "forecast_micros": forecast, "forecast_pace_micros": pace,
            "forecast_at_cap": ahead is not None and ahead.at_cap,
            "alerts_fired": fired.get(window.scope, []),
            "over_cap": cap is not None and spent + held > cap,
        })
    return rows


def over_cap_text(row: dict[str, Any]) -> str:
    """The warning for a window that already committed more than its (lowered) cap."""
    from costtune.money import format_usd

    committed = row["spent_micros"] + row["held_micros"]
    return (f"policy {row['policy']}: cap_usd {format_usd(row['cap_micros'])} is below what its {row['window']} "
            f"window already committed, {format_usd(committed)} ({format_usd(row['spent_micros'])} spent, "
            f"{format_usd(row['held_micros'])} held): nothing more launches in it until it ends; running "
            "trials stop when their reservations run out")


def rules_text(policy: Policy) -> str:
    """The launch rules in one line (``-`` when none)."""
    r = policy.rules
    parts = []
    for label, values in (("types", r.allowed_instance_types), ("not types", r.denied_instance_types),
                          ("families", r.allowed_families), ("not families", r.denied_families),
                          ("regions", r.allowed_regions), ("not regions", r.denied_regions),
                          ("markets", r.allowed_markets)):
        if values:
            parts.append(f"{label} {','.join(values)}")
    if r.max_usd_per_hour_micros is not None:
        from costtune.money import format_usd

        parts.append(f"<= {format_usd(r.max_usd_per_hour_micros)}/h")
    if r.max_instances is not None:
        parts.append(f"<= {r.max_instances} instances")
    if r.required_tags:
        parts.append("tags " + ",".join(f"{k}={v}" for k, v in r.required_tags.items()))
    if r.amend:
        parts.append("amend")
    return "; ".join(parts) or "-"


def study_verdicts(store: Any, study_id: int) -> list[dict[str, Any]]:
    """The policies a study's launches ran under, from the audit trail: per policy, how many launches it
    allowed, amended and denied (a trial refused again for the same reason counts once per run), and the
    latest denial's reason. Empty when no policy matched any of its launches."""
    rows: dict[str, dict[str, Any]] = {}
    for entry in store.audit_log(study_id=study_id):
        if entry.action not in ("policy.allow", "policy.amend", "policy.deny"):
            continue
        kind = entry.action.split(".", 1)[1]
        deciding = entry.detail.get("policy")
        for name in entry.detail.get("policies", []):
            row = rows.setdefault(name, {"policy": name, "allow": 0, "amend": 0, "deny": 0, "last_denial": None})
            if name == deciding and kind != "allow":
                row[kind] += 1
                if kind == "deny":
                    row["last_denial"] = entry.detail.get("reason")
            elif kind != "deny":  # a denial by one policy: the others' verdicts were not needed
                row["allow"] += 1
    return [rows[k] for k in sorted(rows)]


def verdicts_line(rows: list[dict[str, Any]]) -> str:
    """``policies: a (12 allowed), b (3 amended, 1 denied: ...)`` for terminal reports ("" without any)."""
    if not rows:
        return ""
    parts = []
    for r in rows:
        counts = [f"{r[k]} {w}" for k, w in (("allow", "allowed"), ("amend", "amended"), ("deny", "denied")) if r[k]]
        text = f"{r['policy']} ({', '.join(counts) or 'no launch'})"
        if r["last_denial"]:
            text += f" last denial: {r['last_denial']}"
        parts.append(text)
    return "policies: " + "; ".join(parts)


def room_left(store: Any, tags: dict[str, str], now: datetime) -> int | None:
    """The least money (micro-dollars) any hard-capped policy window that applies to a sweep with these
    tags has left now (cap - spent - held, at least 0); None when no capped policy applies. What a
    scheduled run may plan to spend (`costtune.schedules.runs.run_cap_micros`); the ledger enforces it
    at each launch anyway."""
    from costtune.policies.admit import matching

    rooms = []
    for policy in matching(store.policies(), tags):
        if policy.cap_micros is not None:
            _cap, spent, held = store.balance(span(policy, now).scope)
            rooms.append(max(0, policy.cap_micros - spent - held))
    return min(rooms) if rooms else None
