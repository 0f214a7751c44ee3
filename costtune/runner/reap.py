"""The reaper: terminate cloud instances carrying costtune's tags that no live attempt owns.

An instance is spared when an attempt of the store that launched it is still open (not ended) and
has not passed its ``expires-at`` tag, when it is younger than the grace window (a listing may not
show its attempt yet: the controller commits the attempt before launching, but a launch in flight
elsewhere is not worth the risk), or when another store launched it (its ``store`` tag differs).
Every other tagged instance is an orphan and is terminated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from costtune.errors import CosttuneError


@dataclass(frozen=True)
class Found:
    handle: Any  # the provider's handle: key, region, instance_type, market, launched_at, zone, tags
    age_s: float
    usd_per_hour_micros: int | None  # what it costs an hour (None: no price known)
    verdict: str  # orphan | young | owned | other-store

    @property
    def reaped(self) -> bool:
        return self.verdict == "orphan"


def survey(provider: Any, *, store_tag: str, open_keys: Callable[[list[str]], set[str]], older_than_s: float,
           now: datetime, rate: Callable[[Any], int | None]) -> list[Found]:
    """Every instance of ``provider`` carrying costtune's tags, each with what the reaper makes of it."""
    handles = provider.list_owned({})
    owned = open_keys([h.key for h in handles])
    out = []
    for h in sorted(handles, key=lambda h: (h.launched_at, h.key)):
        age = (now - h.launched_at).total_seconds()
        expired = _expired(h.tags.get("expires-at", ""), now)
        if h.tags.get("store") != store_tag:
            verdict = "other-store"
        elif age < older_than_s:
            verdict = "young"
        elif h.key in owned and not expired:
            verdict = "owned"
        else:
            verdict = "orphan"
        out.append(Found(h, age, rate(h), verdict))
    return out


def reap(provider: Any, found: list[Found]) -> list[Found]:
    """Terminate the orphans among ``found``; returns them. Raises the provider's error if one fails."""
    orphans = [f for f in found if f.reaped]
    for item in orphans:
        provider.kill(item.handle) if hasattr(provider, "kill") else provider.terminate(item.handle)
    return orphans


def _expired(text: str, now: datetime) -> bool:
    try:
        return bool(text) and datetime.fromisoformat(text.replace("Z", "+00:00")) < now
    except ValueError:
        return False


__all__ = ["CosttuneError", "Found", "reap", "survey"]
