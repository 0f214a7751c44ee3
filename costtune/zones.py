"""The one check of a time zone name a user gives (a policy window's ``timezone``, ``schedule add --tz``,
``spend --timezone``): an IANA name, so that every machine sharing a store reads it the same way.

Accepted: the names of the IANA time zone database (``Europe/Lisbon``, ``America/New_York``, ``Etc/UTC``,
``UTC``), with ``UTC`` in any case (``utc``) meaning ``UTC``. Refused: ``localtime`` (the host's own zone,
which differs between machines), ``posix/...`` and ``right/...`` copies (``right/`` counts leap seconds),
``Factory``, and anything the database does not name. The list comes from the ``tzdata`` package (a
dependency), else from the system's zone files.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from costtune.errors import SpecError

_NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})
EXAMPLES = "such as UTC, Europe/Lisbon, America/New_York"


@lru_cache(maxsize=1)
def iana_names() -> frozenset[str]:
    """Every IANA time zone name this install knows (``tzdata``'s list, else the system's)."""
    try:
        import importlib.resources

        names = set(importlib.resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split())
    except (ImportError, OSError, ValueError):
        from zoneinfo import available_timezones

        names = set(available_timezones())
    return frozenset(n for n in names if n not in _NOT_ZONES and not n.startswith(("posix/", "right/")))


def iana_zone(value: Any, field: str) -> str:
    """``value`` as an IANA time zone name (``utc`` -> ``UTC``); ``SpecError`` naming ``field`` and the
    value when it is not one."""
    if not isinstance(value, str) or not value.strip():
        raise SpecError(field, f"must be an IANA time zone name ({EXAMPLES})", value)
    if value.upper() == "UTC":
        return "UTC"
    names = iana_names()
    if value not in names and (names or not _loads(value)):  # no list at all: whatever zoneinfo can load
        raise SpecError(field, f"is not a known IANA time zone ({EXAMPLES}; not localtime, posix/ or right/ "
                               "names)", value)
    return value


def _loads(value: str) -> bool:
    """Whether ``zoneinfo`` loads ``value`` and it is none of the names refused everywhere."""
    from zoneinfo import ZoneInfo

    if value in _NOT_ZONES or value.startswith(("posix/", "right/")):
        return False
    try:
        ZoneInfo(value)
    except (ValueError, OSError, KeyError):
        return False
    return True
