"""Threshold alerts: which thresholds a window has crossed, and the webhook that tells people.

A threshold of ``actual`` compares what the window has committed (spent plus held by running
launches: a launch's reservation counts the moment it is made, so an alert can fire on money that is only
held; the text and the body say how much is spent and how much held) with its percentage of the
policy's cap (``cap_usd``, else ``soft_cap_usd``); one of
``forecast`` compares the run-rate forecast to the window's end (``windows.forecast_micros``). A launch the
hard cap refuses counts as the cap reached (spend stops just short of it). A soft
cap without thresholds alerts (log, and the webhook when there is one) when the committed spend
reaches it. The store records each firing once per (window, threshold): see ``PolicyBook.fire_alert``.

Webhooks are posted from one background thread (a bounded queue) with a short timeout and retried
with backoff (0.5 s, 1 s, 2 s, ...); every alert's delivery is recorded in the audit trail
(``policy.webhook``: sent, failed after N tries, or abandoned at exit). A launch decision never waits
for one, and a run waits at most ``EXIT_WAIT_S`` (1 s) at exit for what is still queued.

Webhook body (JSON, POST, ``Content-Type: application/json``)::

    {"text": "costtune: policy 'vision-daily' reached 80% of actual: $400.00 committed of $500.00 ($380.00
              spent, $20.00 held by running trials; daily from 2026-11-30 (Europe/Lisbon))",
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
from costtune.words import plural

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
        basis = "committed" if threshold.of == "actual" else "forecast"
        text = (f"costtune: policy '{policy.name}' reached {label}: ${micros_to_usd(value):.2f} {basis} of "
                f"${micros_to_usd(base):.2f} (${micros_to_usd(spent):.2f} spent, ${micros_to_usd(held):.2f} held "
                f"by running trials; {window.label})")
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


def masked_url(url: str) -> str:
    """A webhook URL as shown (listings, audit records, warnings): its password (``mask_url``) and its
    whole query string (tokens often live there) replaced by ``***``."""
    from costtune.store.engine import mask_url

    head, sep, _query = mask_url(url).partition("?")
    return f"{head}?***" if sep else head


def public_body(raw: dict[str, Any]) -> dict[str, Any]:
    """A policy's body as written, its webhook URL masked (``masked_url``): for show, list and the audit."""
    hook = raw.get("webhook")
    if isinstance(hook, dict) and isinstance(hook.get("url"), str):
        return {**raw, "webhook": {**hook, "url": masked_url(hook["url"])}}
    return raw


_MAX_QUEUED = 100  # alerts waiting for delivery; more are recorded as abandoned, never block the loop
EXIT_WAIT_S = 1.0  # at most this long at exit for the deliveries still queued; the rest are abandoned


