"""The model server's ASGI app: `/predict`, `/feedback`, the Open Inference Protocol (V2),
health, Prometheus metrics and the OpenAPI document. Built by `create_app`, no globals.

Every request is answered with JSON; bad input gets a 4xx naming the problem, never a 500.
Every served row gets a request id the server makes (a UUIDv7, `loopml.domain.request_ids`),
on every route and for shadow and canary rows alike. "Answered" implies "logged": room for a
request's rows is reserved in the prediction log before the model sees them; when the log has
had no room for `LOG_WAIT_S`, the request is refused with 503 and `Retry-After` instead (the
rule is written out in `loopml.adapters.prediction_log`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from loopml.domain.request_ids import RequestIds
from loopml.serving.answers import answer_batch
from loopml.serving.batching import Job, MicroBatcher
from loopml.serving.bodies import request_event_times, request_rows
from loopml.serving.feedback import RecentIds, check_served, feedback_items, typed_labels
from loopml.serving.frames import RequestError, batch_frame
from loopml.serving.host import NO_FEATURE_NAMES, DeploymentHosts, ModelHost
from loopml.serving.json_io import error_response, json_response, read_json
from loopml.serving.log_sink import LogSink
from loopml.serving.telemetry import Telemetry

GRPC_GRACE_S = 10.0
V2_GATHER_MS = 2.0
"""The longest a V2 batch waits to hold as many requests as the one before it (at concurrency
16 over gRPC: 2,000 single-row LightGBM calls/s instead of 1,350; a lone client never waits;
`MicroBatcher.gather_s`)."""
"""How long a stopping server lets gRPC calls in flight finish."""
LOG_WAIT_S = 2.0
"""How long a request waits for room in a full prediction log before its 503."""
RETRY_AFTER_S = 1
log = logging.getLogger("loopml.serving")


class Server:
    """The request handlers over the hosted deployments."""

    def __init__(
        self,
        hosts: Mapping[str, ModelHost | DeploymentHosts],
        sink: LogSink | None,
        telemetry: Telemetry,
        batching: Mapping[str, Any] | None = None,
    ) -> None:
        self.deployments = {
            name: h if isinstance(h, DeploymentHosts) else DeploymentHosts(h)
            for name, h in hosts.items()
        }
        self.hosts = {name: d.primary for name, d in self.deployments.items()}
        self._shadow_tasks: set[asyncio.Task[Any]] = set()
        self.shadow_errors = self.shadows_skipped = 0
        self.sink = sink
        self.telemetry = telemetry
        self._batching = dict(batching or {})
        self.log_probabilities = False
        """Compute and log class probabilities for every row (for label-free estimates)."""
        self._batchers: dict[str, MicroBatcher] = {}
        self.ids = RequestIds(lambda: time.time_ns() // 1_000_000, os.urandom)
        self.recent = RecentIds()
        """The ids this process issued lately, for the feedback check."""
        self.requests = 0
        """Requests answered (any status) on the model routes, for the line at shutdown."""
        self.grpc_address: tuple[str, int] | None = None
        """Where the V2 gRPC service listens (`loopml.serving.grpc_service`), if it does."""

    def host(self, name: str | None) -> ModelHost:
        if name is None:
            if len(self.hosts) == 1:
                return next(iter(self.hosts.values()))
            raise RequestError(404, f"Name a deployment: {', '.join(sorted(self.hosts))}.")
        for host in self.hosts.values():
            if name in (host.deployment, host.name):
                return host
        raise RequestError(404, f"No deployment or model named {name!r} is served here.")

    def batcher(self, host: ModelHost, *, kind: str = "rows") -> MicroBatcher:
        """The micro-batcher of one kind of `host`'s requests: `rows` (`/predict`), `tensors`
        (REST V2 requests whose rows are matrices) or `grpc` (the same from the gRPC
        service); one kind per batcher, so no batch mixes rows and matrices.

        gRPC batches always call the model in the batcher's thread, never on the event loop:
        the gRPC service hands the loop one new call per wake-up, so a model called on the
        loop keeps calls from gathering (at concurrency 16 a batch held 1.2 requests and a
        HistGradientBoosting model answered 370 single-row calls/s; in the thread, batches
        fill while the model runs: 700-1,100/s). REST requests arrive together, and a quick
        model answers them on the loop, as `/predict`'s. Both V2 kinds gather their batches
        (`V2_GATHER_MS`)."""
        key = f"{host.deployment}:{host.role}:{kind}"
        batcher = self._batchers.get(key)
        if batcher is None:
            options = dict(self._batching)
            if kind != "rows":  # V2 clients wait for their answers, then send again
                options.setdefault("gather_ms", V2_GATHER_MS)
            if kind == "grpc":
                options["inline_under_ms"] = 0.0
            batcher = self._batchers[key] = MicroBatcher(
                lambda jobs: self.run_batch(host, jobs), **options
            )
        return batcher

    async def admit(self, rows: int) -> None:
        """Return once the prediction log holds room for `rows` rows; 503 if it had none for
        `LOG_WAIT_S` (the request is then answered nothing)."""
        if self.sink is None or self.sink.reserve(rows):
            return
        deadline, pause = time.monotonic() + LOG_WAIT_S, 0.005
        while time.monotonic() < deadline:
            await asyncio.sleep(pause)
            if self.sink.reserve(rows):
                return
            pause = min(2 * pause, 0.1)
        self.telemetry.log_refused(rows)
        raise RequestError(
            503,
            f"The prediction log cannot keep up: it had no room for {rows} more rows for "
            f"{LOG_WAIT_S:g} s, so they were not served (every answered row is logged). "
            f"Retry in {RETRY_AFTER_S} s.",
            retry_after_s=RETRY_AFTER_S,
        )

    def release(self, rows: int) -> None:
        """Give back log room reserved for rows that were not answered."""
        if self.sink is not None:
            self.sink.release(rows)

    async def predict(self, host: ModelHost, body: Any) -> dict[str, Any]:
        """Answer with the primary (or, for a share of requests, the canary); mirror the rows to
        the shadow in the background, never waiting for it."""
        deployment = self.deployments[host.deployment]
        chosen = deployment.pick(random.uniform(0.0, 100.0))
        signature = chosen.current.inputs
        rows, values = request_rows(body, signature)
        wanted = bool(body.get("probabilities")) if isinstance(body, dict) else False
        times = request_event_times(body, len(rows))
        await self.admit(len(rows))
        given = (tuple(name for name, _ in signature), values)
        try:
            result: dict[str, Any] = await self.batcher(chosen).submit(rows, wanted, times, given)
        except BaseException:
            self.release(len(rows))
            raise
        if deployment.shadow is not None:
            self._mirror(deployment.shadow, rows, times)
        return result

    def _mirror(
        self, shadow: ModelHost, rows: Sequence[dict[str, Any]], times: list[int] | None
    ) -> None:
        """Send the rows to the shadow if the log has room for them now (a shadow's rows are
        never answered, so they are skipped, and counted, rather than waited for)."""
        if self.sink is not None and not self.sink.reserve(len(rows)):
            self.shadows_skipped += 1
            return
        task = asyncio.create_task(self.batcher(shadow).submit(rows, False, times))
        self._shadow_tasks.add(task)
        task.add_done_callback(lambda done: self._shadow_done(done, len(rows)))

    def _shadow_done(self, task: asyncio.Task[Any], rows: int) -> None:
        self._shadow_tasks.discard(task)
        if task.cancelled() or task.exception() is not None:
            self.shadow_errors += 1  # a shadow's failure never reaches the client
            self.release(rows)

    def run_batch(self, host: ModelHost, jobs: Sequence[Job]) -> list[Any]:
        """One model call for every request of the batch (`loopml.serving.answers`)."""
        return answer_batch(self, host, jobs)

    def explain(self, host: ModelHost, body: Any) -> dict[str, Any]:
        from loopml.serving.explain import explain

        served = host.current
        rows, values = request_rows(body, served.inputs)
        prepared = batch_frame(rows, served.inputs, values=values)
        if prepared.errors:
            first = min(prepared.errors)
            raise RequestError(422, f"Row {first}: {prepared.errors[first]}")
        try:
            answer = explain(served, prepared.frame, served.reference)
        except Exception as exc:
            raise RequestError(
                422, f"The model could not explain these rows: {type(exc).__name__}: {exc}"
            ) from None
        version = served.version
        return {**answer, "model": version.name, "model_version": version.version}

    async def feedback(self, host: ModelHost, body: Any) -> dict[str, Any]:
        """Check every item (label type, id issued by this deployment), then keep them all."""
        if self.sink is None:
            raise RequestError(
                409,
                "This server keeps no prediction log (it runs with --no-log), so it cannot keep "
                "labels. Serve without --no-log to collect feedback.",
            )
        outputs = [
            (c["name"], c["type"]) for c in host.current.version.signature.get("outputs", [])
        ]
        pairs = typed_labels(feedback_items(body), outputs)
        await check_served(self.recent, self.sink, host.deployment, [rid for rid, _ in pairs])
        await self.admit(len(pairs))
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
            response = error_response(error.status, error.message, error.retry_after_s)
        except Exception as exc:  # last line: an answer, never a crash or a 500 page
            response = error_response(
                503, f"The server could not answer: {type(exc).__name__}: {exc}"
            )
        server.telemetry.request(name, response.status_code, time.perf_counter() - started)
        server.requests += 1
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
        grpc_server = None
        if server.grpc_address is not None:
            from loopml.serving import grpc_service

            grpc_server, port = await grpc_service.start(server, *server.grpc_address)
            server.grpc_address = (server.grpc_address[0], port)
            log.info("serving the V2 gRPC service on %s:%s", *server.grpc_address)
        try:
            yield
        finally:  # graceful shutdown (SIGTERM): stop following aliases, write the queued log
            if grpc_server is not None:  # calls in flight finish (bounded) and are logged
                await grpc_server.stop(GRPC_GRACE_S)
            if server._shadow_tasks:  # let mirrored requests finish (bounded), so they are logged
                await asyncio.wait(list(server._shadow_tasks), timeout=5)
            for host in every:
                host.stop()
            for batcher in server._batchers.values():
                batcher.close()
            if server.sink is not None:
                server.sink.close()
            log.info(_stopped(server))

    return lifespan


def _stopped(server: Server) -> str:
    """The line a stopping server leaves: what it logged, over how many requests."""
    if server.sink is None:
        return f"stopped: {server.requests} requests answered, nothing logged (--no-log)"
    stats = server.sink.stats()
    unwritten = stats.get("queue_depth", 0)
    return (
        f"stopped: {stats.get('predictions_logged', 0)} rows and "
        f"{stats.get('labels_logged', 0)} labels logged in {server.requests} requests"
        f"{f', {unwritten} of them not written (see above)' if unwritten else ''}"
    )


def create_app(
    hosts: Mapping[str, ModelHost | DeploymentHosts],
    sink: LogSink | None = None,
    *,
    batching: Mapping[str, Any] | None = None,
    log_probabilities: bool = False,
    grpc: tuple[str, int] | None = None,
) -> Starlette:
    """The ASGI app serving `hosts` (deployment name -> host), logging to `sink`.

    `batching` configures the micro-batcher: `max_batch_rows`, `max_wait_ms`, `enabled`.
    `log_probabilities` computes a classifier's class probabilities for every row and logs
    them, so monitoring can estimate performance before labels arrive. `grpc` (host, port)
    also serves the V2 gRPC service there while the app runs (port 0: any free one, then
    `app.state.server.grpc_address` says which).
    """
    from loopml.serving import protocol_routes

    # Numeric models may take arrays (Served.array_input): their feature-name warning is noise.
    warnings.filterwarnings("ignore", message=NO_FEATURE_NAMES, category=UserWarning)
    primaries = {n: h.primary if isinstance(h, DeploymentHosts) else h for n, h in hosts.items()}
    telemetry = Telemetry(primaries, sink)
    server = Server(hosts, sink, telemetry, batching)
    server.log_probabilities = log_probabilities
    server.grpc_address = grpc

    async def predict(request: Request) -> Response:
        host = server.host(request.query_params.get("deployment"))
        return json_response(await server.predict(host, await read_json(request)))

    async def feedback(request: Request) -> Response:
        host = server.host(request.query_params.get("deployment"))
        return json_response(await server.feedback(host, await read_json(request)))

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
