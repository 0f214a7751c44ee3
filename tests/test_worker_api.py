"""The worker API's refusals and its bookkeeping (issue 9, item 5), on every store backend.

uvicorn serves the real app on 127.0.0.1 (port 0); requests go through the standard library. Every
refusal is a 4xx with a JSON reason and leaves the store exactly as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import Session, select

from costtune.history import Mode
from costtune.protocol import MetricLineError, parse_line
from costtune.server.run import BackgroundServer
from costtune.store import Store
from costtune.store.models import AttemptRow, ReportRow, TrialRow
from costtune.store.remote_models import BundleRow, RemoteAttemptRow, RemoteLineRow

TOKENS = {1: "token-of-attempt-one", 2: "token-of-attempt-two"}


@pytest.fixture
def served(store: Store) -> Iterator[dict[str, Any]]:
    study = store.create_study("api", metric="loss", mode=Mode.MIN, space={}, sampler={"type": "manual"})
    ids = {}
    for n in (1, 2):
        number = store.enqueue(study.id, {"x": n})
        with Session(store.engine) as s:
            trial = s.exec(select(TrialRow.id).where(TrialRow.study_id == study.id, TrialRow.number == number)).one()
        ids[n] = store.start_attempt(trial, 1, idempotency_key=f"key-{n}", provider="test", rate_micros_per_hour=0)
        store.put_bundle(hashlib.sha256(b"bundle").hexdigest(), b"bundle")
        store.register_remote(ids[n], token_sha256=hashlib.sha256(TOKENS[n].encode()).hexdigest(),
                              launch={"trial": {"command": ["python", "t.py"], "env": {"SECRET": "s"}}},
                              bundle_digest=hashlib.sha256(b"bundle").hexdigest())
    with BackgroundServer(store) as server:
        yield {"store": store, "url": server.url, "ids": ids, "port": server.port}


def call(served: dict[str, Any], method: str, attempt: int, route: str, body: Any = None,
         token: str | None = None) -> tuple[int, Any]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(f"{served['url']}/v1/attempts/{attempt}/{route}", data=data, method=method,
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            raw = answer.read()
            return answer.status, (json.loads(raw) if answer.headers.get_content_type() == "application/json"
                                   else raw)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def snapshot(store: Store) -> list[Any]:
    with Session(store.engine) as s:
        return [[row.model_dump() for row in s.exec(select(model)).all()]
                for model in (AttemptRow, RemoteAttemptRow, RemoteLineRow, ReportRow, BundleRow)]


ROUTES = [("GET", "launch", None), ("GET", "bundle", None), ("POST", "lines", {"seq": 0, "lines": ["hi"]}),
          ("POST", "heartbeat", {}), ("POST", "exit", {"exit_code": 0, "ended_at": 1.7e9, "how": "exited"})]


def test_missing_wrong_or_another_attempts_token_is_refused_and_changes_nothing(served: dict[str, Any]) -> None:
    store, one = served["store"], served["ids"][1]
    before = snapshot(store)
    for method, route, body in ROUTES:
        for token, status, words in ((None, 401, "missing token"), ("guess", 401, "wrong token"),
                                     (TOKENS[2], 403, "another attempt"), (f"Bearer {TOKENS[1]}x", 401, "wrong")):
            code, answer = call(served, method, one, route, body, token)
            assert (code, words in answer["error"]) == (status, True), (route, token, answer)
        assert call(served, method, 999, route, body, TOKENS[2])[0] == 403  # no such attempt: still not its token
    assert snapshot(store) == before


def test_a_body_above_the_limit_is_refused_with_413_and_changes_nothing(served: dict[str, Any]) -> None:
    store, one = served["store"], served["ids"][1]
    before = snapshot(store)
    big = json.dumps({"seq": 0, "lines": ["x" * 1000] * 10_000}).encode()  # ~10 MB
    assert len(big) >= 10_000_000
    conn = http.client.HTTPConnection("127.0.0.1", served["port"], timeout=30)
    conn.putrequest("POST", f"/v1/attempts/{one}/lines")
    conn.putheader("Authorization", f"Bearer {TOKENS[1]}")
    conn.putheader("Content-Length", str(len(big)))
    conn.endheaders()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it may answer and close before taking all
        conn.send(big)
    answer = conn.getresponse()
    assert answer.status == 413 and "limit" in json.loads(answer.read())["error"]
    conn.close()
    assert snapshot(store) == before


MALFORMED = [
    ("lines", {"seq": -1, "lines": []}, "seq"),
    ("lines", {"seq": 0, "lines": "not a list"}, "lines"),
    ("lines", {"seq": 0, "lines": ["a\nb"]}, "newline"),
    ("lines", {"seq": 5, "lines": ["gap"]}, "expected at most 0"),
    ("lines", b"{not json", "not JSON"),
    ("lines", b"[1, 2]", "JSON object"),
    ("heartbeat", {"started_at": "yesterday"}, "started_at"),
    ("exit", {"exit_code": 0, "ended_at": 1.7e9, "how": "Exited Badly"}, "how"),
    ("exit", {"exit_code": True, "ended_at": 1.7e9, "how": "exited"}, "exit_code"),
    ("exit", {"exit_code": 0, "ended_at": 1e300, "how": "exited"}, "ended_at"),
]


def test_a_malformed_request_is_refused_naming_the_field_and_changes_nothing(served: dict[str, Any]) -> None:
    store, one = served["store"], served["ids"][1]
    before = snapshot(store)
    for route, body, words in MALFORMED:
        code, answer = call(served, "POST", one, route, body, TOKENS[1])
        assert 400 <= code < 500 and words in answer["error"], (route, body, answer)
    assert call(served, "GET", one, "no-such-route", token=TOKENS[1])[0] == 404
    assert snapshot(store) == before


def test_lines_are_numbered_so_a_retry_never_doubles_one_and_bad_reports_are_named(served: dict[str, Any]) -> None:
    store, one = served["store"], served["ids"][1]
    bad = "costtune:report {\"step\": -3, \"loss\": 1}"
    assert call(served, "POST", one, "lines", {"seq": 0, "lines": ["a", bad]}, TOKENS[1]) == (200, {
        "next_seq": 2, "ignored": [{"seq": 1, "reason": _reason(bad)}]})  # the controller's one rule, named here too
    code, answer = call(served, "POST", one, "lines", {"seq": 0, "lines": ["a", bad, "c"]}, TOKENS[1])  # a retry
    assert (code, answer["next_seq"]) == (200, 3)
    assert store.remote_lines(one, 0) == [(0, "a"), (1, bad), (2, "c")]
    assert store.remote_lines(served["ids"][2], 0) == []


def _reason(line: str) -> str:
    with pytest.raises(MetricLineError) as caught:
        parse_line(line)
    return str(caught.value)


def test_the_heartbeat_answer_carries_the_decision_and_the_exit_is_first_wins(served: dict[str, Any]) -> None:
    store, one = served["store"], served["ids"][1]
    assert call(served, "POST", one, "heartbeat", {"started_at": 1.7e9}, TOKENS[1]) == (
        200, {"decision": "continue", "reason": None})
    store.decide_remote(one, "stop", "rung 1: not in the top third")
    assert call(served, "POST", one, "heartbeat", {}, TOKENS[1])[1]["decision"] == "stop"
    assert call(served, "POST", one, "exit", {"exit_code": -15, "ended_at": 1.7e9, "how": "stopped"},
                TOKENS[1]) == (200, {"recorded": True})
    assert call(served, "POST", one, "exit", {"exit_code": 0, "ended_at": 1.8e9, "how": "exited"},
                TOKENS[1]) == (200, {"recorded": False})
    state = store.remote_state(one)
    assert (state.exit_code, state.how, state.launch["trial"]["env"]) == (-15, "stopped", {})  # secrets erased
    assert store.remote_state(served["ids"][2]).launch["trial"]["env"] == {"SECRET": "s"}


def test_launch_and_bundle_are_served_to_their_attempt_only_while_it_is_open(served: dict[str, Any]) -> None:
    store, one = served["store"], served["ids"][1]
    code, launch = call(served, "GET", one, "launch", token=TOKENS[1])
    assert code == 200 and launch["trial"]["command"] == ["python", "t.py"]
    assert launch["bundle"] == hashlib.sha256(b"bundle").hexdigest()
    assert call(served, "GET", one, "bundle", token=TOKENS[1]) == (200, b"bundle")
    store.finish_attempt(one, exit_reason="stopped", billable_ms=1000, cost_micros=0)
    before = snapshot(store)
    assert call(served, "GET", one, "launch", token=TOKENS[1])[0] == 409
    assert call(served, "POST", one, "lines", {"seq": 0, "lines": ["late"]}, TOKENS[1])[0] == 409
    assert snapshot(store) == before
    assert call(served, "POST", one, "heartbeat", {}, TOKENS[1])[1]["decision"] == "stop"  # an ended attempt stops


def test_whatever_a_trial_prints_reaches_the_store_through_the_agent(served: dict[str, Any], tmp_path: Any) -> None:
    """NUL bytes, a line longer than any request may be, and more output than one request holds."""
    from costtune.agent.worker import Agent, AgentOptions, fit_line

    store, one = served["store"], served["ids"][1]
    printed = ["nul\x00here", "y" * 3_000_000, *[f"line {i} " + "z" * 1000 for i in range(800)], "last"]
    agent = Agent(AgentOptions(server=served["url"], attempt=one, token=TOKENS[1], workdir=tmp_path))
    agent.run_.lines.extend(map(fit_line, printed))
    agent._flush()
    stored = [line for _seq, line in store.remote_lines(one, 0, limit=10_000)]
    assert agent.run_.forwarding and len(stored) == len(printed) and stored[-1] == "last"
    assert stored[0] == "nul\ufffdhere" and 100_000 < len(stored[1]) < 3_000_000  # still judged "too long"
