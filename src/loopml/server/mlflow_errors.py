"""Errors on MLflow's routes in MLflow's own shape, `{"error_code", "message"}`, with the status
MLflow gives each code, so that MLflow clients raise the exception their callers expect (a
missing experiment is `RESOURCE_DOES_NOT_EXIST`, which `mlflow.set_experiment` answers by creating
it). No error on these routes is a 5xx unless the server itself failed: MLflow clients retry
5xx answers for minutes."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from loopml.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    IntegrityError,
    InvalidInput,
    LoopmlError,
    NotFound,
    Unauthenticated,
    Unavailable,
)

MLFLOW_PREFIXES = ("/api/2.0/mlflow/", "/api/2.0/mlflow-artifacts/", "/api/3.0/mlflow/")
CODES: list[tuple[type[LoopmlError], str, int]] = [
    (NotFound, "RESOURCE_DOES_NOT_EXIST", 404),
    (AlreadyExists, "RESOURCE_ALREADY_EXISTS", 400),
    (InvalidInput, "INVALID_PARAMETER_VALUE", 400),
    (Conflict, "INVALID_STATE", 400),
    (Unauthenticated, "UNAUTHENTICATED", 401),
    (Forbidden, "PERMISSION_DENIED", 403),
    (Unavailable, "TEMPORARILY_UNAVAILABLE", 503),
    (IntegrityError, "DATA_LOSS", 500),
]


def is_mlflow_path(path: str) -> bool:
    return path.startswith(MLFLOW_PREFIXES)


def mlflow_answer(code: str, status: int, message: str) -> JSONResponse:
    return JSONResponse({"error_code": code, "message": message}, status_code=status)


def mlflow_error(error: LoopmlError) -> JSONResponse:
    """`error` as MLflow answers it: its code, and the message followed by the hint."""
    code, status = next(
        ((code, status) for kind, code, status in CODES if isinstance(error, kind)),
        ("INTERNAL_ERROR", 500),
    )
    text = f"{error.message} {error.hint}".strip()
    return mlflow_answer(code, status, text)


def endpoint_not_found(method: str, path: str) -> JSONResponse:
    return mlflow_answer(
        "ENDPOINT_NOT_FOUND",
        404,
        f"loopml does not implement the MLflow endpoint {method} {path}. The README's section "
        "'Coming from MLflow' lists what it implements.",
    )


_KEEPS_RUNS = "loopml keeps every run: lineage, models and the audit trail refer to it."
_KEEPS_PROJECTS = "An experiment is a loopml project, which loopml keeps under its name."
_KEEPS_VERSIONS = (
    "loopml's registry keeps every model version: deployments, loops and the audit trail refer "
    "to them."
)
_NO_MODEL_TAGS = "loopml keeps no tags or descriptions on registered models and versions."
UNSUPPORTED: dict[tuple[str, str], tuple[str, str]] = {
    ("POST", "/experiments/update"): (_KEEPS_PROJECTS, "Create an experiment of the new name."),
    ("POST", "/experiments/delete"): (_KEEPS_PROJECTS, "Leave it; an admin can revoke grants."),
    ("POST", "/experiments/restore"): (_KEEPS_PROJECTS, "It was never deleted."),
    ("POST", "/experiments/set-experiment-tag"): (
        "loopml keeps no tags on experiments (projects).", "Tag the runs instead."),
    ("POST", "/experiments/delete-tag"): (
        "loopml keeps no tags on experiments (projects).", "Tag the runs instead."),
    ("POST", "/runs/delete"): (_KEEPS_RUNS, "Tag it (mlflow.set_tag('archived', 'true'))."),
    ("POST", "/runs/restore"): (_KEEPS_RUNS, "It was never deleted."),
    ("DELETE", "/registered-models/delete"): (_KEEPS_VERSIONS, "Move its aliases away."),
    ("DELETE", "/model-versions/delete"): (_KEEPS_VERSIONS, "Move its aliases away."),
    ("POST", "/registered-models/rename"): (
        "loopml cannot rename a registered model.", "Register versions under the new name."),
    ("POST", "/model-versions/transition-stage"): (
        "loopml has aliases, not stages (MLflow deprecated stages).",
        "Use MlflowClient().set_registered_model_alias(name, 'production', version)."),
    ("PATCH", "/registered-models/update"): (_NO_MODEL_TAGS, "Describe the run instead."),
    ("PATCH", "/model-versions/update"): (_NO_MODEL_TAGS, "Describe the run instead."),
    ("POST", "/registered-models/set-tag"): (_NO_MODEL_TAGS, "Tag the run instead."),
    ("POST", "/model-versions/set-tag"): (_NO_MODEL_TAGS, "Tag the run instead."),
    ("DELETE", "/registered-models/delete-tag"): (_NO_MODEL_TAGS, "Tag the run instead."),
    ("DELETE", "/model-versions/delete-tag"): (_NO_MODEL_TAGS, "Tag the run instead."),
    ("DELETE", "/logged-models/{model_id}"): (_KEEPS_RUNS, "A logged model stays with its run."),
}  # fmt: skip
"""MLflow endpoints loopml answers with FEATURE_DISABLED (400): what it does not do, and why."""


def refusals_router() -> APIRouter:
    """A route per endpoint of `UNSUPPORTED`, answering its refusal (after the token check)."""
    router = APIRouter()
    for (method, path), reasons in UNSUPPORTED.items():
        router.add_api_route(path, _refusal(*reasons), methods=[method], include_in_schema=False)
    return router


def _refusal(why: str, instead: str) -> Callable[[], JSONResponse]:
    def refuse() -> JSONResponse:
        return mlflow_answer("FEATURE_DISABLED", 400, f"{why} {instead}")

    return refuse
