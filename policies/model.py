"""What a policy file says, as frozen values (parsed and validated by ``costtune.policies.parse``).

Money is integer micro-dollars; rates micro-dollars per hour. Globs are ``fnmatch`` patterns matched
against the whole value, case-sensitively (``p4d.*``, ``g5*``, ``cc-*``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

PERIODS = ("total", "daily", "weekly", "monthly")
ACTIONS = ("log", "webhook", "stop-launching", "stop-running")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MARKETS = ("spot", "on-demand")


@dataclass(frozen=True)
class Window:
    """The period a cap counts over; its start is computed in ``timezone`` (IANA name)."""

    period: str = "total"  # total | daily | weekly | monthly
    timezone: str = "UTC"
    reset_day: int = 1  # weekly: 1 = Monday ... 7 = Sunday; monthly: day of month 1..28


@dataclass(frozen=True)
class Threshold:
    percent: int  # of the policy's cap (cap_usd, else soft_cap_usd)
    of: str  # actual | forecast
    actions: tuple[str, ...]

    @property
    def label(self) -> str:
        """How the alert store names it: ``80% of actual``."""
        return f"{self.percent}% of {self.of}"


@dataclass(frozen=True)
class Webhook:
    url: str
    timeout_s: float = 2.0
    retries: int = 3


@dataclass(frozen=True)
class Rules:
    """Launch rules; an empty tuple / None means the rule is not set."""

    allowed_instance_types: tuple[str, ...] = ()
    denied_instance_types: tuple[str, ...] = ()
    allowed_families: tuple[str, ...] = ()
    denied_families: tuple[str, ...] = ()
    allowed_regions: tuple[str, ...] = ()
    denied_regions: tuple[str, ...] = ()
    allowed_markets: tuple[str, ...] = ()
    max_usd_per_hour_micros: int | None = None
    max_instances: int | None = None  # held launches at once in the policy's scope
    required_tags: dict[str, str] = field(default_factory=dict)  # tag -> glob ("*": present)
    amend: bool = False  # rewrite a violating launch to an allowed placement of the sweep's own choices

    def placement_problem(self, instance_type: str | None, market: str | None, rate_micros: int) -> str | None:
        """The first rule (``rules.FIELD``: why) a placement breaks, or None. A local process (no instance
        type) is not checked against type and family rules; a placement with no market (``market`` None: a
        local trial at ``resources.usd_per_hour``) is not checked against ``allowed_markets``."""
        if instance_type is not None:
            family = instance_type.split(".", 1)[0]
            for pattern in self.denied_instance_types:
                if fnmatchcase(instance_type, pattern):
                    return f"rules.denied_instance_types: {instance_type} matches {pattern!r}"
            if self.allowed_instance_types and not any(fnmatchcase(instance_type, p)
                                                       for p in self.allowed_instance_types):
                return (f"rules.allowed_instance_types: {instance_type} matches none of "
                        f"{', '.join(self.allowed_instance_types)}")
            for pattern in self.denied_families:
                if fnmatchcase(family, pattern):
                    return f"rules.denied_families: family {family} matches {pattern!r}"
            if self.allowed_families and not any(fnmatchcase(family, p) for p in self.allowed_families):
                return f"rules.allowed_families: family {family} matches none of {', '.join(self.allowed_families)}"
        if self.allowed_markets and market is not None and market not in self.allowed_markets:
            return f"rules.allowed_markets: market {market} is not one of {', '.join(self.allowed_markets)}"
        if self.max_usd_per_hour_micros is not None and rate_micros > self.max_usd_per_hour_micros:
            from costtune.money import format_usd

            where = " ".join(v for v in (instance_type or "the trial", market) if v)
            return (f"rules.max_usd_per_hour: {where} costs "
                    f"{format_usd(rate_micros)}/h, more than {format_usd(self.max_usd_per_hour_micros)}/h")
        return None

    def market_note(self, market: str | None) -> str | None:
        """Why ``allowed_markets`` is not checked for a placement with no market, or None."""
        if market is None and self.allowed_markets:
            return ("rules.allowed_markets does not apply: a local trial priced by resources.usd_per_hour "
                    "has no market")
        return None

    def region_problem(self, region: str | None) -> str | None:
        """The region rule a launch region breaks, or None (a local trial has no region: not checked)."""
        if region is None:
            return None
        for pattern in self.denied_regions:
            if fnmatchcase(region, pattern):
                return f"rules.denied_regions: region {region} matches {pattern!r}"
        if self.allowed_regions and not any(fnmatchcase(region, p) for p in self.allowed_regions):
            return f"rules.allowed_regions: region {region} matches none of {', '.join(self.allowed_regions)}"
        return None

    def tag_problem(self, tags: dict[str, str]) -> str | None:
        for tag, pattern in self.required_tags.items():
            if tag not in tags:
                return f"rules.required_tags: the sweep has no tag {tag!r} (add it under tags: in the sweep file)"
            if not fnmatchcase(tags[tag], pattern):
                return f"rules.required_tags: tag {tag}={tags[tag]!r} does not match {pattern!r}"
        return None


@dataclass(frozen=True)
class Policy:
    """One validated policy. ``scope_tags`` empty means global; ``raw`` is the mapping as written."""

    name: str
    scope_tags: dict[str, str] = field(default_factory=dict)  # tag -> glob; every one must match
    window: Window = field(default_factory=Window)
    cap_micros: int | None = None
    soft_cap_micros: int | None = None
    thresholds: tuple[Threshold, ...] = ()
    webhook: Webhook | None = None
    rules: Rules = field(default_factory=Rules)
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    def matches(self, tags: dict[str, str]) -> bool:
        """Whether a sweep with these tags falls under this policy (global: every sweep)."""
        return all(k in tags and fnmatchcase(tags[k], v) for k, v in self.scope_tags.items())

    @property
    def base_micros(self) -> int | None:
        """What threshold percentages are of: the hard cap, else the soft cap."""
        return self.cap_micros if self.cap_micros is not None else self.soft_cap_micros

    @property
    def scope_text(self) -> str:
        return "global" if not self.scope_tags else ", ".join(f"{k}={v}" for k, v in self.scope_tags.items())
