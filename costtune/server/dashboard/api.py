"""The dashboard's JSON API under ``/api/v1``: what every page shows, for scripts and notebooks too.

Reads (GET) are open on a loopback bind, else need the token (``auth``); actions (POST, and the
leaderboard export) need the token in a header. Every amount and duration comes with its text by
the CLI's rules beside it (``<key>_text``, see ``text``). Refusals are ``{"error": reason}`` with a 4xx
status naming the field and value, and change nothing. Money fields are integer micro-dollars
(``*_micros``), rates micro-dollars per hour, times ISO 8601 UTC.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from costtune.errors import InputError, StoreError, StudyNotFound, shown
from costtune.server.bodies import BodyTooLarge, read_body
from costtune.server.dashboard import money, queries
from costtune.server.dashboard.charts import StudyCharts
from costtune.server.dashboard.detail import trial_detail
from costtune.server.dashboard.text import with_text

if TYPE_CHECKING:
    from costtune.server.dashboard.auth import Access
    from costtune.store import Store, StudyInfo

MAX_BODY = 64 * 1024


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def _int(request: Request, name: str, default: int | None, lo: int = 0, hi: int = 2**62) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if len(raw) > 20 and raw.lstrip("-").isdigit():  # a number past any bound, read without int()'s cost
        raise Refused(400, f"{name}: must be from {lo} to {hi}, got {raw[:40]}")
    try:
        value = int(raw)
    except ValueError:
        raise Refused(400, f"{name}: must be an integer, got {shown(raw[:40])}") from None
    if not lo <= value <= hi:
        raise Refused(400, f"{name}: must be from {lo} to {hi}, got {value}")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise Refused(400, f"body: the key {key[:40]!r} is given twice")
        seen[key] = value
    return seen


def trial_number(request: Request) -> int:
    """The ``{number}`` of a trial path, the one converter of every trial route (pages, reads, stop):
    what is not a trial number (``-1``, ``abc``) is 400 naming the field and the value; a number past
    any trial a study can hold (2**31-1, the column's range) is 404, never a 500."""
    from costtune.limits import INT32_MAX

    raw = str(request.path_params["number"])
    if not raw.isascii() or not raw.isdigit():
        raise Refused(400, f"trial: must be a trial number (an integer from 0), got {shown(raw[:40])}")
    if len(raw) > 12 or int(raw) > INT32_MAX:
        raise Refused(404, f"trial: no study holds a trial number {raw[:40]} (trial numbers are at most {INT32_MAX})")
    return int(raw)


class Api:
    """The routes, over one store; chart series are kept per study (``StudyCharts``)."""

    def __init__(self, store: Store, access: Access, actor: str) -> None:
        """``actor``: who the audit trail names for an action (the client's address is added)."""
        self.store, self.access, self.actor = store, access, actor
        self._charts: dict[int, StudyCharts] = {}

    def study(self, name: str) -> StudyInfo:
        info = self.store.find_study(name)
        if info is None:
            raise Refused(404, f"study: no study named {name!r}")
        return info

    def charts_for(self, info: StudyInfo) -> StudyCharts:
        held = self._charts.get(info.id)
        if held is None or held.info.name != info.name or held.info.created_at != info.created_at:
            held = self._charts[info.id] = StudyCharts(self.store, info)
        return held

    # -- reads -------------------------------------------------------------------------------
    def studies(self, request: Request) -> Any:
        rows = queries.study_rows(self.store)
        paused = self.store.paused_studies()
        ids = {s.name: s.id for s in self.store.list_studies()}
        for row in rows:
            row["paused"] = ids.get(row["name"]) in paused
        return {"studies": rows}

    def study_summary(self, request: Request) -> Any:
        info = self.study(request.path_params["name"])
        row = next(r for r in queries.study_rows(self.store) if r["name"] == info.name)
        return {**row, "paused": info.id in self.store.paused_studies(), "space": info.space,
                "scheduler": info.spec.get("scheduler"), "sampler": info.sampler}

    def trials(self, request: Request) -> Any:
        info = self.study(request.path_params["name"])
        sort = request.query_params.get("sort", "value")
        if sort not in queries.SORTS:
            raise Refused(400, f"sort: must be one of {', '.join(queries.SORTS)}, got {shown(sort[:40])}")
        states = [s for s in request.query_params.get("state", "").split(",") if s]
        for state in states:
            if state not in queries.STATES:
                raise Refused(400, f"state: must be among {', '.join(queries.STATES)}, got {shown(state[:40])}")
        desc = request.query_params.get("desc", "0")
        if desc not in ("0", "1", "true", "false"):
            raise Refused(400, f"desc: must be 0 or 1, got {shown(desc[:40])}")
        return queries.leaderboard_page(
            self.store, info.id, str(info.mode), sort=sort, desc=desc in ("1", "true"), states=states,
            search=request.query_params.get("q", "")[:200], min_cost=_int(request, "min_cost", None),
            max_cost=_int(request, "max_cost", None), offset=_int(request, "offset", 0) or 0,
            limit=_int(request, "limit", 50, 1, queries.MAX_PAGE) or 50)

    def report(self, request: Request) -> Response:
        """``costtune report NAME --format json [--section S]``: the whole cost report, read on demand."""
        from costtune.reports import cost
        from costtune.store.reads import attempt_rows, trial_costs

        info = self.study(request.path_params["name"])
        section = request.query_params.get("section") or None
        if section is not None and section not in cost.JSON_KEYS:
            raise Refused(400, f"section: must be one of {', '.join(cost.JSON_KEYS)}, got {shown(section[:40])}")
        history = self.store.history(info.id)
        attempts = attempt_rows(self.store, info.id)
        body = cost.to_json(history, info.name, attempts, trial_costs(attempts), section=section)
        return Response(body, media_type="application/json")

    def charts(self, request: Request) -> Any:
        return self.charts_for(self.study(request.path_params["name"])).payload()

    def live(self, request: Request) -> Any:
        info = self.study(request.path_params["name"])
        since = request.query_params.get("since") or None
        if since is not None:
            from datetime import datetime

            try:
                datetime.fromisoformat(since)
            except ValueError:
                raise Refused(400, f"since: must be an ISO 8601 time, got {shown(since[:40])}") from None
        delta = queries.live_delta(self.store, info.id, after_report=_int(request, "after_report", 0) or 0,
                                   after_trial=_int(request, "after_trial", 0) or 0, since=since)
        delta["paused"] = info.id in self.store.paused_studies()
        return delta

    def trial(self, request: Request) -> Any:
        info = self.study(request.path_params["name"])
        number = trial_number(request)
        try:
            return trial_detail(self.store, info, number)
        except StudyNotFound:
            raise Refused(404, f"trial: study {info.name!r} has no trial number {number}") from None

    def running(self, request: Request) -> Any:
        rows = money.running_now(self.store)
        return {"attempts": rows, "burn_micros_per_hour": sum(r["rate_micros_per_hour"] for r in rows),
                "spent_micros": sum(r["attempt_cost_micros"] for r in rows)}

    def spend(self, request: Request) -> Any:
        return money.spend_overview(self.store)

    def schedules(self, request: Request) -> Any:
        from costtune.server.dashboard.schedules import schedules_overview

        return schedules_overview(self.store)

    # -- actions -------------------------------------------------------------------------------
    async def body(self, request: Request, allowed: tuple[str, ...] = ()) -> dict[str, Any]:
        """The request's JSON object (an empty body is ``{}``): 413 past ``MAX_BODY``, 400 for what is not
        one JSON object, a key given twice, or a top-level field not in ``allowed`` (named)."""
        try:
            raw = await read_body(request, MAX_BODY)
        except BodyTooLarge as exc:
            raise Refused(413, str(exc)) from None
        try:
            data = json.loads(raw or b"{}", object_pairs_hook=_no_duplicates)
        except (ValueError, RecursionError):
            raise Refused(400, "body: not JSON") from None
        if not isinstance(data, dict):
            raise Refused(400, "body: must be a JSON object")
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            known = f"(known: {', '.join(allowed)})" if allowed else "(this action takes no fields)"
            raise Refused(400, f"body: unknown field{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(repr(k[:40]) for k in unknown[:5])} {known}")
        return data

    def enqueue(self, name: str, data: dict[str, Any], actor: str) -> Any:
        from costtune.study.queue import DASHBOARD, check_raise_trials, enqueue_config

        params = data.get("params")
        if not isinstance(params, dict):
            raise Refused(400, f"params: must be an object of parameter names to values, got {params!r:.40}")
        raise_trials = check_raise_trials(data.get("raise_trials"), DASHBOARD[0])  # the CLI's rule, this field
        info = self.study(name)
        queued = enqueue_config(self.store, info.name, params, raise_trials=raise_trials, origin=DASHBOARD,
                                actor=actor)
        self.store.audit("trial.enqueue", actor=actor, study_id=info.id,
                         detail={"study": info.name, "trial": queued.number, "params": queued.params})
        return {"queued": queued.number, "params": queued.params, "study": info.name}

    def stop(self, name: str, number: int, actor: str) -> Any:
        info = self.study(name)
        try:
            state = self.store.request_stop(info.id, number, actor=actor)
        except StudyNotFound:
            raise Refused(404, f"trial: study {info.name!r} has no trial number {number}") from None
        except StoreError as exc:
            raise Refused(409, str(exc)) from None
        return {"trial": number, "state": state}

    def pause(self, name: str, paused: bool, actor: str) -> Any:
        info = self.study(name)
        changed = self.store.set_paused(info.id, paused, actor=actor)
        return {"study": info.name, "paused": paused, "changed": changed}

    def export(self, request: Request, actor: str) -> Response:
        from costtune.reports.leaderboard import study_ladder, to_csv, to_json
        from costtune.store.reads import attempt_rows, trial_costs

        info = self.study(request.path_params["name"])
        fmt = request.query_params.get("format", "csv")
        if fmt not in ("csv", "json"):
            raise Refused(400, f"format: must be csv or json, got {shown(fmt[:40])}")
        history = self.store.history(info.id)
        costs = trial_costs(attempt_rows(self.store, info.id))
        ladder, gone = study_ladder(info.spec), self.store.gone_trials(info.id)
        self.store.audit("leaderboard.export", actor=actor, study_id=info.id,
                         detail={"study": info.name, "format": fmt})
        if fmt == "csv":
            body = to_csv(history, costs, ladder, gone)
        else:
            body = to_json(history, info.name, costs, ladder, gone)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in info.name)
        return Response(body, media_type="text/csv" if fmt == "csv" else "application/json",
                        headers={"Content-Disposition": f'attachment; filename="{safe}-leaderboard.{fmt}"'})

    # -- routing -------------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        def read(method: Any) -> Any:
            async def endpoint(request: Request) -> Response:
                if not self.access.may_read(request):
                    return JSONResponse({"error": "this dashboard needs its token to read: send "
                                         "Authorization: Bearer <token>"}, status_code=401)
                return await _answer(lambda: run_in_threadpool(method, request))
            return endpoint

        def act(kind: str) -> Any:
            async def endpoint(request: Request) -> Response:
                if not self.access.may_act(request):
                    return JSONResponse({"error": "actions need the dashboard token: send Authorization: Bearer "
                                         "<token> (printed when the dashboard started, or COSTTUNE_DASHBOARD_TOKEN)"},
                                        status_code=401 if self.access.header_token(request) is None else 403)
                name = request.path_params["name"]
                actor = f"{self.actor} for {request.client.host if request.client else 'unknown'}"
                if kind == "export":
                    return await _answer(lambda: run_in_threadpool(self.export, request, actor))

                async def run() -> Any:
                    if kind == "enqueue":
                        data = await self.body(request, ("params", "raise_trials"))
                        return await run_in_threadpool(self.enqueue, name, data, actor)
                    await self.body(request)  # stop, pause and resume take no fields
                    if kind == "stop":
                        return await run_in_threadpool(self.stop, name, trial_number(request), actor)
                    return await run_in_threadpool(self.pause, name, kind == "pause", actor)
                return await _answer(run)
            return endpoint

        base = "/api/v1/studies/{name}"
        return [
            Route("/api/v1/studies", read(self.studies)),
            Route(base, read(self.study_summary)),
            Route(f"{base}/trials", read(self.trials)),
            Route(f"{base}/charts", read(self.charts)),
            Route(f"{base}/report", read(self.report)),
            Route(f"{base}/live", read(self.live)),
            Route(base + "/trials/{number}", read(self.trial)),
            Route("/api/v1/running", read(self.running)),
            Route("/api/v1/spend", read(self.spend)),
            Route("/api/v1/schedules", read(self.schedules)),
            Route(f"{base}/export", act("export")),
            Route(f"{base}/enqueue", act("enqueue"), methods=["POST"]),
            Route(base + "/trials/{number}/stop", act("stop"), methods=["POST"]),
            Route(f"{base}/pause", act("pause"), methods=["POST"]),
            Route(f"{base}/resume", act("resume"), methods=["POST"]),
        ]


async def _answer(make: Any) -> Response:
    try:
        result = await make()
    except Refused as exc:
        return JSONResponse({"error": exc.reason}, status_code=exc.status)
    except StudyNotFound as exc:
        return JSONResponse({"error": str(exc)}, status_code=404)
    except InputError as exc:  # SpecError included: names the field and the value
        return JSONResponse({"error": str(exc)}, status_code=400)
    except StoreError as exc:
        return JSONResponse({"error": str(exc)}, status_code=409)
    return result if isinstance(result, Response) else JSONResponse(with_text(result))


__all__ = ["Api"]
