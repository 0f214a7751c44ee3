"""Threshold alerts: which thresholds a window has crossed, and the webhook that tells people.

A threshold of ``actual`` compares what the window has committed (spent plus held by running
launches) with its percentage of the policy's cap (``cap_usd``, else ``soft_cap_usd``); one of
``forecast`` compares the run-rate forecast to the window's end (``windows.forecast_micros``). A launch the
hard cap refuses counts as the cap reached (spend stops just short of it). A soft
cap without thresholds alerts (log, and the webhook when there is one) when the committed spend
reaches it. The store records each firing once per (window, threshold): see ``PolicyBook.fire_alert``.

Webhooks are posted from one background thread with a short timeout and retried with backoff
(0.5 s, 1 s, 2 s, ...); the outcome is recorded in the audit trail (``policy.webhook``). A launch
decision never waits for one.

Webhook body (JSON, POST, ``Content-Type: application/json``)::

    {"text": "costtune: policy 'vision-daily' reached 80% of actual: $400.00 of $500.00 (daily from
              2026-11-30 (Europe/Lisbon))",
     "policy": "vision-daily", "threshold": "80% of actual", "percent": 80, "of": "actual",
     "window": "policy:vision-daily:daily:2026-11-30", "window_start": "2026-11-30T00:00:00+00:00",
     "window_end": "2026-12-01T00:00:00+00:00", "spent_usd": "380.00", "held_usd": "20.00",
     "committed_usd": "400.00", "forecast_usd": "812.50", "cap_usd": "500.00", "actions": ["log", "webhook"],
     "study": "resnet-sweep", "fired_at": "2026-11-30T14:02:11+00:00"}

``text`` is what Slack (and Mattermost, Teams' incoming webhooks) show; other receivers read the fields.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from costtune.policies.model import Policy, Threshold, Webhook
from costtune.policies.windows import WindowSpan, forecast_micros

from costtune.money import micros_to_usd

log = logging.getLogger(__name__)
SOFT_CAP = Threshold(percent=100, of="actual", actions=("log", "webhook"))


@dataclass(frozen=True)
class Crossing:
    threshold: Threshold
    label: str  # stored name: "80% of actual", or "soft cap"
    body: dict[str, Any]


def crossed(policy: Policy, window: WindowSpan, spent: int, held: int, now: datetime, *, study: str = "",
            full: bool = False) -> list[Crossing]:
    """Every threshold of ``policy`` that the window's spend reaches now (fired before or not).

    ``full``: the hard cap refused a launch for want of room, so the window counts as at its cap (a
    hard cap stops spend just short of 100%, which would otherwise never be reached)."""
    committed = spent + held
    if full and policy.cap_micros is not None:
        committed = max(committed, policy.cap_micros)
    forecast = forecast_micros(committed, window, now) if window.start is not None else committed
    out = []
    checks: list[tuple[Threshold, str, int | None]] = [(t, t.label, policy.base_micros) for t in policy.thresholds]
    if policy.soft_cap_micros is not None and not policy.thresholds:
        checks.append((SOFT_CAP, "soft cap", policy.soft_cap_micros))
    for threshold, label, base in checks:
        if base is None:
            continue
        value = committed if threshold.of == "actual" else forecast
        if value * 100 < threshold.percent * base:
            continue
        actions = [a for a in threshold.actions if a != "webhook" or policy.webhook is not None]
        text = (f"costtune: policy '{policy.name}' reached {label}: ${micros_to_usd(value):.2f} of "
                f"${micros_to_usd(base):.2f} ({window.label})")
        body = {"text": text, "policy": policy.name, "threshold": label, "percent": threshold.percent,
                "of": threshold.of, "window": window.scope,
                "window_start": window.start.isoformat() if window.start else None,
                "window_end": window.end.isoformat() if window.end else None,
                "spent_usd": _usd(spent), "held_usd": _usd(held), "committed_usd": _usd(committed),
                "forecast_usd": _usd(forecast), "cap_usd": _usd(base), "actions": actions, "study": study,
                "fired_at": now.isoformat()}
        out.append(Crossing(threshold, label, body))
    return out


def _usd(micros: int) -> str:
    return f"{micros_to_usd(micros):.2f}"


class WebhookSender:
    """Posts webhook bodies from one daemon thread; ``send`` only queues. ``record(detail)`` is called
    from that thread with each delivery's outcome (``ok``, ``status``, ``attempts``, ``error``)."""

    def __init__(self, record: Callable[[dict[str, Any]], None] | None = None, *, backoff_s: float = 0.5) -> None:
        self._queue: queue.Queue[tuple[Webhook, dict[str, Any]] | None] = queue.Queue()
        self._record = record
        self._backoff_s = backoff_s
        self._thread: threading.Thread | None = None

    def send(self, hook: Webhook, body: dict[str, Any]) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="costtune-webhooks", daemon=True)
            self._thread.start()
        self._queue.put((hook, body))

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued, waiting at most ``timeout`` seconds (the rest is dropped: recorded as
        fired in the store, so not repeated)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            hook, body = item
            outcome = post(hook, body, backoff_s=self._backoff_s)
            if self._record is not None:
                try:
                    self._record({"url": hook.url, "policy": body.get("policy"), "threshold": body.get("threshold"),
                                  "window": body.get("window"), **outcome})
                except Exception:  # the store may be gone at exit; the log has it
                    log.warning("could not record a webhook's outcome", exc_info=True)


def post(hook: Webhook, body: dict[str, Any], *, backoff_s: float = 0.5,
         sleep: Callable[[float], None] | None = None) -> dict[str, Any]:
    """POST ``body`` as JSON, retrying ``hook.retries`` times with doubling backoff on a connection error,
    a timeout, 429 or 5xx. Returns ``{"ok", "status", "attempts", "error"}``; never raises."""
    import time

    wait = sleep or time.sleep
    data = json.dumps(body).encode()
    status, error = None, ""
    for attempt in range(1, hook.retries + 2):
        request = urllib.request.Request(hook.url, data=data, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "costtune"})
        try:
            with urllib.request.urlopen(request, timeout=hook.timeout_s) as response:
                status = response.status
                return {"ok": True, "status": status, "attempts": attempt, "error": ""}
        except urllib.error.HTTPError as exc:
            status, error = exc.code, f"HTTP {exc.code}"
            if exc.code != 429 and exc.code < 500:
                break
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            status, error = None, str(getattr(exc, "reason", exc))
        if attempt <= hook.retries:
            wait(backoff_s * 2 ** (attempt - 1))
    log.warning("webhook %s failed: %s", hook.url, error)
    return {"ok": False, "status": status, "attempts": attempt, "error": error}
