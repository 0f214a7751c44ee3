"""Fail-over across zones, regions and markets when EC2 has no capacity, bounded by a wait budget.

An attempt is offered, in order: each zone of ``resources.zones`` in the first region (or the region
alone, EC2 choosing the zone), then the same in the next region of ``resources.regions``. With
``market: spot-then-on-demand`` spot offers come first; once the trial has had
``resources.spot_fallback_after`` strikes (spot capacity errors, or preemptions of its earlier
attempts) only on-demand offers remain. When every offer said "no capacity" the round starts again
after a pause (5 s, doubling up to a minute) until ``resources.launch_wait`` seconds have passed. No
round sleeps: the attempt waits for capacity between rounds while the controller goes on polling.

Every try is recorded (``Try``), for the attempt's note and ``costtune trials``; money is reserved
once per attempt by the controller, never per try.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from costtune.providers.base import CapacityError, FatalProviderError, RetryableError

from costtune.spec.aws import FALLBACK, AwsResources

T = TypeVar("T")
FIRST_PAUSE_S = 5.0
MAX_PAUSE_S = 60.0


@dataclass(frozen=True)
class Offer:
    region: str
    zone: str | None  # None: EC2 picks a zone in the region
    market: str  # spot | on-demand

    def __str__(self) -> str:
        return f"{self.market} in {self.zone or self.region}"


@dataclass(frozen=True)
class Try:
    offer: Offer
    outcome: str  # launched | no-capacity | retry-later | refused
    detail: str
    at: datetime

    def __str__(self) -> str:
        return f"{self.offer}: {self.outcome}" + (f" ({self.detail})" if self.detail else "")


class OutOfCapacity(CapacityError):
    """No offer had capacity within the wait budget; ``tries`` lists each one."""

    def __init__(self, message: str, tries: list[Try]) -> None:
        super().__init__(message)
        self.tries = tries


class LaunchRefused(FatalProviderError):
    """EC2 refused the launch for a reason retrying cannot fix; ``tries`` lists what was tried."""

    def __init__(self, message: str, tries: list[Try]) -> None:
        super().__init__(message)
        self.tries = tries


def offers(aws: AwsResources, market: str, strikes: int) -> list[Offer]:
    """The offers of one round, in the order they are tried."""
    if market == FALLBACK:
        markets = ["on-demand"] if strikes >= aws.spot_fallback_after else ["spot", "on-demand"]
    else:
        markets = [market]
    return [Offer(region, zone, m) for m in markets for region in aws.regions
            for zone in (aws.zones_of(region) or (None,))]


@dataclass
class FailOver:
    """One attempt's fail-over: each ``round`` tries every offer once; ``strikes`` count toward on-demand.

    Rounds never sleep: between them the attempt waits for capacity without holding the controller
    (``due`` says when the next round may run); ``expired`` once another pause would pass the budget.
    """

    aws: AwsResources
    market: str
    strikes: int
    monotonic: Callable[[], float]
    now: Callable[[], datetime]
    tries: list[Try] = field(default_factory=list)
    deadline: float = 0.0
    next_round: float = 0.0
    pause: float = FIRST_PAUSE_S

    def __post_init__(self) -> None:
        self.deadline = self.monotonic() + self.aws.launch_wait_s

    def round(self, launch: Callable[[Offer], T]) -> T | None:
        """The first offer ``launch`` succeeds with, or None when none had capacity (the next round is
        scheduled). Raises ``LaunchRefused`` on a fatal error (bad credentials, an invalid request)."""
        while True:
            replan = False
            for offer in offers(self.aws, self.market, self.strikes):
                try:
                    result = launch(offer)
                except CapacityError as exc:
                    self.tries.append(Try(offer, "no-capacity", _short(exc), self.now()))
                    if offer.market == "spot":
                        self.strikes += 1
                        if self.market == FALLBACK and self.strikes == self.aws.spot_fallback_after:
                            replan = True  # on to on-demand at once
                            break
                    continue
                except RetryableError as exc:
                    self.tries.append(Try(offer, "retry-later", _short(exc), self.now()))
                    continue
                except FatalProviderError as exc:
                    self.tries.append(Try(offer, "refused", _short(exc), self.now()))
                    raise LaunchRefused(str(exc), self.tries) from None
                self.tries.append(Try(offer, "launched", "", self.now()))
                return result
            if not replan:
                self.next_round = self.monotonic() + self.pause
                self.pause = min(self.pause * 2, MAX_PAUSE_S)
                return None

    @property
    def expired(self) -> bool:
        """True when waiting for the next round would pass ``resources.launch_wait``."""
        return self.next_round > self.deadline

    def due(self) -> bool:
        return self.monotonic() >= self.next_round

    def out_of_capacity(self) -> OutOfCapacity:
        shown = "; ".join(str(t) for t in self.tries[-6:])
        return OutOfCapacity(f"no capacity after {len(self.tries)} tries in {self.aws.launch_wait_s:g} s "
                             f"(resources.launch_wait): {shown}", self.tries)


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200]


__all__ = ["FailOver", "LaunchRefused", "Offer", "OutOfCapacity", "Try", "offers"]
