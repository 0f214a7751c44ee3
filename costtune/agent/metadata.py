"""Spot interruption notices from the instance metadata service (AWS IMDSv2).

``PUT {base}/latest/api/token`` (header ``X-aws-ec2-metadata-token-ttl-seconds``) gives a session
token; ``GET {base}/latest/meta-data/spot/instance-action`` with it answers 404 until AWS schedules
the interruption, then ``{"action": "terminate", "time": "..."}`` about two minutes ahead. The base
URL is configurable (a local fake in tests). GCP and Azure announce preemption differently: each
gets its own watcher with the same ``check`` method.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

DEFAULT_BASE = "http://169.254.169.254"
_TOKEN_TTL_S = 21600
_TIMEOUT_S = 2.0


class SpotNoticeWatcher:
    """``check()`` returns the notice (``"terminate at 2026-11-30T06:00:00Z"``) once there is one, else None."""

    def __init__(self, base_url: str = DEFAULT_BASE, *, timeout_s: float = _TIMEOUT_S) -> None:
        self.base = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._token: str | None = None
        self._token_until = 0.0

    def _session_token(self) -> str | None:
        if self._token is not None and time.monotonic() < self._token_until:
            return self._token
        request = urllib.request.Request(f"{self.base}/latest/api/token", method="PUT",
                                         headers={"X-aws-ec2-metadata-token-ttl-seconds": str(_TOKEN_TTL_S)})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                self._token = answer.read().decode("ascii", "replace").strip()
        except (OSError, ValueError):
            return None  # no metadata service (not on an instance, or it is busy): no notice seen
        self._token_until = time.monotonic() + _TOKEN_TTL_S - 60
        return self._token

    def check(self) -> str | None:
        token = self._session_token()
        if token is None:
            return None
        request = urllib.request.Request(f"{self.base}/latest/meta-data/spot/instance-action",
                                         headers={"X-aws-ec2-metadata-token": token})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                self._token = None  # expired: a new one next time
            return None
        except (OSError, ValueError):
            return None
        try:
            notice = json.loads(raw)
        except ValueError:
            return "interruption notice"
        if not isinstance(notice, dict):
            return "interruption notice"
        return f"{notice.get('action', 'interruption')} at {notice.get('time', 'an unknown time')}"
