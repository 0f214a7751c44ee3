"""The rate an AWS attempt is charged at: the price of the offer fail-over really placed it on.

A sweep reserves money at the dearest rate of its placements (``costtune.spec.resources``); once EC2
has placed an attempt, its rate is snapshotted from where it runs:

- on-demand: the region's on-demand price;
- spot: the current spot price of its availability zone from the live-price cache
  (``costtune prices refresh --provider aws``, fresh for ``LIVE_TTL_S``), else the region's spot price
  (fresh, or the bundled snapshot's) with a warning saying so.

Prices come from the bundled snapshot with fresh live rows and the sweep's ``price_overrides`` on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from costtune.prices.catalog import PriceNotFound
from costtune.prices.price import Price


@dataclass(frozen=True)
class PlacedPrice:
    price: Price
    warning: str | None  # set when no fresh price for the exact offer existed

    @property
    def source(self) -> str:
        where = f" {self.price.zone}" if self.price.zone else ""
        return f"{self.price.market}{where} at ${self.price.usd_per_hour:.4f}/h: {self.price.source} " \
               f"(as of {self.price.as_of.isoformat()})"


def placement_price(instance_type: str, market: str, region: str, zone: str | None, *,
                    overrides: Any = None) -> PlacedPrice:
    """The price of ``instance_type`` on ``market`` (spot | on-demand) in ``region`` / ``zone``.

    Raises PriceNotFound when the table has no price for the type in the region (``validate`` and the
    sweep's pricing make that rare: they priced every region before any launch).
    """
    from costtune.spec.resources import _price_table

    fresh: dict[Any, Any] = {}
    table = _price_table(overrides, fresh)
    hint = f"run costtune prices refresh --provider aws --regions {region}"
    if market == "spot" and zone:
        try:
            price = table.rate("aws", region, instance_type, "spot", zone=zone)
        except PriceNotFound:
            price = None
        if price is not None and price.zone == zone:  # only a live refresh knows zones by name
            return PlacedPrice(price, None)
        regional = table.rate("aws", region, instance_type, "spot")
        said = "a fresh regional" if regional.key in fresh else "the bundled snapshot's"
        return PlacedPrice(regional, f"no fresh spot price for zone {zone} ({instance_type}): charged at {said} "
                                     f"spot price ${regional.usd_per_hour:.4f}/h ({regional.source}, as of "
                                     f"{regional.as_of.isoformat()}); {hint}")
    price = table.rate("aws", region, instance_type, market)
    if price.key in fresh:
        return PlacedPrice(price, None)
    return PlacedPrice(price, f"no fresh {market} price for {instance_type} in {region}: charged at the bundled "
                              f"snapshot's ${price.usd_per_hour:.4f}/h (as of {price.as_of.isoformat()}); {hint}")


__all__ = ["PlacedPrice", "placement_price"]
