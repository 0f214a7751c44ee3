"""Threshold webhooks: a receiver on 127.0.0.1 gets the documented body; failures are retried with
backoff and recorded; a slow or dead receiver never holds up the controller (issue 10)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from costtune.policies import parse_policy
from costtune.policies.alerts import WebhookSender, post
from costtune.policies.model import Webhook
from test_policy_enforce import SWEEP, TEAM, run

from costtune.store import Store

DOCUMENTED = {"text", "policy", "threshold", "percent", "of", "window", "window_start", "window_end", "spent_usd",
              "held_usd", "committed_usd", "forecast_usd", "cap_usd", "actions", "study", "fired_at"}


class Receiver:
    def __init__(self, status: int = 200, gate: threading.Event | None = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[str] = []
        self.auth: list[str | None] = []
        self.status = status
        self.gate = gate
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if receiver.gate is not None:
                    receiver.gate.wait(10)
                length = int(self.headers["Content-Length"])
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                receiver.headers.append(self.headers["Content-Type"])
                receiver.auth.append(self.headers.get("Authorization"))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/costtune"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_crossed_threshold_posts_the_documented_body_once(tmp_path: Path, receiver: Receiver) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    policy = {**TEAM, "webhook": {"url": receiver.url, "timeout_s": 2},
              "thresholds": [{"percent": 50, "actions": ["log", "webhook"]}]}
    store.apply_policies([parse_policy(policy)])
    run(store, SWEEP)
    run(store, SWEEP, name="vision-b")  # crosses nothing new: no second post
    assert len(receiver.bodies) == 1 and receiver.headers == ["application/json"]
    body = receiver.bodies[0]
    assert set(body) == DOCUMENTED
    assert body["policy"] == "team-daily" and body["threshold"] == "50% of actual" and body["cap_usd"] == "0.10"
    assert body["text"].startswith("costtune: policy 'team-daily' reached 50% of actual: $")
    assert f"(${body['spent_usd']} spent, ${body['held_usd']} held by running trials; daily" in body["text"]
    assert body["window"] == "policy:team-daily:daily:2026-11-30" and body["study"] == "vision-a"
    [outcome] = store.audit_log(action="policy.webhook")
    assert outcome.detail["ok"] is True and outcome.detail["status"] == 200 and outcome.detail["attempts"] == 1


def test_a_dead_receiver_is_retried_with_backoff_recorded_and_the_sweep_runs_on(tmp_path: Path) -> None:
    waits: list[float] = []
    hook = Webhook(url=f"http://127.0.0.1:{_dead_port()}/x", timeout_s=0.5, retries=3)
    outcome = post(hook, {"text": "x"}, backoff_s=0.5, sleep=waits.append)
    assert outcome["ok"] is False and outcome["attempts"] == 4 and waits == [0.5, 1.0, 2.0]
    assert outcome["error"]
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    policy = {**TEAM, "webhook": {"url": hook.url, "timeout_s": 0.2, "retries": 0},
              "thresholds": [{"percent": 50, "actions": ["webhook"]}]}
    store.apply_policies([parse_policy(policy)])
    _study, status, warnings = run(store, SWEEP)
    assert status.launched >= 3  # it launched on, and ended
    [recorded] = store.audit_log(action="policy.webhook")
    assert recorded.detail["ok"] is False and recorded.detail["policy"] == "team-daily"
    assert recorded.detail["outcome"] == "failed" and recorded.detail["error"].startswith("failed after 1 try")
    assert len([w for w in warnings if w.startswith("webhooks: 1 of 1 alert deliveries failed")]) == 1


def test_server_errors_are_retried_client_errors_are_not() -> None:
    failing = Receiver(status=503)
    refused = Receiver(status=400)
    try:
        waits: list[float] = []
        out = post(Webhook(url=failing.url, retries=2), {"text": "x"}, sleep=waits.append)
        assert (out["ok"], out["status"], out["attempts"], len(failing.bodies)) == (False, 503, 3, 3)
        out = post(Webhook(url=refused.url, retries=2), {"text": "x"}, sleep=waits.append)
        assert (out["ok"], out["status"], out["attempts"], len(refused.bodies)) == (False, 400, 1, 1)
    finally:
        failing.close()
        refused.close()


def test_sending_never_waits_for_the_receiver() -> None:
    gate = threading.Event()
    slow = Receiver(gate=gate)  # answers only when the gate opens
    outcomes: list[dict[str, Any]] = []
    sender = WebhookSender(outcomes.append)
    try:
        for i in range(3):
            sender.send(Webhook(url=slow.url, timeout_s=5, retries=0), {"text": f"alert {i}"})
        assert outcomes == [] and slow.bodies == []  # every send returned while the receiver still holds the first
        gate.set()
        sender.close(timeout=10)
        assert [o["ok"] for o in outcomes] == [True, True, True]
        assert [b["text"] for b in slow.bodies] == ["alert 0", "alert 1", "alert 2"]
    finally:
        gate.set()
        slow.close()


def _ten(sender: WebhookSender, hook: Webhook) -> None:
    for i in range(10):
        sender.send(hook, {"text": f"alert {i}", "policy": "p", "threshold": f"{i}0% of actual", "window": "w"})


def test_every_alert_gets_one_delivery_record_even_when_the_receiver_is_down_or_never_answers() -> None:
    outcomes: list[dict[str, Any]] = []
    sender = WebhookSender(outcomes.append)
    _ten(sender, Webhook(url=f"http://127.0.0.1:{_dead_port()}/x", timeout_s=0.5, retries=3))
    counts = sender.close()
    assert sorted(o["threshold"] for o in outcomes) == sorted(f"{i}0% of actual" for i in range(10))
    assert {o["outcome"] for o in outcomes} <= {"failed", "abandoned"} and counts["sent"] == 0
    assert sum(counts.values()) == 10
    gate = threading.Event()
    silent = Receiver(gate=gate)  # accepts, never answers while the gate is shut
    try:
        outcomes.clear()
        sender = WebhookSender(outcomes.append)
        _ten(sender, Webhook(url=silent.url, timeout_s=30, retries=2))
        counts = sender.close()
        assert len(outcomes) == 10 and counts == {"sent": 0, "failed": 0, "abandoned": 10}
        assert all(o["error"].startswith("abandoned at exit") for o in outcomes)
    finally:
        gate.set()
        silent.close()


def test_a_url_with_a_password_is_sent_with_basic_auth_and_shown_masked(tmp_path: Path, receiver: Receiver) -> None:
    import base64

    from click.testing import CliRunner

    from costtune.cli import main

    port = receiver.url.split(":")[2].split("/")[0]
    url = f"http://ops:s%40cret@127.0.0.1:{port}/hooks/costtune?token=t0ken"
    outcomes: list[dict[str, Any]] = []
    sender = WebhookSender(outcomes.append)
    sender.send(Webhook(url=url, retries=0), {"text": "x", "policy": "p"})
    sender.close(timeout=10)
    assert outcomes[0]["ok"] is True and outcomes[0]["outcome"] == "sent"
    assert receiver.auth == ["Basic " + base64.b64encode(b"ops:s@cret").decode()]
    assert outcomes[0]["url"] == f"http://ops:***@127.0.0.1:{port}/hooks/costtune?***"
    db = f"sqlite:///{tmp_path / 's.db'}"
    store = Store(db)
    store.apply_policies([parse_policy({**TEAM, "webhook": {"url": url},
                                        "thresholds": [{"percent": 50, "actions": ["webhook"]}]})])
    shown = "".join(CliRunner().invoke(main, [*cmd, "--db", db]).output for cmd in (
        ["policy", "show", "team-daily"], ["policy", "list", "--format", "json"], ["audit", "--format", "json"]))
    assert "s%40cret" not in shown and "t0ken" not in shown and "ops:***@127.0.0.1" in shown
    assert store.policies()[0].webhook.url == url  # stored as written: it is delivered
