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
from loopml.domain.signature import PREDICTION_COLUMN
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


PROBABILITIES = "probabilities"
"""The V2 output tensor of class probabilities (shape [n, classes]), for models that have them."""


def _declared_outputs(served: Served) -> list[tuple[str, str]]:
    """The model's prediction outputs, as its signature names them ("prediction" if unknown)."""
    columns = [(c["name"], c["type"]) for c in served.version.signature.get("outputs", [])]
    return columns or [(PREDICTION_COLUMN, "object")]


def _output_metadata(served: Served) -> list[dict[str, Any]]:
    declared = [c for c in _declared_outputs(served) if c[1] != "object"]
    entries: list[dict[str, Any]] = model_metadata("", [], "", [], declared)["outputs"]
    if served.has_proba:
        classes = getattr(served.model.raw, "classes_", None)
        width = len(classes) if classes is not None else -1
        entries.append({"name": PROBABILITIES, "datatype": "FP64", "shape": [-1, width]})
    return entries


def _outputs(served: Served, features: Any, wanted: list[str] | None) -> dict[str, Any]:
    """The output tensors asked for (all of them when `wanted` is None), by name."""
    import numpy as np

    declared = [name for name, _ in _declared_outputs(served)]
    available = declared + ([PROBABILITIES] if served.has_proba else [])
    unknown = [name for name in wanted or [] if name not in available]
    if unknown:
        raise RequestError(
            400, f"The model has no output {unknown[0]!r}; it has: {', '.join(available)}."
        )
    chosen = available if wanted is None else wanted
    outputs: dict[str, Any] = {}
    if any(name in declared for name in chosen):
        predicted = np.asarray(served.model.predict(features))
        if len(declared) > 1 and predicted.ndim == 2 and predicted.shape[1] == len(declared):
            outputs |= {name: predicted[:, i] for i, name in enumerate(declared)}
        else:
            outputs[declared[0]] = predicted
    if PROBABILITIES in chosen:
        outputs[PROBABILITIES] = served.model.predict_proba(features)
    return {name: outputs[name] for name in chosen if name in outputs}


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
        outputs = _outputs(served, served.features(frame), decoded.requested_outputs)
    except RequestError:
        raise
    except Exception as exc:
        raise RequestError(
            400, f"The model could not predict: {type(exc).__name__}: {exc}"
        ) from None
    if server.sink is not None:
        logged = [v for k, v in outputs.items() if k != PROBABILITIES] or list(outputs.values())
        predictions = logged[0].tolist() if hasattr(logged[0], "tolist") else list(logged[0])
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
        body = model_metadata(
            request.path_params["name"], [str(v.version)], f"loopml-{v.flavor}", served.inputs, []
        )
        return json_response({**body, "outputs": _output_metadata(served)})

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
