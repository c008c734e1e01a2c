"""The team server: the workspace's stores behind one versioned REST API (`/api/v1`), with
users, tokens and roles.

The remote client (`loopml.adapters.remote`) implements the same store interfaces over this
API, so every service, SDK call and CLI command runs unchanged against a server: the services
run on the client, the stores here. Each route checks the caller's role on the project it
touches before it reads or writes; the actor of every audit event is the token's user, whatever
the client sent.

    loopml server --port 5000       # LOOPML_DB_URL=postgresql+psycopg://...  LOOPML_ARTIFACTS=s3://...

The browser boundary (the Host and Origin checks, security headers) is `loopml.server.boundary`.
No error text names a folder or URL of the server's own stores: they are replaced by a word.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from loopml.errors import InvalidInput, LoopmlError, NotFound, http_status
from loopml.server.boundary import AllowedHosts, BrowserBoundary, Scope
from loopml.server.mlflow_app import mount_mlflow
from loopml.server.mlflow_errors import endpoint_not_found, is_mlflow_path, mlflow_error
from loopml.server.routes import build_router
from loopml.server.scheduler import Scheduler
from loopml.server.ui.routes import add_ui, ui_error
from loopml.services.auth import Principal

if TYPE_CHECKING:
    from loopml.bootstrap import Workspace
    from loopml.server.ui.views import Views
    from loopml.settings import Settings

API_VERSION = "v1"
log = logging.getLogger("loopml.server")


def create_server(
    ws: Workspace,
    *,
    auth: bool = True,
    max_upload_bytes: int = 64 << 30,
    schedule_s: float | None = None,
    hosts: AllowedHosts | None = None,
    docs: bool = False,
) -> FastAPI:
    """The team server's application over workspace `ws` (its stores are the server's). With
    `schedule_s`, it also runs the due monitors and retrain loops every that many seconds
    (one replica at a time: see `loopml.server.scheduler`). `hosts`: the names it answers to
    (by default 127.0.0.1, localhost and ::1 on any port). `docs`: serve Swagger UI at
    /api/v1/docs (its page loads its scripts from a CDN; the OpenAPI document at
    /api/v1/openapi.json is always served)."""
    from loopml import __version__

    scheduler = None if schedule_s is None else Scheduler(ws, tick_s=schedule_s)
    local = Principal(ws.settings.actor, "admin", {})
    """Who every request is with `--no-auth` (loopback only): the workspace's own actor."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if scheduler is not None:
            scheduler.start()
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="loopml team server",
        version=__version__,
        description="Datasets, runs, models and aliases, pipelines and lineage, deployments, "
        "monitors, alerts, retrain loops and the audit trail of a shared loopml workspace. "
        "Every route but /api/v1/health needs `Authorization: Bearer TOKEN`.",
        openapi_url=f"/api/{API_VERSION}/openapi.json",
        docs_url=f"/api/{API_VERSION}/docs" if docs else None,
        redoc_url=None,
        redirect_slashes=False,
    )

    async def principal(request: Request) -> Principal:
        # async: a token checked within the last seconds costs no trip to a worker thread
        if not auth:
            return local
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        text = token.strip() if scheme.lower() == "bearer" else None
        known = ws.auth.remembered(text)
        if known is not None:
            return known
        return await run_in_threadpool(ws.auth.authenticate, text)

    app.include_router(
        build_router(ws, principal, max_upload_bytes=max_upload_bytes),
        prefix=f"/api/{API_VERSION}",
        dependencies=[Depends(principal)],
    )

    @app.get(f"/api/{API_VERSION}/health", tags=["health"])
    def health() -> dict[str, str]:
        """Liveness: answers without a token."""
        return {"status": "ok"}

    views = add_ui(app, ws, auth=auth, local=local)
    redact = redactor(ws.settings)
    mount_mlflow(app, ws, principal, max_upload_bytes=max_upload_bytes, redact=redact)
    _answer_errors(app, views, redact)
    app.add_middleware(_HeadAsGet)
    app.add_middleware(
        BrowserBoundary,
        hosts=hosts or AllowedHosts(["127.0.0.1", "localhost", "::1"]),
        refuse=lambda scope, error: _refusal(views, scope, error),
        no_csp=frozenset({f"/api/{API_VERSION}/docs"} if docs else ()),
    )
    _instrument(app)
    app.state.scheduler = scheduler
    return app


def _refusal(views: Views, scope: Scope, error: LoopmlError) -> Response:
    """The answer to a request the browser boundary refused: a page on the UI's paths."""
    if is_mlflow_path(scope["path"]):
        return mlflow_error(error)
    page = ui_error(views, Request(scope), error)
    if page is not None:
        return page
    return _error(http_status(error), error.message, error.hint, type(error).__name__)


