"""The dashboard's money and durations as text, by the CLI's rules, so a page and the CLI print the same.

``with_text(data)`` walks a JSON-ready payload and, beside every amount, adds its text under
``<key>_text``: ``*_micros`` (integer micro-dollars) by ``costtune.money.format_usd``,
``*_micros_per_hour`` the same with ``/h``, ``usd_per_unit_gain`` (a decimal string of dollars) by
``format_usd_decimals``, ``*_ms`` and ``hours_to_next_rung`` by ``costtune.reports.fmt.format_duration``
(``1 h 15 m``). In a list of objects (a table) every row's amounts of one key share the decimals of
the column (``format_usd_column``: ``$0.0640`` beside ``$0.0100``, never ``$0.009985``). A missing
amount (None) is ``-``, as in the CLI. The raw numbers stay, for sorting and charts.
"""

from __future__ import annotations

from typing import Any

from costtune.money import format_usd, format_usd_column, format_usd_decimals
from costtune.reports.fmt import format_duration

MISSING = "-"


def _kind(key: str, value: Any) -> str | None:
    if isinstance(value, bool) or not (value is None or isinstance(value, int | float | str)):
        return None
    if key.endswith("_micros_per_hour") and not isinstance(value, str | float):
        return "rate"
    if key.endswith("_micros") and not isinstance(value, str | float):
        return "usd"
    if key == "usd_per_unit_gain":
        return "ratio"
    if (key.endswith("_ms") and not isinstance(value, str)) or key == "hours_to_next_rung":
        return "duration"
    return None


def _one(kind: str, key: str, value: Any) -> str:
    if value is None:
        return MISSING
    if kind == "usd":
        return format_usd(value)
    if kind == "rate":
        return format_usd(value) + "/h"
    if kind == "ratio":
        return format_usd_decimals([value], MISSING)[0]
    return format_duration(value * 3600 if key == "hours_to_next_rung" else value / 1000, MISSING)


def _column(kind: str, key: str, values: list[Any]) -> list[str]:
    if kind == "usd":
        return format_usd_column(values, MISSING)
    if kind == "rate":
        return [t if v is None else t + "/h" for v, t in zip(values, format_usd_column(values, MISSING), strict=True)]
    if kind == "ratio":
        return format_usd_decimals(values, MISSING)
    return [_one(kind, key, v) for v in values]


def with_text(data: Any) -> Any:
    """``data`` with the ``*_text`` companions added (in place for dicts and lists; also returned)."""
    if isinstance(data, dict):
        for key, value in list(data.items()):
            if key.endswith("_text"):
                continue
            kind = _kind(key, value)
            if kind is not None:
                data[f"{key}_text"] = _one(kind, key, value)
            elif isinstance(value, dict | list):
                with_text(value)
    elif isinstance(data, list) and data and all(isinstance(row, dict) for row in data):
        for row in data:
            with_text(row)
        keys = {k: kind for row in data for k, v in row.items() if (kind := _kind(k, v)) is not None}
        for key, kind in keys.items():
            values = [row.get(key) for row in data]
            for row, text in zip(data, _column(kind, key, values), strict=True):
                if key in row:
                    row[f"{key}_text"] = text
    elif isinstance(data, list):
        for item in data:
            if isinstance(item, dict | list):
                with_text(item)
    return data


__all__ = ["MISSING", "with_text"]
