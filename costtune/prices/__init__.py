"""Instance prices: the bundled snapshot, overrides, and exact look-ups for budget decisions.

``PriceTable.bundled().rate("aws", "us-east-1", "m5.large", "on-demand")`` gives a ``Price`` in integer
micro-dollars per hour with its source and as-of date. Nothing here touches the network or a cloud SDK.
"""

from costtune.prices.catalog import PriceNotFound, PriceSource, PriceTable, parse_price_ref
from costtune.prices.overrides import discounted_micros
from costtune.prices.price import FAMILIES, MARKETS, PROVIDERS, Price, derive_family

__all__ = [
    "FAMILIES",
    "MARKETS",
    "PROVIDERS",
    "Price",
    "PriceNotFound",
    "PriceSource",
    "PriceTable",
    "derive_family",
    "discounted_micros",
    "parse_price_ref",
]