def redactor(settings: Settings) -> Callable[[str], str]:
    """A function that replaces, in a text, every path or URL under the server's own folders
    and stores (the artifact root, the workspace folder, the database, temporary files) by a
    word, so that no answer tells a client where the server keeps things."""
    named = {
        settings.artifacts_url: "the server's artifact store",
        settings.db_url: "the server's database",
        str(settings.home): "the server's workspace folder",
        str(settings.cache_dir): "the server's cache",
        tempfile.gettempdir() + os.sep: "a temporary file of the server",
    }
    if "://" not in settings.artifacts_url:
        named[os.path.abspath(settings.artifacts_url)] = "the server's artifact store"
    elif settings.artifacts_url.startswith("file://"):
        named[settings.artifacts_url.removeprefix("file://")] = "the server's artifact store"
    roots = sorted((r for r in named if len(r) > 1), key=len, reverse=True)
    tail = r"(?:[^\s'\"]*[^\s'\".,;:!?)\]])?"  # the rest of the path, not the sentence's stop
    pattern = re.compile("|".join(re.escape(r) + tail for r in roots))

    def redact(text: str) -> str:
        return pattern.sub(lambda m: named[_root_of(m.group(0), roots)], text)

    return redact


def _root_of(found: str, roots: list[str]) -> str:
    return next(r for r in roots if found.startswith(r))


def _answer_errors(app: FastAPI, views: Views, redact: Callable[[str], str]) -> None:
    """Every error as JSON `{"error", "hint", "type"}` with its status (as a page on the web
    UI's paths); never a traceback, nor a path of the server's."""

    @app.exception_handler(LoopmlError)
    def _loopml_error(request: Request, error: LoopmlError) -> Response:
        error = copy.copy(error)
        error.message, error.hint = redact(error.message), redact(error.hint)
        page = ui_error(views, request, error)
        if page is not None:
            return page
        status = http_status(error)
        return _error(status, error.message, error.hint, type(error).__name__)

    @app.exception_handler(StarletteHTTPException)
    def _http_error(request: Request, error: StarletteHTTPException) -> Response:
        if is_mlflow_path(request.url.path) and error.status_code in (404, 405):
            return endpoint_not_found(request.method, request.url.path)  # /api/3.0/mlflow/...
        if error.status_code == 404:
            missing = NotFound(f"There is no page {request.url.path}.", "Use the menu.")
            page = ui_error(views, request, missing)
            if page is not None:
                return page
            return _error(
                404,
                f"There is no route {request.method} {request.url.path}.",
                f"See /api/{API_VERSION}/openapi.json for the routes.",
                "NotFound",
            )
        return _error(error.status_code, str(error.detail), "", "")

    _answer_bad_requests(app, views)


def _answer_bad_requests(app: FastAPI, views: Views) -> None:
    """Malformed requests, numbers out of range, and anything unexpected."""

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, error: RequestValidationError) -> Response:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"The address is malformed at {where}: {first.get('msg', 'invalid')}."
        page = ui_error(views, request, InvalidInput(message, "Follow a link from a page."))
        if page is not None:
            return page
        return _error(
            400,
            f"The request is malformed at {where or 'the body'}: {first.get('msg', 'invalid')}.",
            f"See /api/{API_VERSION}/openapi.json for the expected shape.",
            "InvalidInput",
        )

    @app.exception_handler(OverflowError)
    def _too_large(request: Request, error: OverflowError) -> Response:
        return _error(
            400,
            f"A number in the request is out of range: {error}.",
            "Send numbers that fit in 64 bits.",
            "InvalidInput",
        )

    @app.exception_handler(Exception)
    def _unexpected(request: Request, error: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "The server failed on this request.", "See the server's log.", "")


def _instrument(app: FastAPI) -> None:
    """Request counts and latencies at /metrics, and one JSON log line per request."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    registry = CollectorRegistry()
    requests = Counter(
        "loopml_server_requests",
        "Requests answered, by method, route and status.",
        ["method", "route", "status"],
        registry=registry,
    )
    seconds = Histogram(
        "loopml_server_request_seconds",
        "Time to answer a request, by method and route.",
        ["method", "route"],
        registry=registry,
        buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
    )

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    def metrics() -> Response:
        """Request counts and latencies in the Prometheus text format (no token needed)."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(_Observe, requests=requests, seconds=seconds)


class _Observe:
    """Plain ASGI middleware (Starlette's BaseHTTPMiddleware costs a task per request): a
    request id on every answer, the counters and latencies, one JSON log line."""

    def __init__(self, app: Any, *, requests: Any, seconds: Any) -> None:
        self.app = app
        self.requests = requests
        self.seconds = seconds

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")[:64]
        request_id = given or uuid.uuid4().hex[:16]
        status = 500

        async def answer(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append(
                    (b"x-request-id", request_id.encode("latin-1"))
                )
            await send(message)

        try:
            await self.app(scope, receive, answer)
        finally:
            elapsed = time.perf_counter() - began
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.requests.labels(method, route, str(status)).inc()
            self.seconds.labels(method, route).observe(elapsed)
            if log.isEnabledFor(logging.INFO):
                line = {
                    "request_id": request_id,
                    "method": method,
                    "path": scope["path"],
                    "status": status,
                    "ms": round(elapsed * 1000, 2),
                }
                log.info(json.dumps(line))


class _HeadAsGet:
    """HEAD answered as GET is, without the body, wherever GET is served (FastAPI's routes
    list GET alone, so HEAD got 405). The server still sees HEAD: it sends no body and keeps
    the GET answer's Content-Length."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Any) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        as_get = {**scope, "method": "GET"}
        try:
            await self.app(as_get, receive, headers_only)
        finally:
            if "route" in as_get:  # for the request metrics around this
                scope["route"] = as_get["route"]


def _error(status: int, message: str, hint: str, kind: str) -> Response:
    return JSONResponse({"error": message, "hint": hint, "type": kind}, status_code=status)
