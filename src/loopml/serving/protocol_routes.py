"""The Open Inference Protocol (KServe V2) REST surface over the hosted deployments.

Each deployment answers under its own V2 model name (the deployment name, or the model's name).
Request and response bodies follow the protocol's JSON tensor format; errors are
`{"error": "..."}` with a 4xx status.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from loopml.domain.inference_protocol import (
    decode_infer_request,
    encode_infer_response,
    model_metadata,
    server_metadata,
)
from loopml.errors import InvalidInput
from loopml.serving.frames import RequestError, ServedRows

if TYPE_CHECKING:
    from loopml.serving.app import Server
    from loopml.serving.host import ModelHost, Served

Wrap = Callable[["Server", str, Callable[[Request], Awaitable[Response]]], Callable[..., Any]]


def _check_version(host: ModelHost, request: Request) -> Served:
    served = host.current
    wanted = request.path_params.get("version")
    if wanted is not None and wanted != str(served.version.version):
        raise RequestError(
            404,
            f"Model {host.name!r} version {wanted} is not served here; "
            f"version {served.version.version} is.",
        )
    return served


def _infer(server: Server, host: ModelHost, body: Any, served: Served) -> dict[str, Any]:
    import pandas as pd

    started = time.perf_counter_ns()
    try:
        decoded = decode_infer_request(body, list(served.inputs))
    except InvalidInput as error:
        raise RequestError(400, str(error)) from None
    names = [name for name, _ in served.inputs]
    frame = pd.DataFrame({name: decoded.columns[name] for name in names}, columns=names)
    try:
        features = served.features(frame)
        outputs = {"predict": served.model.predict(features)}
        wanted = decoded.requested_outputs or []
        if "predict_proba" in wanted and served.has_proba:
            outputs["predict_proba"] = served.model.predict_proba(features)
    except Exception as exc:
        raise RequestError(
            400, f"The model could not predict: {type(exc).__name__}: {exc}"
        ) from None
    if server.sink is not None:
        predictions = list(outputs["predict"])
        ids = [f"{decoded.id or 'v2'}-{i}" for i in range(len(predictions))]
        version = served.version
        server.sink.log_predictions(
            ServedRows(
                host.deployment,
                version.name,
                version.version,
                frame.to_dict("records"),  # type: ignore[arg-type]
                predictions,
                ids,
                (time.perf_counter_ns() - started) // 1000,
                [""] * len(ids),
            )
        )
    return encode_infer_response(
        served.version.name, str(served.version.version), outputs, decoded.id
    )


def routes(server: Server, wrap: Wrap) -> list[Route]:
    from loopml import __version__
    from loopml.serving.app import json_response, read_json

    async def meta(request: Request) -> Response:
        return json_response(server_metadata("loopml", __version__))

    async def live(request: Request) -> Response:
        return json_response({"live": True})

    async def ready(request: Request) -> Response:
        return json_response({"ready": all(h.current is not None for h in server.hosts.values())})

    async def model(request: Request) -> Response:
        host = server.host(request.path_params["name"])
        served = _check_version(host, request)
        v = served.version
        outputs = [(c["name"], c["type"]) for c in v.signature.get("outputs", [])]
        return json_response(
            model_metadata(
                request.path_params["name"],
                [str(v.version)],
                f"loopml-{v.flavor}",
                list(served.inputs),
                outputs,
            )
        )

    async def model_ready(request: Request) -> Response:
        _check_version(server.host(request.path_params["name"]), request)
        return json_response({"name": request.path_params["name"], "ready": True})

    async def infer(request: Request) -> Response:
        host = server.host(request.path_params["name"])
        served = _check_version(host, request)
        body = await read_json(request)
        return json_response(await run_in_threadpool(_infer, server, host, body, served))

    base, versioned = "/v2/models/{name}", "/v2/models/{name}/versions/{version}"
    return [
        Route("/v2", wrap(server, "v2_metadata", meta), methods=["GET"]),
        Route("/v2/health/live", wrap(server, "v2_live", live), methods=["GET"]),
        Route("/v2/health/ready", wrap(server, "v2_ready", ready), methods=["GET"]),
        Route("/health", wrap(server, "health", ready), methods=["GET"]),
        *(
            Route(prefix, wrap(server, "v2_model", model), methods=["GET"])
            for prefix in (base, versioned)
        ),
        *(
            Route(f"{prefix}/ready", wrap(server, "v2_model_ready", model_ready), methods=["GET"])
            for prefix in (base, versioned)
        ),
        *(
            Route(f"{prefix}/infer", wrap(server, "v2_infer", infer), methods=["POST"])
            for prefix in (base, versioned)
        ),
    ]
