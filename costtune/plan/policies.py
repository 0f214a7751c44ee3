"""Spend policies that cap a sweep, read for ``costtune plan`` (read-only).

``costtune run`` reserves every launch in each matching policy's current window as well as the study's
own scope (``costtune.runner.admission``), so a hard ``cap_usd`` stops a sweep whatever its
``budget.usd``. ``policy_room`` reads the policies in force and their windows' spend from the store,
through ``costtune.plan.rules`` (a read-only connection; a store without them gives none),
and returns the tightest hard cap that applies to the sweep's tags and what it has left now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from costtune.plan.rules import read_policies, window_spend
from costtune.words import plural


@dataclass(frozen=True)
class PolicyRoom:
    """The tightest hard-capped policy window over a sweep: its name, window, cap and what it has left now."""

    policy: str
    window: str
    cap_micros: int
    left_micros: int  # cap less what the window spent and holds, at least 0


def policy_room(db_url: str, tags: dict[str, str], now: datetime | None = None) -> PolicyRoom | None:
    """The hard-capped policy window that leaves a sweep with ``tags`` the least money now; None when no policy
    with a hard cap applies (or the store holds none)."""
    from costtune.policies import matching, span

    moment = now or datetime.now(UTC)
    spend = window_spend(db_url)
    rooms = []
    for policy in matching(read_policies(db_url), tags):
        if policy.cap_micros is None:
            continue
        window = span(policy, moment)
        spent, held = spend(window.scope)
        rooms.append(PolicyRoom(policy.name, window.label, policy.cap_micros,
                                max(0, policy.cap_micros - spent - held)))
    return min(rooms, key=lambda r: (r.left_micros, r.policy)) if rooms else None


@dataclass(frozen=True)
class PolicyCap:
    """What a policy's hard cap leaves of a plan: at most ``spend_micros``, about ``trials`` trials (None: unknown)."""

    room: PolicyRoom
    spend_micros: int
    trials: int | None
    binds: bool  # the plan (or its forecast) would spend more than the policy leaves


def cap_by_policy(room: PolicyRoom, spend_micros: int | None, trials: int | None) -> PolicyCap:
    """The plan of ``spend_micros`` over ``trials`` trials (this run's, for a resume) within ``room``: trials
    scaled to the money the policy leaves, at the plan's cost per trial."""
    if spend_micros is None or spend_micros <= room.left_micros:
        return PolicyCap(room, spend_micros if spend_micros is not None else room.left_micros, trials,
                         binds=spend_micros is None)
    fit = None if trials is None else min(trials, int(trials * room.left_micros / spend_micros))
    return PolicyCap(room, room.left_micros, fit, binds=True)


def policy_note(cap: PolicyCap, spend_micros: int | None, startup_counted: bool = True) -> str:
    """The plan's note on the tightest hard-capped policy: what it has left now against the plan's spend (micro-
    dollars), and whether `costtune run` stops at its cap. ``startup_counted`` False (a local plan with no measured
    start-up): the plan's trials cost more than it shows, so a run under the cap may start fewer of them."""
    from costtune.money import format_usd

    r = cap.room
    head = (f"policy {r.policy}: its hard cap_usd {format_usd(r.cap_micros)} ({r.window}) applies to this sweep's tags "
            f"and has {format_usd(r.left_micros)} left now")
    uncounted = "" if startup_counted else (
        "; the plan counts no start-up per launch (none measured yet), so `costtune run` may start fewer trials "
        "before the cap stops it")
    if spend_micros is None:
        return head + ": `costtune run` stops when it is spent" + uncounted
    shown, left = format_usd(spend_micros), format_usd(r.left_micros)
    if not cap.binds and shown != left:
        return head + f", more than the plan's {shown}" + uncounted
    if not cap.binds:  # the plan spends all the policy leaves (as shown): the cap binds
        return (head + f", as much as the plan's {shown}: the cap binds, `costtune run` stops at the policy's cap "
                "if the run costs any more than the plan" + uncounted)
    trials = "" if cap.trials is None else f", about {plural(cap.trials, 'trial')}"
    return (head + f", less than the plan's {shown}: the cap binds, `costtune run` stops at the policy's cap "
            f"(at most {format_usd(cap.spend_micros)}{trials}); the figures above are the sweep's own, without it"
            + uncounted)
