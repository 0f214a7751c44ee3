"""The agent's HTTP client: every way a controller's answer can break is ``Unreachable`` (counted by
the dead man's switch), never an exception that ends the agent."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from costtune.agent.client import Refused, Unreachable, WorkerClient


def _serve(answer: bytes) -> Iterator[str]:
    """A one-shot-per-connection TCP server that reads a request and writes ``answer`` raw, then closes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(answer)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 37\r\n\r\n{}",  # cut short
    b"NOT HTTP AT ALL\r\n\r\n",  # a bad status line
    b"",  # closed without a word
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 50\r\n\r\n{",  # 5xx whose reason is cut short
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",  # not JSON
])
def test_a_broken_answer_is_unreachable(answer: bytes) -> None:
    for url in _serve(answer):
        client = WorkerClient(url, 7, "secret", timeout_s=5)
        with pytest.raises(Unreachable):
            client.heartbeat(0.0)


def test_a_4xx_answer_is_refused_with_its_reason() -> None:
    body = b'{"error": "token does not match"}'
    for url in _serve(b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: "
                      + str(len(body)).encode() + b"\r\n\r\n" + body):
        with pytest.raises(Refused, match="token does not match") as caught:
            WorkerClient(url, 7, "secret", timeout_s=5).heartbeat(0.0)
        assert caught.value.status == 403
