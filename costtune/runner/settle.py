"""Settling what dead controllers left of a study, exactly one way for every caller: a run's start,
a run that takes over the trials of another controller of the study that died, and
``costtune studies delete``.

1. What they left running is stopped (SIGTERM, SIGKILL after the provider's grace) and waited for,
   so the resources' records are final.
2. Their open attempts are closed as interrupted, each billed from its resource's own record (a
   local supervisor's start and end, or the moment this recovery saw its tree gone); without a
   record, to the last sign of life (see ``costtune.store.orphans``). Their trials are re-queued.
3. Their ledger reservations are settled: charged at what their attempts cost, released when no
   attempt was booked.

An attempt of a local process that another host ran is left open with its trial and its money,
and said so: this host cannot see whether it still runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from costtune.errors import CosttuneError
from costtune.store import AttemptEnd, OpenAttempt, Orphan, study_scope
from costtune.store.owner import is_alive

if TYPE_CHECKING:
    from costtune.providers.base import Provider
    from costtune.store import Store

log = logging.getLogger(__name__)
STRAY_SLACK_S = 3.0  # strays get the provider's grace period and this much more to be gone


def scope_tags(store: Store, study_name: str) -> dict[str, str]:
    """Tags that name a study in this store: another store's same-named study is not ours."""
    from costtune.store.reads import store_tag

    return {"study": study_name, "store": store_tag(store)}


def owned_strays(provider: Provider, tags: dict[str, str],
                 on_error: Callable[[Exception], None] | None = None) -> list[Any]:
    """Attempts carrying ``tags`` whose controller is dead; none when the provider cannot list them (no
    credentials, no network), and then ``on_error`` is told why."""
    lister = getattr(provider, "list_owned", None)
    if lister is None:
        return []
    try:
        found = lister(tags)
    except (OSError, CosttuneError) as exc:
        if on_error is not None:
            on_error(exc)
        return []
    return [h for h in found if not is_alive(getattr(h, "tags", {}).get("owner", ""), None)]


def stop_strays(provider: Provider, strays: list[Any], on_event: Callable[[str], None]) -> None:
    """Stop ``strays`` and wait until they are gone (at most the provider's grace + ``STRAY_SLACK_S``)."""
    for handle in strays:
        pid, instance = getattr(handle, "pid", None), getattr(handle, "instance_id", None)
        what = f"process group {pid}" if pid else f"instance {instance}" if instance else "attempt"
        on_event(f"terminating stray {what} ({handle.key}): its controller is gone")
    deadline = time.monotonic() + getattr(provider, "grace", 5.0) + STRAY_SLACK_S
    while strays and time.monotonic() < deadline:
        for handle in strays:
            provider.terminate(handle)  # SIGTERM first; SIGKILL on a call after the grace
        strays = [h for h in strays if provider.poll(h).running]
        if strays:
            time.sleep(0.05)


def attempt_end(provider: Provider, attempt: OpenAttempt,
                others: Mapping[str, Provider] | None = None) -> AttemptEnd | None:
    """How ``attempt`` really ended, from its provider's facts; None when they do not say. ``others``: a
    provider by name for attempts that ``provider`` did not launch (a cloud's, which needs its regions)."""
    if attempt.provider == "simulated":
        return None  # virtual time: what its reports booked is what it cost
    source: Any = provider
    if others and attempt.provider in others:
        source = others[attempt.provider]
    elif attempt.provider != provider.name:
        from costtune.providers import make_provider

        try:
            source = make_provider(attempt.provider)
        except CosttuneError:
            return None
    facts_of = getattr(source, "facts", None)
    if facts_of is None:
        return None
    try:
        facts = facts_of(attempt.key, output_dir=attempt.output_dir)
    except (OSError, CosttuneError):
        log.warning("could not read the facts of attempt %s", attempt.key, exc_info=True)
        return None
    if facts is None or facts.ended_at is None:
        return None
    held_ms = max(0, int((facts.ended_at - facts.started_at).total_seconds() * 1000))
    how = f"; {how_ended(facts.how)}" if facts.how else ""
    return AttemptEnd(billable_ms=held_ms, ended_at=facts.ended_at, exit_code=facts.exit_code,
                      note=f"billed from {facts.source or attempt.provider}: held {held_ms / 1000:.3f} s{how}")


# The words a local supervisor (costtune.agent.supervise) and a cloud agent (costtune.agent.worker) record as
# an attempt's ``how``: machine-readable tokens, kept as they are in the record; an attempt's note says them so.
_HOW_ENDED = {
    "exited": "its command exited on its own",
    "stopped": "it was stopped as asked",
    "controller-died": "its controller died, so its supervisor stopped its command",
    "killed": "it was killed at once (SIGUSR1 to its supervisor)",
    "could-not-start": "its command could not start",
    "agent-stopped": "its instance's agent was asked to stop (the instance was shutting down), so it stopped "
                     "its command",
    "spot-interruption": "a spot interruption notice came, so its agent stopped its command",
    "controller-lost": "its controller was unreachable too long, so its agent ended its command",
}


def how_ended(how: str) -> str:
    """A sentence for an attempt's recorded ``how``: ``controller-died`` -> ``its controller died, so its
    supervisor stopped its command``; a provider's own words (``stopped by recovery``) as they are."""
    return _HOW_ENDED.get(how, how)


def settle_dead(store: Store, study_id: int, study_name: str, provider: Provider,
                on_event: Callable[[str], None], others: Mapping[str, Provider] | None = None,
                on_unlisted: Callable[[str, Exception], None] | None = None) -> list[Orphan]:
    """Steps 1-3 of the module docstring for one study; returns the orphans found (``left_open``
    ones were left as they are). ``others``: providers by name (``{"aws": ...}``) whose strays are stopped
    too and whose attempts are billed from their own facts (``costtune studies delete`` of a cloud study).
    ``on_unlisted(name, error)``: one of ``others`` could not list the study's resources (its strays, if
    any, are left running); the settling goes on as for a provider with nothing left."""
    stop_strays(provider, owned_strays(provider, scope_tags(store, study_name)), on_event)
    for name, each in (others or {}).items():
        unlisted = None if on_unlisted is None else partial(on_unlisted, name)
        stop_strays(each, owned_strays(each, scope_tags(store, study_name), unlisted), on_event)
    ends: dict[int, AttemptEnd] = {}
    for attempt in store.orphaned_attempts(study_id, is_alive):
        end = attempt_end(provider, attempt, others)
        if end is not None:
            ends[attempt.attempt_id] = end
    orphans = store.recover_orphans(study_id, is_alive, ends=ends)
    for orphan in orphans:
        if orphan.left_open:
            on_event(f"trial {orphan.number}: its attempt ran on host {orphan.host}, which this host cannot "
                     f"see; left open with the money it holds (a run of this study on {orphan.host} settles it)")
    store.settle_reservations(study_scope(study_id))
    return orphans
