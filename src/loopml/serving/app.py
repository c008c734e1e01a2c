"""The model server's ASGI app: `/predict`, `/feedback`, the Open Inference Protocol (V2),
health, Prometheus metrics and the OpenAPI document. Built by `create_app`, no globals.

Every request is answered with JSON; bad input gets a 4xx naming the problem, never a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from loopml.serving.batching import Job, MicroBatcher
from loopml.serving.frames import BatchFrame, RequestError, ServedRows, batch_frame, request_rows
from loopml.serving.host import NO_FEATURE_NAMES, DeploymentHosts, ModelHost, Served
from loopml.serving.telemetry import Telemetry

MAX_BODY_BYTES = 8 * 1024 * 1024


class PredictionSink(Protocol):
    """Where served rows and feedback go (the prediction log)."""

    def log_predictions(self, served: ServedRows) -> None: ...

    def log_feedback(self, deployment: str, items: Sequence[tuple[str, Any]]) -> None: ...

    def stats(self) -> dict[str, int]: ...

    def close(self) -> None:
        """Write everything queued; called on shutdown."""
        ...


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


def _ids(count: int) -> list[str]:
    """One request id per row: the request's id and the row's position."""
    base = uuid.uuid4().hex
    return [f"{base}-{i}" for i in range(count)]


def _outputs(values: Any) -> list[Any]:
    return values.tolist() if hasattr(values, "tolist") else list(values)


@dataclass(frozen=True)
class _Answer:
    predictions: list[Any]
    probabilities: list[Any] | None
    latency_us: int


class Server:
    """The request handlers over the hosted deployments."""

    def __init__(
        self,
        hosts: Mapping[str, ModelHost | DeploymentHosts],
        sink: PredictionSink | None,
        telemetry: Telemetry,
        batching: Mapping[str, Any] | None = None,
    ) -> None:
        self.deployments = {
            name: h if isinstance(h, DeploymentHosts) else DeploymentHosts(h)
            for name, h in hosts.items()
        }
        self.hosts = {name: d.primary for name, d in self.deployments.items()}
        self._shadow_tasks: set[asyncio.Task[Any]] = set()
        self.shadow_errors = 0
        self.sink = sink
        self.telemetry = telemetry
        self._batching = dict(batching or {})
        self.log_probabilities = False
        """Compute and log class probabilities for every row (for label-free estimates)."""
        self._batchers: dict[str, MicroBatcher] = {}

    def host(self, name: str | None) -> ModelHost:
        if name is None:
            if len(self.hosts) == 1:
                return next(iter(self.hosts.values()))
            raise RequestError(404, f"Name a deployment: {', '.join(sorted(self.hosts))}.")
        for host in self.hosts.values():
            if name in (host.deployment, host.name):
                return host
        raise RequestError(404, f"No deployment or model named {name!r} is served here.")

    def batcher(self, host: ModelHost) -> MicroBatcher:
        key = f"{host.deployment}:{host.role}"
        batcher = self._batchers.get(key)
        if batcher is None:
            batcher = self._batchers[key] = MicroBatcher(
                lambda jobs: self.run_batch(host, jobs), **self._batching
            )
        return batcher

    async def predict(self, host: ModelHost, body: Any) -> dict[str, Any]:
        """Answer with the primary (or, for a share of requests, the canary); mirror the rows to
        the shadow in the background, never waiting for it."""
        deployment = self.deployments[host.deployment]
        chosen = deployment.pick(random.uniform(0.0, 100.0))
        rows = request_rows(body, chosen.current.inputs)
        wanted = bool(body.get("probabilities")) if isinstance(body, dict) else False
        result: dict[str, Any] = await self.batcher(chosen).submit(rows, wanted)
        if deployment.shadow is not None:
            task = asyncio.create_task(self.batcher(deployment.shadow).submit(rows, False))
            self._shadow_tasks.add(task)
            task.add_done_callback(self._shadow_done)
        return result

    def _shadow_done(self, task: asyncio.Task[Any]) -> None:
        self._shadow_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.shadow_errors += 1  # a shadow's failure never reaches the client

    def run_batch(self, host: ModelHost, jobs: Sequence[Job]) -> list[Any]:
        """One model call for every request of the batch; a request whose rows do not convert
        gets its 422 and the others their predictions."""
        started = time.perf_counter_ns()
        served = host.current  # the whole batch is answered by this version, even mid-swap
        rows = [row for job in jobs for row in job.rows]
        prepared = batch_frame(rows, served.inputs, served.categories)
        try:
            if served.array_input and prepared.values is not None:
                features = prepared.values  # no data frame is ever built for this batch
            else:
                features = served.features(prepared.frame)
            count = prepared.rows
            predictions = _outputs(served.model.predict(features)) if count else []
            wants_proba = served.has_proba and (
                self.log_probabilities or any(j.probabilities for j in jobs)
            )
            probabilities = (
                _outputs(served.model.predict_proba(features)) if wants_proba and count else None
            )
        except Exception as exc:
            error = RequestError(
                422, f"The model could not predict these rows: {type(exc).__name__}: {exc}"
            )
            return [error] * len(jobs)
        latency_us = (time.perf_counter_ns() - started) // 1000
        return self._split(
            host, served, jobs, prepared, _Answer(predictions, probabilities, latency_us)
        )

    def _split(
        self,
        host: ModelHost,
        served: Served,
        jobs: Sequence[Job],
        prepared: BatchFrame,
        answer: _Answer,
    ) -> list[Any]:
        predictions, probabilities = answer.predictions, answer.probabilities
        results: list[Any] = []
        logged: dict[str, list[Any]] = {
            "rows": [],
            "ids": [],
            "flags": [],
            "outputs": [],
            "probs": [],
        }
        start, position, taken = 0, 0, 0  # input row, kept-row (prediction) index, rows served
        for job in jobs:
            span = range(start, start + len(job.rows))
            start += len(job.rows)
            kept = int(prepared.kept[span.start : span.stop].sum())
            outputs = predictions[position : position + kept]
            probs = probabilities[position : position + kept] if probabilities else None
            position += kept
            bad = next((i for i in span if i in prepared.errors), None)
            if bad is not None:
                message = f"Row {bad - span.start} {prepared.errors[bad]}."
                results.append(RequestError(422, message))
                continue
            ids = _ids(len(job.rows))
            version = served.version
            result: dict[str, Any] = {
                "predictions": outputs,
                "request_ids": ids,
                "model": version.name,
                "model_version": version.version,
            }
            if job.probabilities and probs is not None:
                result["probabilities"] = probs
            results.append(result)
            logged["rows"] += job.rows
            logged["ids"] += ids
            logged["flags"] += [prepared.flags[i] for i in span]
            logged["outputs"] += outputs
            logged["probs"] += probs if probs is not None else [None] * len(outputs)
            taken += len(job.rows)
        if self.sink is not None and logged["ids"]:
            version = served.version
            self.sink.log_predictions(
                ServedRows(
                    host.deployment,
                    version.name,
                    version.version,
                    logged["rows"],
                    logged["outputs"],
                    logged["ids"],
                    answer.latency_us,
                    logged["flags"],
                    shadow=host.role == "shadow",
                    probabilities=logged["probs"] if probabilities is not None else None,
                )
            )
        self.telemetry.rows(host.deployment, taken)
        return results

    def explain(self, host: ModelHost, body: Any) -> dict[str, Any]:
        from loopml.serving.explain import explain

        served = host.current
        prepared = batch_frame(request_rows(body, served.inputs), served.inputs)
        if prepared.errors:
            first = min(prepared.errors)
            raise RequestError(422, f"Row {first} {prepared.errors[first]}.")
        try:
            answer = explain(served, prepared.frame, served.reference)
        except Exception as exc:
            raise RequestError(
                422, f"The model could not explain these rows: {type(exc).__name__}: {exc}"
            ) from None
        version = served.version
        return {**answer, "model": version.name, "model_version": version.version}

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


def _lifespan(
    server: Server,
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        every = [h for d in server.deployments.values() for h in d.all()]
        for host in every:
            host.start()
        try:
            yield
        finally:  # graceful shutdown (SIGTERM): stop following aliases, write the queued log
            if server._shadow_tasks:  # let mirrored requests finish (bounded), so they are logged
                await asyncio.wait(list(server._shadow_tasks), timeout=5)
            for host in every:
                host.stop()
            for batcher in server._batchers.values():
                batcher.close()
            if server.sink is not None:
                server.sink.close()

    return lifespan


def create_app(
    hosts: Mapping[str, ModelHost | DeploymentHosts],
    sink: PredictionSink | None = None,
    *,
    batching: Mapping[str, Any] | None = None,
    log_probabilities: bool = False,
) -> Starlette:
    """The ASGI app serving `hosts` (deployment name -> host), logging to `sink`.

    `batching` configures the micro-batcher: `max_batch_rows`, `max_wait_ms`, `enabled`.
    `log_probabilities` computes a classifier's class probabilities for every row and logs
    them, so monitoring can estimate performance before labels arrive.
    """
    from loopml.serving import protocol_routes

    # Numeric models may take arrays (Served.array_input): their feature-name warning is noise.
    warnings.filterwarnings("ignore", message=NO_FEATURE_NAMES, category=UserWarning)
    primaries = {n: h.primary if isinstance(h, DeploymentHosts) else h for n, h in hosts.items()}
    telemetry = Telemetry(primaries, sink)
    server = Server(hosts, sink, telemetry, batching)
    server.log_probabilities = log_probabilities

    async def predict(request: Request) -> Response:
        host = server.host(request.query_params.get("deployment"))
        return json_response(await server.predict(host, await read_json(request)))

    async def feedback(request: Request) -> Response:
        host = server.host(request.query_params.get("deployment"))
        return json_response(server.feedback(host, await read_json(request)))

    async def explain(request: Request) -> Response:
        host = server.host(request.query_params.get("deployment"))
        body = await read_json(request)
        return json_response(await run_in_threadpool(server.explain, host, body))

    async def metrics(request: Request) -> Response:
        return Response(telemetry.render(), media_type=telemetry.content_type)

    async def deployments(request: Request) -> Response:
        return json_response([h.describe() for h in server.hosts.values()])

    async def openapi(request: Request) -> Response:
        from loopml import __version__
        from loopml.serving.openapi import openapi_document

        hosts = list(server.hosts.values())
        inputs = hosts[0].current.inputs if len(hosts) == 1 else None
        return json_response(openapi_document(__version__, inputs))

    routes = [
        Route("/predict", _endpoint(server, "predict", predict), methods=["POST"]),
        Route("/feedback", _endpoint(server, "feedback", feedback), methods=["POST"]),
        Route("/explain", _endpoint(server, "explain", explain), methods=["POST"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/deployments", _endpoint(server, "deployments", deployments), methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *protocol_routes.routes(server, _endpoint),
    ]

    app = Starlette(routes=routes, lifespan=_lifespan(server))
    app.state.server = server
    return app
