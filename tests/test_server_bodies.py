"""One size limit for every request body the server reads (worker API, dashboard actions, sign-in)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request

from costtune.server.bodies import BodyTooLarge, read_body


def _request(headers: dict[str, str], chunks: list[bytes] | None) -> Request:
    """A request whose body arrives as ``chunks``; None: a client that never sends its body."""
    pending = list(chunks or [])

    async def receive() -> dict[str, Any]:
        if chunks is None:
            await asyncio.Event().wait()  # never set: the body never comes
        body = pending.pop(0) if pending else b""
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    return Request(scope, receive)


def _read(request: Request, limit: int) -> bytes:
    return asyncio.run(asyncio.wait_for(read_body(request, limit), timeout=5))


def test_a_declared_length_above_the_limit_is_refused_before_any_byte_is_read() -> None:
    with pytest.raises(BodyTooLarge, match="body of 50000000 bytes is above the limit of 1024 bytes"):
        _read(_request({"content-length": "50000000"}, None), 1024)  # would wait forever if it read
    with pytest.raises(BodyTooLarge):
        _read(_request({"content-length": "ten"}, None), 1024)


def test_a_body_streamed_past_the_limit_is_refused_and_one_within_it_read_whole() -> None:
    with pytest.raises(BodyTooLarge, match="above the limit of 10 bytes"):
        _read(_request({}, [b"12345", b"67890", b"x"]), 10)
    assert _read(_request({"content-length": "10"}, [b"12345", b"67890"]), 10) == b"1234567890"