class WebhookSender:
    """Posts webhook bodies from one daemon thread; ``send`` only queues (bounded: never blocks).

    Every alert handed to it gets exactly one ``record(detail)`` call (from the thread, or from ``close``
    for what it abandons): ``outcome`` ``sent`` | ``failed`` (after ``attempts`` tries) | ``abandoned``
    (queue full, or still undelivered at exit), with ``url`` (masked), ``policy``, ``threshold``,
    ``window``, ``ok``, ``status``, ``attempts`` and ``error``. Once ``close`` is called, the queue is
    delivered without retries or backoff for at most ``timeout`` seconds."""

    def __init__(self, record: Callable[[dict[str, Any]], None] | None = None, *, backoff_s: float = 0.5) -> None:
        self._queue: queue.Queue[tuple[int, Webhook, dict[str, Any]]] = queue.Queue(maxsize=_MAX_QUEUED)
        self._record = record
        self._backoff_s = backoff_s
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._seq = 0
        self._current: tuple[int, Webhook, dict[str, Any]] | None = None
        self._done: set[int] = set()
        self.counts = {"sent": 0, "failed": 0, "abandoned": 0}
        self.last_error = ""

    def send(self, hook: Webhook, body: dict[str, Any]) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="costtune-webhooks", daemon=True)
            self._thread.start()
        self._seq += 1
        item = (self._seq, hook, body)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._finish(item, {"ok": False, "status": None, "attempts": 0,
                                "error": f"abandoned: {_MAX_QUEUED} alerts already waiting for delivery"})

    def close(self, timeout: float = EXIT_WAIT_S) -> dict[str, int]:
        """Deliver what is queued (one try each, no backoff) for at most ``timeout`` seconds; record the rest
        as abandoned. Returns the counts of ``sent``, ``failed`` and ``abandoned`` deliveries."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        left = [self._current] if self._current is not None else []
        while True:
            try:
                left.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for item in left:
            if item is not None:
                self._finish(item, {"ok": False, "status": None, "attempts": 0,
                                    "error": f"abandoned at exit: not delivered within {timeout:g} s"})
        return dict(self.counts)

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.05 if self._closing.is_set() else 0.5)
            except queue.Empty:
                if self._closing.is_set():
                    return
                continue
            self._current = item
            _seq, hook, body = item
            outcome = post(hook, body, backoff_s=self._backoff_s, sleep=self._closing.wait,
                           give_up=self._closing.is_set)
            self._finish(item, outcome)
            self._current = None

    def _finish(self, item: tuple[int, Webhook, dict[str, Any]], outcome: dict[str, Any]) -> None:
        seq, hook, body = item
        with self._lock:
            if seq in self._done:
                return  # close() abandoned it while it was being tried
            self._done.add(seq)
            kind = "sent" if outcome["ok"] else "abandoned" if outcome["error"].startswith("abandoned") else "failed"
            self.counts[kind] += 1
            if not outcome["ok"]:
                self.last_error = outcome["error"]
        if self._record is not None:
            try:
                self._record({"url": masked_url(hook.url), "policy": body.get("policy"),
                              "threshold": body.get("threshold"), "window": body.get("window"), "outcome": kind,
                              **outcome})
            except Exception:  # the store may be gone at exit; the log has it
                log.warning("could not record a webhook's outcome", exc_info=True)


def _request(hook: Webhook, data: bytes) -> urllib.request.Request:
    """The POST; a ``user:password@`` in the URL becomes a basic ``Authorization`` header (urllib would
    take it for part of the host name)."""
    import base64
    from urllib.parse import unquote, urlsplit, urlunsplit

    headers = {"Content-Type": "application/json", "User-Agent": "costtune"}
    url = hook.url
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        url = urlunsplit(parts._replace(netloc=host + (f":{parts.port}" if parts.port else "")))
    return urllib.request.Request(url, data=data, method="POST", headers=headers)


def post(hook: Webhook, body: dict[str, Any], *, backoff_s: float = 0.5,
         sleep: Callable[[float], object] | None = None, give_up: Callable[[], bool] | None = None
         ) -> dict[str, Any]:
    """POST ``body`` as JSON, retrying ``hook.retries`` times with doubling backoff on a connection error,
    a timeout, 429 or 5xx (no more retries once ``give_up()`` is true). Returns ``{"ok", "status",
    "attempts", "error"}`` (errors name the URL masked); never raises."""
    import time

    wait = sleep or time.sleep
    data = json.dumps(body).encode()
    status, error = None, ""
    for attempt in range(1, hook.retries + 2):
        try:
            with urllib.request.urlopen(_request(hook, data), timeout=hook.timeout_s) as response:
                status = response.status
                return {"ok": True, "status": status, "attempts": attempt, "error": ""}
        except urllib.error.HTTPError as exc:
            status, error = exc.code, f"HTTP {exc.code}"
            if exc.code != 429 and exc.code < 500:
                break
        except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
            status, error = None, str(getattr(exc, "reason", exc))
        if attempt <= hook.retries and not (give_up is not None and give_up()):
            wait(backoff_s * 2 ** (attempt - 1))
        else:
            break
    error = f"failed after {plural(attempt, 'try', 'tries')}: {error}"
    log.warning("webhook %s %s", masked_url(hook.url), error)
    return {"ok": False, "status": status, "attempts": attempt, "error": error}
