"""Who may read and who may act on the dashboard.

- Actions (enqueue, stop, pause/resume, export) need the dashboard token in a header,
  ``Authorization: Bearer <token>`` or ``X-Costtune-Token: <token>``. A cookie never authorizes an
  action, so another site's form or script cannot act with a visitor's cookie (CSRF), and a browser
  sends a custom header cross-site only after a CORS preflight this server never grants.
- Reading (pages and ``GET /api/v1``) is open on a loopback bind (127.0.0.1, ::1, localhost) or with
  ``--public-read``; otherwise it needs the token too: in a header, or the ``costtune_session``
  cookie that ``POST /login`` (a form field ``token``) sets (HttpOnly, SameSite=Strict). The cookie
  holds ``read_session()``, an HMAC-SHA256 of a fixed label keyed by the token: it lets its holder
  read, never act, and the token cannot be got back from it.

Tokens are compared with ``hmac.compare_digest``; the token is never logged (``redact_query``
strips it from an access-log line should a client put it in a URL).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass

from starlette.requests import Request

COOKIE = "costtune_session"
_SESSION_LABEL = b"costtune dashboard read session v1"
_SECRET_IN_QUERY = re.compile(r"(?i)([?&](?:token|access_token)=)[^&#\s]*")


def redact_query(path: str) -> str:
    """``path`` with the value of any ``token=`` query parameter replaced by ``***``."""
    return _SECRET_IN_QUERY.sub(r"\1***", path)
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

    def read_session(self) -> str:
        """The read cookie's value: hex HMAC-SHA256 of a fixed label keyed by the token (64 characters)."""
        return hmac.new(self.token.encode(), _SESSION_LABEL, hashlib.sha256).hexdigest()

    def may_read(self, request: Request) -> bool:
        cookie = request.cookies.get(COOKIE) or ""
        return self.open_read or self.may_act(request) or (
            bool(cookie) and hmac.compare_digest(cookie.encode(), self.read_session().encode()))


__all__ = ["COOKIE", "ENV", "Access", "is_loopback", "new_token", "redact_query"]
