"""What every provider implements, and the errors adapters map their SDK's errors to.

A provider launches one attempt of a trial somewhere (a local process, a simulated or a cloud
instance), reports its state with billable times, and terminates it. The controller owns the
books: it charges billable time x the rate snapshotted at launch; a provider never prices itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from costtune.errors import CosttuneError

if TYPE_CHECKING:
    from costtune.trialrun import TrialLaunch


class ProviderError(CosttuneError):
    """Base of what adapters raise; SDK errors never leak past an adapter."""


class RetryableError(ProviderError):
    """Throttling, 5xx, a dropped connection: the same call may succeed later."""


class CapacityError(ProviderError):
    """No capacity (or price too low) for this offer: fail over to another offer."""


class FatalProviderError(ProviderError):
    """Credentials, quota, an invalid request: retrying cannot help."""


@dataclass(frozen=True)
class LaunchRequest:
    argv: tuple[str, ...]
    workdir: str
    output_dir: str  # stdout.log / stderr.log land here
    env: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)  # study, trial, attempt, owner: finds it again
    # What simulated and cloud providers need; the local provider ignores them.
    params: dict | None = None  # the trial's configuration (the simulated workload's input)
    instance_type: str | None = None
    market: str | None = None  # "spot" or "on-demand"; None means on-demand
    region: str | None = None
    start_step: int = 0  # resume at this step (the trial's checkpoint); a command trial reads its checkpoint dir
    # The command trial as a machine-independent description: a remote provider's agent renders it
    # against its own trial directory (argv and env above are rendered for this machine).
    launch: TrialLaunch | None = None


@dataclass(frozen=True)
class Status:
    running: bool  # False once the attempt has ended and all of its output can be read
    exit_code: int | None
    billable_ms: int  # time the resource has been held so far (or in all, once ended)
    preempted: bool = False
    error: str | None = None  # why it failed, when the provider knows (a simulated workload's exception)
    # Ended (billable_ms is final, exit_code set), but its last output is still arriving: running
    # stays True until it is all readable, so nothing is decided about it meanwhile.
    draining: bool = False


@dataclass(frozen=True)
class AttemptFacts:
    """What the resource itself recorded about an attempt (a local supervisor's file; for a cloud
    instance, its launch and termination times as the provider reports them). Wall clock, UTC."""

    started_at: datetime
    ended_at: datetime | None  # None: still running, or its end was never recorded
    exit_code: int | None = None
    how: str = ""  # how it ended, in the provider's words ("controller-died", "stopped", "terminated", ...)
    source: str = ""  # where the facts come from, for the attempt's note


@dataclass(frozen=True)
class Placement:
    """Where a cloud launch really put an attempt and the rate it is charged at from then on.

    A sweep reserves at the dearest rate of its offers; fail-over may land elsewhere (another zone,
    on-demand after spot): the controller re-aims the attempt's deadline at this rate."""

    market: str  # spot | on-demand
    region: str | None
    rate_micros_per_hour: int
    source: str = ""  # where the rate comes from, for the attempt's note
    warning: str | None = None  # no fresh price for this exact offer: what was used instead


class Handle(Protocol):
    key: str  # the idempotency key it was launched with


class Provider(Protocol):
    name: str
    # True when what it launches can outlive the controller (a process, an instance): the
    # controller then commits an attempt's row before launching it, so a crash never hides one.
    outlives_controller: bool

    def launch(self, request: LaunchRequest, idempotency_key: str) -> Handle:
        """Start the attempt; calling again with the same key returns the same attempt."""
        ...

    def poll(self, handle: Handle) -> Status: ...

    def output(self, handle: Handle, timeout: float | None = None) -> Iterator[str]:
        """The attempt's stdout lines as they come; with ``timeout``, may stop early when none came."""
        ...

    def terminate(self, handle: Handle) -> None:
        """Start stopping the attempt and return at once (never wait for it to die): a graceful stop
        first, a forced one after the provider's grace period. Idempotent; call it again on later
        ticks until ``poll`` says it ended (a provider may escalate on a later call)."""
        ...

    def list_owned(self, tags: dict[str, str]) -> list[Handle]:
        """Live attempts carrying all of ``tags``, wherever they were launched from (the reaper's view)."""
        ...


class Recoverable(Protocol):
    """Providers whose attempts outlive the controller also answer for them after it died."""

    def facts(self, key: str, *, output_dir: str | None = None) -> AttemptFacts | None:
        """The resource's own record of the attempt launched with ``key`` (by any controller), or None
        when it has none. ``output_dir`` is the trial's output directory (where a local record lives)."""
        ...

    def kill(self, handle: Handle) -> None:
        """Stop the attempt now, without the grace period (a second Ctrl-C); returns at once."""
        ...
