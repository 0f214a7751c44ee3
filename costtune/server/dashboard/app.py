"""The dashboard's routes: pages, ``/api/v1`` and ``/static`` (the assets shipped in the package).

Pages answer 401 with a small page asking for the token when reading needs one (see ``auth``);
``POST /login`` (form fields ``token`` and ``next``) sets the read cookie and sends the browser to
``next``; a wrong token is 403 with the reason, a token in the URL 400 (it would reach access logs).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from costtune.server.bodies import BodyTooLarge, read_body
from costtune.server.dashboard.api import Api, Refused
from costtune.server.dashboard.auth import COOKIE, Access
from costtune.server.dashboard.pages import crumbs_for, page

if TYPE_CHECKING:
    from costtune.store import Store

STATIC = Path(__file__).parent / "static"
_SECURITY = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
             "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"}


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=_SECURITY)


def routes(store: Store, access: Access, *, actor: str = "dashboard") -> list[BaseRoute]:
    """Every dashboard route over ``store``; actions are audited with ``actor`` (plus the client address)."""
    api = Api(store, access, actor)

    def guarded(render: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            if not access.may_read(request):
                asking = page("login", "token needed", {"needs_token": True}, heading="This dashboard needs its token")
                return _html(asking, 401)
            try:
                return _html(await run_in_threadpool(render, request))
            except Refused as exc:
                return _html(page("missing", "not found", {"error": exc.reason}, heading=exc.reason), exc.status)
        return endpoint

    def studies(request: Request) -> str:
        return page("studies", "Studies", api.studies(request))

    def study(request: Request) -> str:
        info = api.study(request.path_params["name"])
        request.path_params["name"] = info.name
        from costtune.server.dashboard.queries import live_cursor

        cursor = live_cursor(store, info.id)  # before the reads: a change in between shows on the first poll
        first = {"summary": api.study_summary(request), "trials": api.trials(request), "cursor": cursor}
        return page("study", info.name, first, crumbs=crumbs_for(info.name))

    def trial(request: Request) -> str:
        data = api.trial(request)
        return page("trial", f"{data['study']} trial {data['number']}", data,
                    heading=f"trial {data['number']}", crumbs=crumbs_for(data["study"], data["number"]))

    def money(request: Request) -> str:
        return page("money", "Money", api.spend(request))

    def running(request: Request) -> str:
        return page("running", "Running now", api.running(request))

    def schedules(request: Request) -> str:
        return page("schedules", "Schedules and models", api.schedules(request))

    def asking(reason: str, status: int) -> Response:
        return _html(page("login", "token needed", {"needs_token": True, "error": reason},
                          heading="This dashboard needs its token"), status)

    async def login(request: Request) -> Response:
        if "token" in request.query_params:
            return asking("send the token by POST (the form above), never in the URL: a URL reaches "
                          "access logs and browser history", 400)
        if request.method != "POST":
            return asking("", 200) if not access.open_read else RedirectResponse("/", status_code=303)
        try:
            raw = await read_body(request, 8192)
        except BodyTooLarge:
            return asking("the login form is above 8192 bytes", 413)
        form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        token = (form.get("token") or [""])[0].strip()
        target = (form.get("next") or ["/"])[0]
        if not target.startswith("/") or target.startswith("//") or "\\" in target:
            target = "/"
        if not token:
            return asking("token: empty; paste the token printed when the dashboard started", 400)
        if not access._matches(token):
            return asking("token: not this dashboard's token (see the line printed when it started, or "
                          "COSTTUNE_DASHBOARD_TOKEN)", 403)
        response = RedirectResponse(quote(target, safe="/?=&"), status_code=303)
        response.set_cookie(COOKIE, access.read_session(), httponly=True, samesite="strict")
        return response

    return [
        Route("/", guarded(studies)),
        Route("/studies/{name}", guarded(study)),
        Route("/studies/{name}/trials/{number}", guarded(trial)),
        Route("/money", guarded(money)),
        Route("/running", guarded(running)),
        Route("/schedules", guarded(schedules)),
        Route("/login", login, methods=["GET", "POST"]),
        *api.routes(),
        Mount("/static", app=StaticFiles(directory=STATIC), name="dashboard-static"),
    ]


__all__ = ["STATIC", "routes"]
