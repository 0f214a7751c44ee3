"""Live prices: what ``costtune prices refresh`` fetched, cached in a file under ``COSTTUNE_HOME``.

The cache is one JSON file, ``$COSTTUNE_HOME/prices/live-prices.json``: every row is a price (with
its API as ``source``) plus the moment it was fetched (``fetched_at``, UTC). A refresh replaces the
rows of the provider and regions it fetched and keeps the others; the new file is written beside
the old one and renamed over it, so a reader sees the old prices or the new, never half of each.

A row is fresh for ``LIVE_TTL_S`` after it was fetched. ``current_table`` lays the fresh rows over the
bundled snapshot: a budget decision uses the newest price there is and falls back to the snapshot
(the caller warns) when no fresh one exists. Reading the cache never needs a network.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from costtune.errors import InputError
from costtune.prices.catalog import PriceTable
from costtune.prices.price import Price, PriceKey

LIVE_FILE = "live-prices.json"
LIVE_TTL_S = 24 * 3600  # a fetched price is fresh for a day; spot moves slowly (hours), on-demand monthly
FORMAT = 1


@dataclass(frozen=True)
class LivePrice:
    price: Price
    fetched_at: datetime.datetime  # UTC, when the API answered

    def age_s(self, now: datetime.datetime) -> float:
        return (now - self.fetched_at).total_seconds()


def live_path() -> Path:
    """``$COSTTUNE_HOME/prices/live-prices.json``."""
    from costtune.store.engine import costtune_home  # the store package is heavy: only when needed

    return costtune_home() / "prices" / LIVE_FILE


def load_live(path: Path | None = None) -> list[LivePrice]:
    """Every cached row; an absent file is an empty cache. ``InputError`` names a file that is not one."""
    path = path or live_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a live price cache ({exc}); delete it and run `costtune prices refresh`") \
            from None
    try:
        return [_row(item) for item in data["prices"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a live price cache ({exc}); delete it and run `costtune prices refresh`") \
            from None


def save_live(prices: Iterable[Price], *, provider: str, regions: Sequence[str], fetched_at: datetime.datetime,
              path: Path | None = None) -> Path:
    """Replace the cached rows of ``provider`` in ``regions`` with ``prices``, atomically; returns the path."""
    path = path or live_path()
    kept = [row for row in load_live(path) if not (row.price.provider == provider and row.price.region in regions)]
    rows = kept + [LivePrice(p, fetched_at) for p in prices]
    payload = {"format": FORMAT, "prices": [_dump(row) for row in rows]}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".live-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(payload, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def current_table(base: PriceTable | None = None, *, now: datetime.datetime | None = None,
                  ttl_s: float = LIVE_TTL_S, path: Path | None = None) -> tuple[PriceTable, dict[PriceKey, LivePrice]]:
    """The bundled table (or ``base``) with every fresh live row on top, and the fresh rows by key.

    Rows older than ``ttl_s`` are left out: the snapshot's price serves, and the caller warns.
    """
    base = base if base is not None else PriceTable.bundled()
    now = now or datetime.datetime.now(datetime.UTC)
    fresh = [row for row in load_live(path) if 0 <= row.age_s(now) <= ttl_s]
    if not fresh:
        return base, {}
    table = base.with_prices(row.price for row in fresh)
    return table, {row.price.key: row for row in fresh if row.price.zone is None}


def _dump(row: LivePrice) -> dict[str, object]:
    item = asdict(row.price)
    item["as_of"] = row.price.as_of.isoformat()
    item["fetched_at"] = row.fetched_at.isoformat()
    return item


def _row(item: dict[str, object]) -> LivePrice:
    fields = dict(item)
    fetched = datetime.datetime.fromisoformat(str(fields.pop("fetched_at")))
    if fetched.tzinfo is None:
        raise ValueError("fetched_at has no time zone")
    fields["as_of"] = datetime.date.fromisoformat(str(fields["as_of"]))
    return LivePrice(Price(**fields), fetched)  # type: ignore[arg-type]


__all__ = ["LIVE_FILE", "LIVE_TTL_S", "LivePrice", "current_table", "live_path", "load_live", "save_live"]
