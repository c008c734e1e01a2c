"""Errors on MLflow's routes in MLflow's own shape, `{"error_code", "message"}`, with the status
MLflow gives each code, so that MLflow clients raise the exception their callers expect (a
missing experiment is `RESOURCE_DOES_NOT_EXIST`, which `mlflow.set_experiment` answers by creating
it). No error on these routes is a 5xx unless the server itself failed: MLflow clients retry
5xx answers for minutes."""

from __future__ import annotations

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
