"""Reading a request body with a size limit, for every route that takes one.

A body above the limit is refused before it is read: at once from its Content-Length when the
client declares one (a client declaring 50 MB and sending a byte gets its answer now, not after a
wait), else while it streams in. Callers turn ``BodyTooLarge`` into their own 413 answer.
"""

from __future__ import annotations

from starlette.requests import Request


class BodyTooLarge(Exception):
    """The body is (or declares to be) above ``limit`` bytes; ``declared``: its Content-Length text."""

    def __init__(self, limit: int, declared: str | None = None) -> None:
        self.limit, self.declared = limit, declared
        size = f"body of {declared} bytes" if declared is not None else "body"
        super().__init__(f"{size} is above the limit of {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes; raises ``BodyTooLarge`` (a bad Content-Length counts)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BodyTooLarge(limit, declared[:20])
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)
