"""MLflow's REST API mounted on the team server: its own small applications at
`/api/2.0/mlflow` and `/api/2.0/mlflow-artifacts`, placed before loopml's routes so that a
request is matched by its prefix (one check) instead of against every route of `/api/v1`, and
answering every error in MLflow's shape (`loopml.server.mlflow_errors`). The server's middleware
(the browser boundary, request logs and counts) wraps them as it wraps everything."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Mount

from loopml.errors import LoopmlError
from loopml.server.context import Context
from loopml.server.mlflow_artifacts import mlflow_artifacts_router
from loopml.server.mlflow_errors import (
    endpoint_not_found,
    mlflow_answer,
    mlflow_error,
    refusals_router,
)
from loopml.server.mlflow_models import mlflow_models_router
from loopml.server.mlflow_registry import mlflow_registry_router
from loopml.server.mlflow_tracking import mlflow_tracking_router

if TYPE_CHECKING:
    from loopml.bootstrap import Workspace

log = logging.getLogger("loopml.server")


def mount_mlflow(
    app: FastAPI,
    ws: Workspace,
    principal: Callable[..., Any],
    *,
    max_upload_bytes: int,
    redact: Callable[[str], str],
) -> None:
    """MLflow's API on `app`, behind the same tokens (`principal`) as loopml's."""
    c = Context(ws, Depends(principal))
    api = _application(redact)
    for router in (mlflow_tracking_router(c), mlflow_models_router(c),
                   mlflow_registry_router(c), refusals_router()):  # fmt: skip
        api.include_router(router, dependencies=[Depends(principal)])
    artifacts = _application(redact)
    artifacts.include_router(
        mlflow_artifacts_router(c, max_upload_bytes), dependencies=[Depends(principal)]
    )
    mounts = [Mount("/api/2.0/mlflow", api), Mount("/api/2.0/mlflow-artifacts", artifacts)]
    app.router.routes[0:0] = mounts

    @app.get("/api/3.0/mlflow/server-info", include_in_schema=False)
    def server_info() -> dict[str, Any]:
        """What MLflow's clients ask of a tracking server before a download: no multipart."""
        return {"store_type": "SqlStore", "multipart_uploads_enabled": False,
                "multipart_downloads_enabled": False}  # fmt: skip


def _application(redact: Callable[[str], str]) -> FastAPI:
    """An application of MLflow's routes whose every error is in MLflow's shape, naming no
    path of the server's own (`redact`)."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, redirect_slashes=False)

    @app.exception_handler(LoopmlError)
    def _refused(request: Request, error: LoopmlError) -> Response:
        error = copy.copy(error)
        error.message, error.hint = redact(error.message), redact(error.hint)
        return mlflow_error(error)

    @app.exception_handler(StarletteHTTPException)
    def _http(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code in (404, 405):
            return endpoint_not_found(request.method, request.url.path)
        return mlflow_answer("INVALID_PARAMETER_VALUE", error.status_code, str(error.detail))

    @app.exception_handler(RequestValidationError)
    def _malformed(request: Request, error: RequestValidationError) -> Response:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        problem = f"The request is malformed at {where}: {first.get('msg', 'invalid')}."
        return mlflow_answer("INVALID_PARAMETER_VALUE", 400, problem)

    @app.exception_handler(OverflowError)
    def _too_large(request: Request, error: OverflowError) -> Response:
        return mlflow_answer("INVALID_PARAMETER_VALUE", 400, f"A number is out of range: {error}.")

    @app.exception_handler(Exception)
    def _unexpected(request: Request, error: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return mlflow_answer("INTERNAL_ERROR", 500, "The server failed; see its log.")

    return app
