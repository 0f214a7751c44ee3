"""The agent's side of the worker API (standard library HTTP; see ``costtune/server/app.py``).

``Unreachable`` means the controller could not be reached or answered 5xx (worth retrying, and
what the dead man's switch counts); ``Refused`` is a 4xx answer, with the server's reason.
The token is sent in the ``Authorization`` header only, and never printed.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import urllib.error
import urllib.request
from typing import Any

USER_AGENT = "costtune-agent"


class Unreachable(Exception):
    """No answer, or a 5xx one: the same request may work later."""


class Refused(Exception):
    """A 4xx answer; ``status`` and the server's ``reason``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status, self.reason = status, reason


class WorkerClient:
    def __init__(self, server: str, attempt: int, token: str, *, timeout_s: float = 10.0) -> None:
        self.base = f"{server.rstrip('/')}/v1/attempts/{attempt}"
        self._token = token
        self.timeout_s = timeout_s

    def __repr__(self) -> str:  # never show the token
        return f"WorkerClient({self.base!r})"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[bytes, dict[str, str]]:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(f"{self.base}/{path}", data=data, method=method, headers={
            "Authorization": f"Bearer {self._token}", "User-Agent": USER_AGENT,
            **({"Content-Type": "application/json"} if data is not None else {})})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                return answer.read(), dict(answer.headers.items())
        except urllib.error.HTTPError as exc:
            try:
                text = exc.read()[:2000]
            except (OSError, http.client.HTTPException):
                text = b""  # the reason was cut off with the connection; the status still says what happened
            if exc.code >= 500:
                raise Unreachable(f"{method} {path}: {exc.code}") from None
            try:
                reason = str(json.loads(text).get("error"))
            except (ValueError, AttributeError):
                reason = text.decode("utf-8", "replace")
            raise Refused(exc.code, reason) from None
        except (OSError, ValueError, http.client.HTTPException) as exc:
            # URLError, timeouts, resets, an answer cut short (IncompleteRead) or malformed
            raise Unreachable(f"{method} {path}: {exc}") from None

    def _json(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        raw, _headers = self._call(method, path, body)
        try:
            data = json.loads(raw)
        except ValueError:
            raise Unreachable(f"{method} {path}: the answer is not JSON") from None
        if not isinstance(data, dict):
            raise Unreachable(f"{method} {path}: the answer is not a JSON object")
        return data

    def launch(self) -> dict[str, Any]:
        return self._json("GET", "launch")

    def bundle(self, digest: str) -> bytes:
        """The code bundle; Unreachable when what arrived does not hash to ``digest`` (a cut transfer)."""
        data, _headers = self._call("GET", "bundle")
        if hashlib.sha256(data).hexdigest() != digest:
            raise Unreachable("GET bundle: what arrived does not match its sha256")
        return data

    def lines(self, seq: int, lines: list[str]) -> int:
        """Send lines numbered from ``seq``; the number of the next line the server expects."""
        answer = self._json("POST", "lines", {"seq": seq, "lines": lines})
        next_seq = answer.get("next_seq")
        if not isinstance(next_seq, int):
            raise Unreachable("POST lines: the answer has no next_seq")
        return next_seq

    def heartbeat(self, started_at: float | None) -> tuple[str, str | None]:
        answer = self._json("POST", "heartbeat", {"started_at": started_at})
        decision = answer.get("decision")
        return ("stop" if decision == "stop" else "continue"), answer.get("reason")

    def exit(self, exit_code: int | None, ended_at: float, how: str) -> None:
        self._json("POST", "exit", {"exit_code": exit_code, "ended_at": ended_at, "how": how})
