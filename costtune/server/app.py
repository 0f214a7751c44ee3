"""The worker API: what a trial's agent on an instance talks to (Starlette; ``server`` extra).

Every route under ``/v1/attempts/{id}/`` needs ``Authorization: Bearer <token>``, the attempt's own
token (random, 32 bytes; the store keeps its sha256 only; compared with ``hmac.compare_digest``;
never logged). Refusals are JSON ``{"error": reason}`` with a 4xx status, and change nothing:

- 401: no token, or a token of no attempt; 403: a valid token of another attempt;
- 413: a body above the limit (1 MiB by default); 400: a body that is not what the route takes;
- 404: nothing there (no bundle); 409: the request does not fit the attempt's state (it ended, a gap
  in line numbers).

Routes:

- ``GET launch``: the launch description (the trial, setup lines, checkpoint URI, intervals).
- ``GET bundle``: the code bundle (``application/gzip``; header ``X-Costtune-Sha256``).
- ``POST lines`` ``{"seq": N, "lines": [...]}``: the trial's stdout lines numbered from N; the
  answer gives ``next_seq`` and the report lines the controller will ignore, with the reason
  (``protocol.parse_line``, the rule every trial's output goes through).
- ``POST heartbeat`` ``{"started_at": epoch s | null}``: answered with ``{"decision": "continue" |
  "stop", "reason": ...}``.
- ``POST exit`` ``{"exit_code": int | null, "ended_at": epoch s, "how": word}``: first report wins.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from costtune.protocol import MetricLineError, parse_line
from costtune.server.bodies import BodyTooLarge, read_body
from costtune.store.remote import RemoteConflict

if TYPE_CHECKING:
    from costtune.store import Store

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1024 * 1024
MAX_LINES = 10_000  # in one request
_HOW = re.compile(r"^[a-z][a-z0-9\-]{0,63}$")
_LATEST_S = 10 * 365 * 86400  # a reported time further from now than this is not a time


class Refusal(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def token_hash(token: str) -> str:
    """What the store keeps of a token: sha256 of its UTF-8 bytes, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_app(store: Store, *, max_body: int = MAX_BODY_BYTES, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The worker API over ``store``; ``max_body``: the largest request body taken, in bytes;
    ``extra_routes``: served beside it (the dashboard's pages and ``/api/v1``)."""

    async def call(func: Any, *args: Any, **kwargs: Any) -> Any:
        return await run_in_threadpool(func, *args, **kwargs)

    async def authorized(request: Request) -> int:
        attempt_id = int(request.path_params["attempt_id"])
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refusal(401, "missing token: send Authorization: Bearer <the attempt's token>")
        digest = token_hash(token.strip())
        state = await call(store.remote_state, attempt_id)
        if state is not None and hmac.compare_digest(state.token_sha256, digest):
            return attempt_id
        if await call(store.attempts_with_token, digest):
            raise Refusal(403, f"this token belongs to another attempt, not to attempt {attempt_id}")
        raise Refusal(401, "wrong token")

    async def body(request: Request) -> dict[str, Any]:
        try:
            raw = await read_body(request, max_body)
        except BodyTooLarge as exc:
            raise Refusal(413, str(exc)) from None
        try:
            data = json.loads(raw or b"{}")
        except (ValueError, RecursionError):
            raise Refusal(400, "body: not JSON") from None
        if not isinstance(data, dict):
            raise Refusal(400, "body: must be a JSON object")
        return data

    async def launch(request: Request) -> Response:
        attempt_id = await authorized(request)
        state = await call(store.remote_state, attempt_id)
        if not state.attempt_open:
            raise Refusal(409, f"attempt {attempt_id} has ended")
        return JSONResponse({**state.launch, "attempt": attempt_id, "bundle": state.bundle_digest})

    async def bundle(request: Request) -> Response:
        attempt_id = await authorized(request)
        state = await call(store.remote_state, attempt_id)
        data = None if state.bundle_digest is None else await call(store.get_bundle, state.bundle_digest)
        if data is None:
            raise Refusal(404, f"attempt {attempt_id} has no code bundle")
        return Response(data, media_type="application/gzip", headers={"X-Costtune-Sha256": state.bundle_digest})

    async def lines(request: Request) -> Response:
        attempt_id = await authorized(request)
        data = await body(request)
        seq, given = data.get("seq"), data.get("lines")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise Refusal(400, f"seq: must be an integer >= 0, got {seq!r:.40}")
        if not isinstance(given, list) or not all(isinstance(line, str) for line in given):
            raise Refusal(400, "lines: must be a list of strings")
        if len(given) > MAX_LINES:
            raise Refusal(400, f"lines: at most {MAX_LINES} in one request, got {len(given)}")
        if any("\n" in line or "\x00" in line for line in given):
            raise Refusal(400, "lines: a line must not hold a newline or a NUL character")
        ignored = []
        for offset, line in enumerate(given):
            try:
                parse_line(line)
            except MetricLineError as exc:
                ignored.append({"seq": seq + offset, "reason": str(exc)})
        next_seq = await call(store.agent_lines, attempt_id, seq, given)
        return JSONResponse({"next_seq": next_seq, "ignored": ignored})

    async def heartbeat(request: Request) -> Response:
        attempt_id = await authorized(request)
        data = await body(request)
        started = _moment(data.get("started_at"), "started_at", optional=True)
        decision, reason = await call(store.agent_heartbeat, attempt_id, started_at=started)
        return JSONResponse({"decision": decision, "reason": reason})

    async def exit_(request: Request) -> Response:
        attempt_id = await authorized(request)
        data = await body(request)
        code, how = data.get("exit_code"), data.get("how")
        if code is not None and (isinstance(code, bool) or not isinstance(code, int) or not -255 <= code <= 255):
            raise Refusal(400, f"exit_code: must be an integer from -255 to 255 or null, got {code!r:.40}")
        if not isinstance(how, str) or not _HOW.match(how):
            raise Refusal(400, f"how: must be a lower-case word such as exited, got {how!r:.40}")
        ended = _moment(data.get("ended_at"), "ended_at", optional=False)
        first = await call(store.agent_exit, attempt_id, exit_code=code, ended_at=ended, how=how)
        return JSONResponse({"recorded": first})

    async def health(_request: Request) -> Response:
        return JSONResponse({"ok": True})

    def guarded(endpoint: Any) -> Any:
        async def run(request: Request) -> Response:
            try:
                return await endpoint(request)
            except Refusal as exc:
                return JSONResponse({"error": exc.reason}, status_code=exc.status)
            except RemoteConflict as exc:
                return JSONResponse({"error": str(exc)}, status_code=409)
        return run

    base = "/v1/attempts/{attempt_id:int}"
    routes = [
        Route("/healthz", health),
        Route(f"{base}/launch", guarded(launch)),
        Route(f"{base}/bundle", guarded(bundle)),
        Route(f"{base}/lines", guarded(lines), methods=["POST"]),
        Route(f"{base}/heartbeat", guarded(heartbeat), methods=["POST"]),
        Route(f"{base}/exit", guarded(exit_), methods=["POST"]),
        *extra_routes,
    ]
    async def not_found(_request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        return JSONResponse({"error": getattr(exc, "detail", None) or "no such route"}, status_code=status)

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})


def _moment(value: Any, name: str, *, optional: bool) -> datetime | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0 <= value <= datetime.now(UTC).timestamp() + _LATEST_S:
        raise Refusal(400, f"{name}: must be seconds since the epoch (UTC), got {value!r:.40}")
    return datetime.fromtimestamp(value, UTC)


__all__ = ["MAX_BODY_BYTES", "create_app", "token_hash"]
