"""Live AWS prices: on-demand from the Price List Query API, spot from the spot price history.

On-demand: ``pricing.get_products(ServiceCode="AmazonEC2")`` filtered on the instance types (ANY_OF),
the region, Linux, shared tenancy, no pre-installed software and capacitystatus Used; each PriceList
item is a JSON document whose hourly price sits under ``terms.OnDemand.*.priceDimensions.*.pricePerUnit.USD``.
Spot: ``ec2.describe_spot_price_history(ProductDescriptions=["Linux/UNIX"], StartTime=now)`` answers
the latest price per availability zone; the regional spot row is the cheapest zone, and every zone's
own price is returned too (``Price.zone``). A price the API does not give is left out, never zero.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from costtune.providers.aws.clients import Clients
from costtune.providers.aws.errors import call

from costtune.money import rate_to_micros
from costtune.prices.catalog import PriceTable
from costtune.prices.price import Price, derive_family

PRICE_LIST = "AWS Price List Query API (pricing:GetProducts)"
SPOT_HISTORY = "EC2 spot price history (ec2:DescribeSpotPriceHistory)"


class AwsPriceSource:
    """A ``costtune.prices.PriceSource`` for AWS. ``session``: a boto3 session (None: the default one)."""

    def __init__(self, session: Any = None, *, now: Callable[[], datetime] | None = None,
                 sleep: Callable[[float], None] = time.sleep, clients: Clients | None = None) -> None:
        self.clients = clients or Clients(session)
        self.now = now or (lambda: datetime.now(UTC))
        self.sleep = sleep

    def fetch(self, regions: Sequence[str], instance_types: Sequence[str]) -> list[Price]:
        """On-demand and spot prices of ``instance_types`` in ``regions``; per-zone spot rows carry ``zone``.

        Raises RetryableError / FatalProviderError (credentials, permissions) from the APIs.
        """
        out: list[Price] = []
        today = self.now().date()
        for region in regions:
            on_demand = self._on_demand(region, instance_types, today)
            out += on_demand.values()
            out += self._spot(region, instance_types, today, on_demand)
        return out

    def _on_demand(self, region: str, types: Sequence[str], today: Any) -> dict[str, Price]:
        filters = [
            {"Type": "ANY_OF", "Field": "instanceType", "Value": ",".join(types)},
            {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
            {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
            {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
            {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
            {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
        ]
        client = self.clients.pricing()
        found: dict[str, Price] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"ServiceCode": "AmazonEC2", "Filters": filters, "FormatVersion": "aws_v1",
                                      "MaxResults": 100, **({"NextToken": token} if token else {})}
            page = call(client.get_products, "GetProducts", sleep=self.sleep, **kwargs)
            for item in page.get("PriceList", []):
                price = _product_price(json.loads(item) if isinstance(item, str) else item, region, today)
                if price is not None and price.instance_type in types:
                    found.setdefault(price.instance_type, price)
            token = page.get("NextToken")
            if not token:
                return found

    def _spot(self, region: str, types: Sequence[str], today: Any, on_demand: dict[str, Price]) -> list[Price]:
        ec2 = self.clients.ec2(region)
        latest: dict[tuple[str, str], tuple[datetime, Decimal]] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"InstanceTypes": list(types), "ProductDescriptions": ["Linux/UNIX"],
                                      "StartTime": self.now(), **({"NextToken": token} if token else {})}
            page = call(ec2.describe_spot_price_history, "DescribeSpotPriceHistory", sleep=self.sleep, **kwargs)
            for row in page.get("SpotPriceHistory", []):
                try:
                    usd = Decimal(str(row["SpotPrice"]))
                except (KeyError, InvalidOperation):
                    continue
                key = (row["InstanceType"], row["AvailabilityZone"])
                when = row.get("Timestamp") or self.now()
                if usd > 0 and (key not in latest or when > latest[key][0]):
                    latest[key] = (when, usd)
            token = page.get("NextToken")
            if not token:
                break
        bundled = PriceTable.bundled()
        out = []
        for itype in types:
            zones = sorted((usd, zone) for (t, zone), (_, usd) in latest.items() if t == itype)
            if not zones:
                continue
            specs = on_demand.get(itype) or _bundled_row(bundled, region, itype)
            base = dict(provider="aws", region=region, instance_type=itype, market="spot",
                        vcpus=specs.vcpus if specs else None, memory_gib=specs.memory_gib if specs else None,
                        gpu_model=specs.gpu_model if specs else None, gpu_count=specs.gpu_count if specs else 0,
                        family=specs.family if specs else derive_family("aws", itype, 0, None, None),
                        source=SPOT_HISTORY, as_of=today)
            cheapest, where = zones[0]
            out.append(Price(usd_per_hour_micros=rate_to_micros(cheapest), note=f"cheapest zone {where}", **base))
            out += [Price(usd_per_hour_micros=rate_to_micros(usd), zone=zone, **base) for usd, zone in zones]
        return out


def _product_price(doc: dict[str, Any], region: str, today: Any) -> Price | None:
    """The hourly on-demand Price of one PriceList document (None when it holds no USD hourly price)."""
    attrs = doc.get("product", {}).get("attributes", {})
    itype = attrs.get("instanceType")
    usd = None
    for term in doc.get("terms", {}).get("OnDemand", {}).values():
        for dim in term.get("priceDimensions", {}).values():
            if dim.get("unit", "Hrs") in ("Hrs", "Hours"):
                usd = dim.get("pricePerUnit", {}).get("USD")
    try:
        amount = Decimal(str(usd)) if usd is not None else Decimal(0)
    except InvalidOperation:
        return None
    if not itype or amount <= 0:
        return None
    vcpus = int(attrs["vcpu"]) if str(attrs.get("vcpu", "")).isdigit() else None
    memory = _gib(attrs.get("memory", ""))
    gpus = int(attrs["gpu"]) if str(attrs.get("gpu", "")).isdigit() else 0
    known = _bundled_row(PriceTable.bundled(), region, itype)
    gpu_model = (known.gpu_model if known else None) or ("GPU" if gpus else None)
    family = known.family if known else derive_family("aws", itype, gpus, vcpus, memory)
    return Price(provider="aws", region=region, instance_type=itype, market="on-demand",
                 usd_per_hour_micros=rate_to_micros(amount), vcpus=vcpus, memory_gib=memory, gpu_model=gpu_model,
                 gpu_count=gpus if gpu_model else 0, family=family, source=PRICE_LIST, as_of=today)


def _gib(text: str) -> float | None:
    number = text.replace(",", "").split(" ")[0]
    try:
        value = float(number)
    except ValueError:
        return None
    return value if value > 0 else None


def _bundled_row(table: PriceTable, region: str, itype: str) -> Price | None:
    rows = table.offers(providers="aws", instance_types=itype)
    return next((p for p in rows if p.region == region), rows[0] if rows else None)


__all__ = ["PRICE_LIST", "SPOT_HISTORY", "AwsPriceSource"]
