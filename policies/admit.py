"""Admission: every policy that matches a sweep's tags sees a launch and allows, amends or denies it.

``admit`` is pure: it reads the policies, the request and (for stop-launching thresholds) the spend in
each window, and returns a ``Verdict``. The money itself is held by the ledger, which reserves the
segment in the study scope and in every matching policy's window scope in one transaction (caps and
``max_instances`` are checked there, under the scopes' locks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from costtune.policies.model import Policy
from costtune.policies.windows import WindowSpan, forecast_micros, span

from costtune.money import format_usd

ALLOW, AMEND, DENY = "allow", "amend", "deny"


@dataclass(frozen=True)
class LaunchRequest:
    """What a launch asks for. ``choices``: every (instance type, market) the sweep may use, with its rate
    (micro-dollars an hour), from which an amending policy may pick; ``regions``: where it may run."""

    tags: Mapping[str, str]
    instance_type: str | None
    market: str | None  # None: the placement has no market (a local trial at resources.usd_per_hour)
    rate_micros: int
    regions: tuple[str, ...] = ()
    choices: Mapping[tuple[str | None, str | None], int] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"instance_type": self.instance_type, "market": self.market,
                "usd_per_hour": format_usd(self.rate_micros), "regions": list(self.regions), "tags": dict(self.tags)}


@dataclass(frozen=True)
class Verdict:
    """``kind``: allow | amend | deny. ``request``: what to launch (rewritten by an amend). ``windows``: the
    window of every matching policy with its hard cap (None: soft or no cap), to reserve in;
    ``max_held``: scope prefix -> the most held launches it may have (``rules.max_instances``)."""

    kind: str
    request: LaunchRequest
    reason: str = ""
    policy: str | None = None  # the deciding policy (deny, amend)
    matched: tuple[str, ...] = ()
    windows: tuple[tuple[Policy, WindowSpan], ...] = ()
    max_held: dict[str, int] = field(default_factory=dict)
    asked: LaunchRequest | None = None  # the request as it came, before any amend
    lasting: bool = False  # deny: the trial's own placement is refused while others of the sweep pass

    @property
    def lasting_deny(self) -> bool:
        """A denial no later moment changes (the trial's own instance type or market): fail the trial."""
        return self.kind == DENY and self.lasting

    @property
    def caps(self) -> dict[str, int | None]:
        return {w.scope: p.cap_micros for p, w in self.windows}

    @property
    def scopes(self) -> list[str]:
        return [w.scope for _p, w in self.windows]


def matching(policies: list[Policy], tags: Mapping[str, str]) -> list[Policy]:
    """The policies whose scope matches ``tags`` (global ones always), in name order."""
    return sorted((p for p in policies if p.matches(dict(tags))), key=lambda p: p.name)


def admit(request: LaunchRequest, policies: list[Policy], now: datetime,
          spend: Callable[[str], tuple[int, int]] | None = None,
          fired: Callable[[str], set[str]] | None = None) -> Verdict:
    """Evaluate every matching policy in name order; the first deny wins, amends chain.

    ``spend(scope)`` gives ``(spent, held)`` micro-dollars of a window scope, read for stop-launching
    thresholds only; ``fired(scope)``: the threshold labels that already fired in a window (a stop that
    fired holds for the rest of the window, even when spend falls back as held money is released).
    Tags and region rules cannot be amended; placement rules can when the policy has
    ``rules.amend: true`` and one of the sweep's own choices passes every matching policy.
    """
    found = matching(policies, request.tags)
    names = tuple(p.name for p in found)
    windows = tuple((p, span(p, now)) for p in found)
    max_held = {f"policy:{p.name}:": p.rules.max_instances for p in found if p.rules.max_instances is not None}
    base = Verdict(ALLOW, request, matched=names, windows=windows, max_held=max_held, asked=request)
    amended: list[str] = []
    amended_by: str | None = None
    for policy, window in windows:
        problem = policy.rules.tag_problem(dict(request.tags))
        for region in request.regions:
            problem = problem or policy.rules.region_problem(region)
        if problem is None and spend is not None:
            problem = _stopped(policy, window, now, spend, fired)
        if problem is not None:
            return replace(base, kind=DENY, policy=policy.name, reason=f"policy {policy.name!r}: {problem}")
        problem = policy.rules.placement_problem(request.instance_type, request.market, request.rate_micros)
        if problem is None:
            continue
        better = _amendment(request, found) if policy.rules.amend else None
        if better is None:
            why = f"policy {policy.name!r}: {problem}"
            if policy.rules.amend:
                why += " (rules.amend: no placement among the sweep's choices passes every policy)"
            return replace(base, kind=DENY, policy=policy.name, reason=why, lasting=_others_pass(request, found))
        placed = " ".join(v for v in (better.instance_type or "local", better.market) if v)
        amended.append(f"policy {policy.name!r}: {problem}; launched as {placed} at "
                       f"{format_usd(better.rate_micros)}/h")
        request = better
        amended_by = amended_by or policy.name
        base = replace(base, request=request)
    if amended:
        return replace(base, kind=AMEND, policy=amended_by, reason="; ".join(amended))
    return base


def _others_pass(request: LaunchRequest, policies: list[Policy]) -> bool:
    """Whether another of the sweep's placements passes every policy's placement rules: then the denial
    is about this trial's own configuration (a searched instance type or market), not the whole sweep."""
    own = (request.instance_type, request.market)
    return any(all(p.rules.placement_problem(itype, market, rate) is None for p in policies)
               for (itype, market), rate in request.choices.items() if (itype, market) != own)


def _amendment(request: LaunchRequest, policies: list[Policy]) -> LaunchRequest | None:
    """A placement among the sweep's choices that every matching policy's placement rules allow: the
    request's own instance type in another market when one passes (the type may be a searched
    hyperparameter), else the cheapest passing choice."""
    fits = [(itype != request.instance_type, rate, market != request.market, str(itype), str(market), market, itype)
            for (itype, market), rate in request.choices.items()
            if all(p.rules.placement_problem(itype, market, rate) is None for p in policies)]
    if not fits:
        return None
    _other, rate, *_rest, market, itype = min(fits, key=lambda f: f[:5])
    return replace(request, instance_type=itype, market=market, rate_micros=rate)


def _stopped(policy: Policy, window: WindowSpan, now: datetime, spend: Callable[[str], tuple[int, int]],
             fired: Callable[[str], set[str]] | None = None) -> str | None:
    """Why a stop-launching (or stop-running) threshold of ``policy`` holds launches now, or None."""
    stops = [t for t in policy.thresholds if {"stop-launching", "stop-running"} & set(t.actions)]
    if not stops or policy.base_micros is None:
        return None
    spent, held = spend(window.scope)
    committed = spent + held
    done = fired(window.scope) if fired is not None else set()
    for t in stops:
        if t.label in done:
            return (f"thresholds: {t.label} reached in the {window.label} window "
                    f"({'/'.join(a for a in t.actions if a.startswith('stop'))} fired): launching stopped "
                    "until the window ends")
        value = committed if t.of == "actual" else forecast_micros(committed, window, now)
        if value * 100 >= t.percent * policy.base_micros:
            return (f"thresholds: {t.label} reached in the {window.label} window ({format_usd(value)} of "
                    f"{format_usd(policy.base_micros)}): launching stopped until the window ends")
    return None
