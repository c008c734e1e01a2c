"""The web UI's router: logging in with an API token, the pages, and where `/` leads.

Logging in opens a server-side session (`AuthService.open_session`): the cookie holds a random
session id (HttpOnly, SameSite=Strict, Secure when the page came over https, directly or from a
proxy uvicorn trusts), never the token; the server keeps only the id's SHA-256, tied to the
token. The session ends after 12 hours, at logout, or when the token is revoked or its user
disabled. The login page's message is one of a fixed set (`?message=expired`), never text from
the address. Origin checks and security headers: `loopml.server.boundary`."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles

from loopml.errors import LoopmlError, Unauthenticated
from loopml.server.ui.catalog import add_catalog_pages
from loopml.server.ui.operations import add_operation_pages
from loopml.server.ui.runs import add_run_pages
from loopml.server.ui.views import BASE, COOKIE, LOGIN_MESSAGES, Views
from loopml.services.auth import SESSION_S, Principal

if TYPE_CHECKING:
    from loopml.bootstrap import Workspace

MAX_FORM_BYTES = 16 << 10


def add_ui(app: FastAPI, ws: Workspace, *, auth: bool, local: Principal) -> Views:
    """Serve the UI at /ui on `app` (and send `/` there); returns its renderer, whose `error`
    turns an error on a page into an HTML answer."""

    def who(request: Request) -> Principal:
        if not auth:
            return local
        return ws.auth.session(request.cookies.get(COOKIE))

    views = Views(ws, who, auth=auth)
    router = APIRouter(include_in_schema=False)
    _session_routes(router, views)
    add_run_pages(router, views)
    add_catalog_pages(router, views)
    add_operation_pages(router, views)
    app.include_router(router, prefix=BASE)
    app.mount(f"{BASE}/static", StaticFiles(packages=[("loopml.server.ui", "static")]), "static")

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse(f"{BASE}/runs", 307)

    return views


def _session_routes(router: APIRouter, views: Views) -> None:
    @router.get("/login", response_class=HTMLResponse)
    def login_page(next: str = f"{BASE}/runs", message: str = "") -> HTMLResponse:
        said = LOGIN_MESSAGES.get(message, "")
        html = views.env.get_template("login.html").render(next=_local(next), message=said)
        return HTMLResponse(html)

    @router.post("/login")
    async def log_in(request: Request) -> Response:
        body = await request.body()
        form = parse_qs(body[:MAX_FORM_BYTES].decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0].strip()
        target = _local((form.get("next") or [f"{BASE}/runs"])[0])
        try:
            session, _ = await run_in_threadpool(views.ws.auth.open_session, token)
        except Unauthenticated as refused:
            html = views.env.get_template("login.html").render(next=target, message=refused.message)
            return HTMLResponse(html, status_code=401)
        answer = RedirectResponse(target, 303)
        secure = request.url.scheme == "https"
        answer.set_cookie(
            COOKIE, session, httponly=True, samesite="strict", secure=secure, path="/",
            max_age=SESSION_S,
        )  # fmt: skip
        return answer

    @router.post("/logout")
    def log_out(request: Request) -> Response:
        if views.auth:
            views.ws.auth.close_session(request.cookies.get(COOKIE))
        answer = RedirectResponse(f"{BASE}/login?message=logged-out", 303)
        answer.delete_cookie(COOKIE, path="/")
        return answer

    @router.get("/", include_in_schema=False)
    def ui_home() -> RedirectResponse:
        return RedirectResponse(f"{BASE}/runs", 307)


def _local(target: str) -> str:
    """`target` if it is a page of this UI, else the runs page (no open redirect)."""
    return target if target.startswith(f"{BASE}/") and "//" not in target else f"{BASE}/runs"


def ui_error(views: Views, request: Request, error: LoopmlError) -> Response | None:
    """The HTML answer to an error on a UI page; None for any other path."""
    if not request.url.path.startswith(f"{BASE}/") and request.url.path != BASE:
        return None
    return views.error(request, error)
