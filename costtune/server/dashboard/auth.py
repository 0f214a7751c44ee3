"""Who may read and who may act on the dashboard.

- Actions (enqueue, stop, pause/resume, export) need the dashboard token in a header,
  ``Authorization: Bearer <token>`` or ``X-Costtune-Token: <token>``. A cookie never authorizes an
  action, so another site's form or script cannot act with a visitor's cookie (CSRF), and a browser
  sends a custom header cross-site only after a CORS preflight this server never grants.
- Reading (pages and ``GET /api/v1``) is open on a loopback bind (127.0.0.1, ::1, localhost) or with
  ``--public-read``; otherwise it needs the token too: in a header, or in the ``costtune_token``
  cookie that ``/login?token=...`` sets (HttpOnly, SameSite=Strict).

Tokens are compared with ``hmac.compare_digest``; the token is never logged.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass

from starlette.requests import Request

COOKIE = "costtune_token"
ENV = "COSTTUNE_DASHBOARD_TOKEN"


def new_token() -> str:
    """A fresh random token (32 bytes, URL-safe base64)."""
    return secrets.token_urlsafe(32)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address) only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Access:
    """The dashboard's token and whether reading needs it (``open_read``: loopback or --public-read)."""

    token: str
    open_read: bool

    def _matches(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())  # type: ignore[union-attr]

    def header_token(self, request: Request) -> str | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return request.headers.get("x-costtune-token") or None

    def may_act(self, request: Request) -> bool:
        return self._matches(self.header_token(request))

    def may_read(self, request: Request) -> bool:
        return self.open_read or self.may_act(request) or self._matches(request.cookies.get(COOKIE))


__all__ = ["COOKIE", "ENV", "Access", "is_loopback", "new_token"]
