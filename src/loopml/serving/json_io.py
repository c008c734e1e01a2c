"""JSON in and out of the serving endpoints: a bounded, validated body read and a response in
the one encoding of records (`loopml.domain.jsonable`: numpy values serialised as they are)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from loopml.domain.jsonable import to_json
from loopml.serving.frames import RequestError

MAX_BODY_BYTES = 8 * 1024 * 1024
"""The largest request body read (a larger one is refused with 413 before it is read)."""


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        to_json(data),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def error_response(status: int, message: str, retry_after_s: int | None = None) -> Response:
    headers = None if retry_after_s is None else {"Retry-After": str(retry_after_s)}
    return json_response({"error": message}, status, headers)


async def read_json(request: Request, limit: int = MAX_BODY_BYTES) -> Any:
    try:
        return orjson.loads(await read_body(request, limit))
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, f"The body is not valid JSON: {exc}.") from None


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request's body, refused with 413 past `limit` bytes (before it is read when its
    declared length says so)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"The body is {declared} bytes; at most {limit} are accepted.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"The body is over {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)
