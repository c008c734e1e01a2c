"""The model server's OpenAPI document, written out (the handlers parse JSON themselves)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
_ROW = {
    "type": "object",
    "additionalProperties": True,
    "description": "One row: a value per input column of the model's signature.",
}
_JSON_TYPES: dict[str, dict[str, Any]] = {
    "integer": {"type": "integer"},
    "float": {"type": ["number", "null"]},
    "boolean": {"type": "boolean"},
    "string": {"type": ["string", "null"]},
    "category": {"type": ["string", "null"]},
    "datetime": {"type": "string", "format": "date-time"},
}


def _row(inputs: Sequence[tuple[str, str]] | None) -> dict[str, Any]:
    """A row's schema: the served model's input columns when there is one model, else any
    object."""
    if not inputs:
        return _ROW
    return {
        **_ROW,
        "required": [name for name, _ in inputs],
        "properties": {name: _JSON_TYPES.get(kind, {}) for name, kind in inputs},
    }


_TIME = {
    "oneOf": [{"type": "string", "format": "date-time"}, {"type": "number", "minimum": 0}],
    "description": "When the row's event happened: ISO-8601 with offset, or epoch seconds.",
}
_EVENT_TIMES = {
    "event_time": _TIME,
    "event_times": {"type": "array", "items": _TIME, "description": "One event time per row."},
}


def _predict_body(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "oneOf": [
            {
                "type": "object",
                "required": ["rows"],
                "properties": {
                    "rows": {"type": "array", "items": row, "minItems": 1, "maxItems": 10_000},
                    "probabilities": {"type": "boolean"},
                    **_EVENT_TIMES,
                },
            },
            {
                "type": "object",
                "required": ["columns", "data"],
                "properties": {
                    "columns": {"type": "array", "items": {"type": "string"}},
                    "data": {"type": "array", "items": {"type": "array"}, "minItems": 1},
                    "probabilities": {"type": "boolean"},
                    **_EVENT_TIMES,
                },
            },
        ]
    }


_PREDICTION = {
    "type": "object",
    "required": ["predictions", "request_ids", "model", "model_version"],
    "properties": {
        "predictions": {"type": "array"},
        "probabilities": {"type": "array"},
        "request_ids": {"type": "array", "items": {"type": "string"}},
        "model": {"type": "string"},
        "model_version": {"type": "integer"},
    },
}
_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {
            "type": "string",
            "enum": [
                "BOOL",
                "UINT8",
                "UINT16",
                "UINT32",
                "UINT64",
                "INT8",
                "INT16",
                "INT32",
                "INT64",
                "FP16",
                "FP32",
                "FP64",
                "BYTES",
            ],
        },
        "parameters": {"type": "object"},
        "data": {"type": "array"},
    },
}
_INFER_BODY = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {"type": "array", "items": _TENSOR},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}},
            },
        },
    },
}


_INFER_ANSWER = {
    "type": "object",
    "required": ["model_name", "outputs"],
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "id": {"type": "string", "description": "The request's `id`, echoed."},
        "parameters": {
            "type": "object",
            "properties": {"request_ids": {"type": "array", "items": {"type": "string"}}},
        },
        "outputs": {"type": "array", "items": _TENSOR},
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(code): _json(_ERROR, "The request was refused; `error` says why.") for code in codes
    }


def _get(summary: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "responses": {"200": _json(schema or {"type": "object"}, "OK"), **_errors(404)},
        }
    }


def _post(
    summary: str, body: dict[str, Any], answer: dict[str, Any], codes: tuple[int, ...]
) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, **_json(body, "")},
            "responses": {"200": _json(answer, "OK"), **_errors(*codes)},
        }
    }


def openapi_document(
    version: str, inputs: Sequence[tuple[str, str]] | None = None
) -> dict[str, Any]:
    """The document for a server of loopml `version`; `inputs` (column, loopml type) describe
    the rows of `/predict` and `/explain` when the server hosts a single model."""
    predict_body = _predict_body(_row(inputs))
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    ver = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
    infer = _post(
        "Open Inference Protocol inference (the server's row ids in parameters.request_ids); "
        "also as the binary tensor data extension: JSON, then the tensors' bytes "
        "(Inference-Header-Content-Length gives the JSON's length)",
        _INFER_BODY,
        _INFER_ANSWER,
        (400, 404, 413, 422, 503),
    )
    paths: dict[str, Any] = {
        "/predict": _post("Predict rows", predict_body, _PREDICTION, (400, 404, 413, 422, 503)),
        "/feedback": _post(
            "Record true labels of served requests",
            {
                "oneOf": [
                    {"type": "object", "required": ["request_id", "label"]},
                    {
                        "type": "array",
                        "items": {"type": "object", "required": ["request_id", "label"]},
                    },
                ]
            },
            {"type": "object", "properties": {"accepted": {"type": "integer"}}},
            (400, 404, 409, 413, 422, 503),
        ),
        "/explain": _post(
            "Per-feature attributions of rows (method and reference in the answer)",
            predict_body,
            {"type": "object"},
            (400, 404, 413, 422),
        ),
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/health": _get("Ready to serve"),
        "/deployments": _get("What this server serves"),
        "/v2": _get("Server metadata (V2)"),
        "/v2/health/live": _get("Liveness (V2)"),
        "/v2/health/ready": _get("Readiness (V2)"),
        "/v2/models/{name}": {**_get("Model metadata (V2)"), "parameters": [name]},
        "/v2/models/{name}/ready": {**_get("Model readiness (V2)"), "parameters": [name]},
        "/v2/models/{name}/infer": {**infer, "parameters": [name]},
        "/v2/models/{name}/versions/{version}": {
            **_get("Model metadata (V2)"),
            "parameters": [name, ver],
        },
        "/v2/models/{name}/versions/{version}/ready": {
            **_get("Model readiness (V2)"),
            "parameters": [name, ver],
        },
        "/v2/models/{name}/versions/{version}/infer": {**infer, "parameters": [name, ver]},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "loopml model server", "version": version},
        "paths": paths,
    }
