"""The model server's ASGI app: `/predict`, `/feedback`, the Open Inference Protocol (V2),
health, Prometheus metrics and the OpenAPI document. Built by `create_app`, no globals.

Every request is answered with JSON; bad input gets a 4xx naming the problem, never a 500.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from loopml.serving.frames import RequestError, ServedRows, build_batch
from loopml.serving.host import ModelHost
from loopml.serving.telemetry import Telemetry

MAX_BODY_BYTES = 8 * 1024 * 1024


class PredictionSink(Protocol):
    """Where served rows and feedback go (the prediction log)."""

    def log_predictions(self, served: ServedRows) -> None: ...

    def log_feedback(self, deployment: str, items: Sequence[tuple[str, Any]]) -> None: ...

    def stats(self) -> dict[str, int]: ...


def json_response(data: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
    )


def error_response(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


async def read_json(request: Request, limit: int = MAX_BODY_BYTES) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"The body is {declared} bytes; at most {limit} are accepted.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"The body is over {limit} bytes.")
        chunks.append(chunk)
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, f"The body is not valid JSON: {exc}.") from None


def _outputs(values: Any) -> list[Any]:
    return values.tolist() if hasattr(values, "tolist") else list(values)


class Server:
    """The request handlers over the hosted deployments."""

    def __init__(
        self, hosts: Mapping[str, ModelHost], sink: PredictionSink | None, telemetry: Telemetry
    ) -> None:
        self.hosts = dict(hosts)
        self.sink = sink
        self.telemetry = telemetry

    def host(self, name: str | None) -> ModelHost:
        if name is None:
            if len(self.hosts) == 1:
                return next(iter(self.hosts.values()))
            raise RequestError(404, f"Name a deployment: {', '.join(sorted(self.hosts))}.")
        for host in self.hosts.values():
            if name in (host.deployment, host.name):
                return host
        raise RequestError(404, f"No deployment or model named {name!r} is served here.")

    def predict_rows(self, host: ModelHost, body: Any) -> dict[str, Any]:
        started = time.perf_counter_ns()
        served = host.current  # this request is answered by this version, even across a swap
        batch = build_batch(body, served.inputs)
        try:
            predictions = _outputs(served.model.predict(batch.frame))
            probabilities = (
                _outputs(served.model.predict_proba(batch.frame))
                if body.get("probabilities") and served.has_proba
                else None
            )
        except Exception as exc:
            raise RequestError(
                422, f"The model could not predict these rows: {type(exc).__name__}: {exc}"
            ) from None
        base = uuid.uuid4().hex
        ids = [f"{base}-{i}" for i in range(len(predictions))]
        latency_us = (time.perf_counter_ns() - started) // 1000
        if self.sink is not None:
            version = served.version
            self.sink.log_predictions(
                ServedRows(
                    host.deployment,
                    version.name,
                    version.version,
                    batch.rows,
                    predictions,
                    ids,
                    latency_us,
                    batch.flags,
                )
            )
        self.telemetry.rows(host.deployment, len(ids))
        result: dict[str, Any] = {
            "predictions": predictions,
            "request_ids": ids,
            "model": served.version.name,
            "model_version": served.version.version,
        }
        if probabilities is not None:
            result["probabilities"] = probabilities
        return result

    def feedback(self, host: ModelHost, body: Any) -> dict[str, Any]:
        items = body if isinstance(body, list) else [body]
        pairs: list[tuple[str, Any]] = []
        for index, item in enumerate(items):
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("request_id"), str)
                or "label" not in item
            ):
                raise RequestError(
                    422, f"Feedback item {index} needs 'request_id' (text) and 'label'."
                )
            pairs.append((item["request_id"], item["label"]))
        if self.sink is not None:
            self.sink.log_feedback(host.deployment, pairs)
        return {"accepted": len(pairs)}


def _endpoint(
    server: Server, name: str, handler: Callable[[Request], Awaitable[Response]]
) -> Callable[[Request], Any]:
    async def wrapped(request: Request) -> Response:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except RequestError as error:
            response = error_response(error.status, error.message)
        except Exception as exc:  # last line: an answer, never a crash or a 500 page
            response = error_response(
                503, f"The server could not answer: {type(exc).__name__}: {exc}"
            )
        server.telemetry.request(name, response.status_code, time.perf_counter() - started)
        return response

    return wrapped


def create_app(hosts: Mapping[str, ModelHost], sink: PredictionSink | None = None) -> Starlette:
    """The ASGI app serving `hosts` (deployment name -> host), logging to `sink`."""
    from loopml.serving import protocol_routes

    telemetry = Telemetry(hosts, sink)
    server = Server(hosts, sink, telemetry)

    async def predict(request: Request) -> Response:
        host = server.host(request.query_params.get("deployment"))
        body = await read_json(request)
        return json_response(await run_in_threadpool(server.predict_rows, host, body))

    async def feedback(request: Request) -> Response:
        host = server.host(request.query_params.get("deployment"))
        return json_response(server.feedback(host, await read_json(request)))

    async def metrics(request: Request) -> Response:
        return Response(telemetry.render(), media_type=telemetry.content_type)

    async def deployments(request: Request) -> Response:
        return json_response([h.describe() for h in server.hosts.values()])

    routes = [
        Route("/predict", _endpoint(server, "predict", predict), methods=["POST"]),
        Route("/feedback", _endpoint(server, "feedback", feedback), methods=["POST"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/deployments", _endpoint(server, "deployments", deployments), methods=["GET"]),
        *protocol_routes.routes(server, _endpoint),
    ]
    app = Starlette(routes=routes)
    app.state.server = server
    return app
