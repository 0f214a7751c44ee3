"""The sweep file's ``server`` section: where the worker API listens and how agents reach it.

::

    server:
      bind: 0.0.0.0:8470                  # host:port `costtune serve` listens on
      public_url: https://tune.example.org # what instances use (TLS at a reverse proxy)
      lost_after: 10m                     # an agent that cannot reach it this long ends its trial
      bundle_max_mb: 100                  # the code bundle's cap (files, uncompressed)
      start: true                         # `costtune run` serves the API itself (false: a `costtune serve` does)
      heartbeat: 10s                      # how often agents check in (a stop decision reaches them this late)
      stop_grace: 60s                     # a stopped trial's time to checkpoint before its instance is terminated

Every field is optional; errors name the field (``server.lost_after: ...``) and the value.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from costtune.errors import SpecError
from costtune.spec.fields import integer, seconds

DEFAULT_PORT = 8470
FIELDS = ("bind", "public_url", "lost_after", "bundle_max_mb", "start", "heartbeat", "stop_grace")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")
_UNITS = {None: 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.\-]{0,251}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class ServerSettings:
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    public_url: str | None = None  # None: http://<bind> (only sensible for tests and private networks)
    lost_after_s: float = 600.0
    bundle_max_bytes: int = 100 * 1024 * 1024
    start: bool = True  # `costtune run` starts the worker API on ``bind`` itself
    heartbeat_s: float = 10.0
    stop_grace_s: float = 60.0

    @property
    def url(self) -> str:
        """Where agents send their requests (no trailing slash)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"


def duration(value: Any, path: str) -> float:
    """Seconds from a number or text like ``90``, ``90s``, ``10m``, ``1.5h``; > 0."""
    given = value
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise SpecError(path, "must be a duration such as 90s, 10m or 1h", value)
        value = float(match.group(1)) * _UNITS[match.group(2)]
    try:
        return seconds(value, path, positive=True, what="a duration (seconds, or text such as 10m)")
    except SpecError as e:  # name the value as it was given (lost_after: 0s), not the seconds read from it
        raise SpecError(path, e.reason, given) from None


def parse_bind(value: Any, path: str = "server.bind") -> tuple[str, int]:
    """``host:port`` (``[::1]:8470`` for IPv6; port 0 picks a free one); a bare host means port 8470."""
    if not isinstance(value, str) or not value.strip():
        raise SpecError(path, "must be host:port, e.g. 0.0.0.0:8470", value)
    text = value.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ("" if not rest else None)
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            host, port_text = text, ""
    if port_text is None or not host:
        raise SpecError(path, "must be host:port, e.g. 0.0.0.0:8470", value)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST.match(host):
            raise SpecError(path, "host must be an IP address or a host name", value) from None
    if port_text == "":
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise SpecError(path, "port must be a number from 0 to 65535", value)
    return host, int(port_text)


def parse_public_url(value: Any, path: str = "server.public_url") -> str:
    if not isinstance(value, str):
        raise SpecError(path, "must be an http:// or https:// URL", value)
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise SpecError(path, "must be an http:// or https:// URL with a host and no query, e.g. "
                        "https://tune.example.org", value)
    try:
        parts.port  # noqa: B018 - a bad port fails here
    except ValueError:
        raise SpecError(path, "has a port that is not a number from 0 to 65535", value) from None
    return value.strip().rstrip("/")


def parse_server(value: Any) -> ServerSettings:
    """The ``server`` section (None or missing: the defaults)."""
    if value is None:
        return ServerSettings()
    if not isinstance(value, dict):
        raise SpecError("server", "must be a mapping (bind, public_url, lost_after, bundle_max_mb)", value)
    for key in value:
        if key not in FIELDS:
            raise SpecError(f"server.{key}", f"unknown field; allowed: {', '.join(FIELDS)}")
    host, port = parse_bind(value["bind"]) if value.get("bind") is not None else ("0.0.0.0", DEFAULT_PORT)
    public = None if value.get("public_url") is None else parse_public_url(value["public_url"])
    lost = 600.0 if value.get("lost_after") is None else duration(value["lost_after"], "server.lost_after")
    cap = 100 if value.get("bundle_max_mb") is None else integer(value["bundle_max_mb"], "server.bundle_max_mb",
                                                                maximum=100_000)
    start = value.get("start", True)
    if not isinstance(start, bool):
        raise SpecError("server.start", "must be true (costtune run serves the worker API) or false (a costtune "
                        "serve of the same store does)", start)
    heartbeat = 10.0 if value.get("heartbeat") is None else duration(value["heartbeat"], "server.heartbeat")
    if heartbeat * 3 > lost:
        raise SpecError("server.heartbeat", f"must be at most a third of server.lost_after ({lost:g} s): an agent "
                        "would be given up on between two heartbeats", value["heartbeat"])
    grace = 60.0 if value.get("stop_grace") is None else duration(value["stop_grace"], "server.stop_grace")
    return ServerSettings(host=host, port=port, public_url=public, lost_after_s=lost,
                          bundle_max_bytes=cap * 1024 * 1024, start=start, heartbeat_s=heartbeat, stop_grace_s=grace)


__all__ = ["ServerSettings", "duration", "parse_bind", "parse_public_url", "parse_server"]
