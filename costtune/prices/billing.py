"""How each provider turns held time into a bill: the granule and the minimum charge.

Figures from the providers' public billing pages (see the project's FACTS): AWS and GCP bill Linux
instances per second with a one-minute minimum; Azure is commonly stated as per second, which we
have not verified, so no minimum is assumed there. Local and on-prem rates bill per second.
"""

from __future__ import annotations

from dataclasses import dataclass

from costtune.money import charge_micros


@dataclass(frozen=True)
class BillingRule:
    granularity_s: int = 1
    minimum_s: int = 0
    note: str = "per second"

    def charge(self, billable_ms: int, rate_micros_per_hour: int) -> int:
        return charge_micros(billable_ms, rate_micros_per_hour, granularity_s=self.granularity_s,
                             minimum_s=self.minimum_s)

    @property
    def least_s(self) -> int:
        """Seconds any launch is billed at least: the minimum, else one granule (per second: 1 s)."""
        return max(self.minimum_s, self.granularity_s)

    def least_charge(self, rate_micros_per_hour: int) -> int:
        """The minimum charge of a launch at ``rate_micros_per_hour``: ``least_s`` billed (micro-dollars)."""
        return self.charge(1, rate_micros_per_hour)


_RULES = {
    "aws": BillingRule(1, 60, "per second, 60 s minimum (Linux on-demand and spot)"),
    "gcp": BillingRule(1, 60, "per second, 1 min minimum"),
    "azure": BillingRule(1, 0, "per second (commonly stated; unverified)"),
}
PER_SECOND = BillingRule()


def billing_rule(provider: str) -> BillingRule:
    """The rule for ``provider``; anything we hold no rule for (local, on-prem) bills per second."""
    return _RULES.get(provider.strip().lower(), PER_SECOND)
