"""Spend caps, launch rules and market choice (policy files arrive with spend policies).

A policy sees a launch request and the spend in every scope that applies, and admits it, amends
it, or denies it with a reason. Until policy files exist the default admits everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""


class Policy(Protocol):
    def admit(self, request: object, spend_micros: dict[str, int]) -> Verdict: ...


class AllowAll:
    def admit(self, request: object, spend_micros: dict[str, int]) -> Verdict:
        return Verdict(True)


__all__ = ["AllowAll", "Policy", "Verdict"]
