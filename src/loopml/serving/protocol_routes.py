"""The Open Inference Protocol (KServe V2) REST surface over the hosted deployments.

Each deployment answers under its own V2 model name (the deployment name, or the model's name).
Request and response bodies follow the protocol's JSON tensor format; errors are
`{"error": "..."}` with a 4xx status: 400 for a malformed request, 413 for more than `MAX_ROWS`
rows (checked on the declared shapes, before any data is decoded), 422 naming the row and field
of a value the model cannot take (the same rules as `/predict`), 503 when the prediction log
has no room.

Every row gets a server-made request id; the response carries them as
`"parameters": {"request_ids": [...]}` (for `/feedback`), and echoes the client's `id`, which the
log keeps beside the server's ids (`client_id`), never instead of them. A request may give its
event time as `"parameters": {"event_time": ...}` (every row) or `{"event_times": [...]}` (one
per row), checked as `/predict` checks its own (`loopml.serving.bodies.request_event_times`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from loopml.domain.binary_tensors import split_request
from loopml.domain.inference_protocol import (
    DecodedRequest,
    RefusedValue,
    declared_rows,
    decode_infer_request,
    model_metadata,
    server_metadata,
)
from loopml.domain.inference_responses import (
    binary_outputs,
    encode_binary_response,
    encode_infer_response,
)
from loopml.domain.signature import PREDICTION_COLUMN
from loopml.errors import InvalidInput
from loopml.serving.batching import TensorRows
from loopml.serving.bodies import request_event_times
from loopml.serving.frames import (
    MAX_ROWS,
    NUMERIC,
    RequestError,
    ServedRows,
    column_types,
    columns_frame,
    exact_integers,
    logged_inputs,
)
from loopml.serving.json_io import json_response, read_body, read_json

if TYPE_CHECKING:
    from loopml.domain.records import ModelVersion
    from loopml.serving.answers import TensorAnswer
    from loopml.serving.app import Server
    from loopml.serving.host import ModelHost, Served

Wrap = Callable[["Server", str, Callable[[Request], Awaitable[Response]]], Callable[..., Any]]


def check_version(host: ModelHost, wanted: str | None) -> Served:
    """The version `host` serves, or 404 when the client asks for another (`wanted`)."""
    served = host.current
    if wanted and wanted != str(served.version.version):
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


def _available(served: Served) -> tuple[list[str], list[str]]:
    """The model's declared prediction outputs, and every output it can give."""
    declared = [name for name, _ in _declared_outputs(served)]
    return declared, declared + ([PROBABILITIES] if served.has_proba else [])


def _check_wanted(served: Served, wanted: list[str] | None) -> None:
    """400 naming the first output asked for that the model does not have."""
    _, available = _available(served)
    unknown = [name for name in wanted or [] if name not in available]
    if unknown:
        raise RequestError(
            400, f"The model has no output {unknown[0]!r}; it has: {', '.join(available)}."
        )


def _named(
    served: Served, predicted: Any, probabilities: Any, wanted: list[str] | None
) -> dict[str, Any]:
    """The output tensors asked for (all of them when `wanted` is None), by name, from the
    model's predictions (split by column when it declares several outputs) and probabilities."""
    import numpy as np

    declared, available = _available(served)
    chosen = available if wanted is None else wanted
    outputs: dict[str, Any] = {}
    if predicted is not None and any(name in declared for name in chosen):
        predicted = np.asarray(predicted)
        if len(declared) > 1 and predicted.ndim == 2 and predicted.shape[1] == len(declared):
            outputs |= {name: predicted[:, i] for i, name in enumerate(declared)}
        else:
            outputs[declared[0]] = predicted
    if PROBABILITIES in chosen and probabilities is not None:
        outputs[PROBABILITIES] = probabilities
    return {name: outputs[name] for name in chosen if name in outputs}


def _outputs(served: Served, features: Any, wanted: list[str] | None) -> dict[str, Any]:
    """The output tensors asked for, from one call of the model on `features`."""
    _check_wanted(served, wanted)
    declared, available = _available(served)
    chosen = available if wanted is None else wanted
    predicted = None
    if any(name in declared for name in chosen):
        predicted = served.model.predict(features)
    probabilities = None
    if PROBABILITIES in chosen:
        probabilities = served.model.predict_proba(features)
    return _named(served, predicted, probabilities, wanted)


def tensor_rows(decoded: DecodedRequest, served: Served) -> TensorRows | None:
    """The request's rows as one float64 matrix and its null mask (NaN in a float tensor is a
    missing value, as JSON's null), when the signature is all numeric and every value fits
    its column exactly; None when a column needs the value-by-value checks, which then take
    the request (and name any value they refuse)."""
    import numpy as np

    types = column_types(served.inputs)
    if not types or any(kind not in NUMERIC for kind in types):
        return None
    if decoded.matrix is not None:  # sent as one tensor: converted as one
        parts = [decoded.matrix]
    else:
        parts = [decoded.columns[name] for name, _ in served.inputs]
    if any(part.dtype.kind not in "iuf" for part in parts):
        return None
    if any(p.dtype.kind in "iu" and p.size and np.abs(p).max() >= _EXACT for p in parts):
        return None  # an integer a float64 cannot hold exactly
    if decoded.matrix is not None:
        matrix = decoded.matrix.astype(np.float64)
    else:
        matrix = np.empty((decoded.rows, len(parts)), dtype=np.float64)
        for j, column in enumerate(parts):
            matrix[:, j] = column
    nulls = np.isnan(matrix)
    if not exact_integers(matrix, nulls, types):
        return None
    names = tuple(name for name, _ in served.inputs)
    return TensorRows(names, matrix, nulls, decoded.id)


_EXACT = 2**53
"""Integers below this in magnitude are exact in a float64."""
INLINE_ROWS = 64
"""Requests of at most this many rows are decoded on the event loop: a thread hand-off costs
more than their decoding."""


def metadata(name: str, served: Served) -> dict[str, Any]:
    """The V2 model metadata of the version `served` under `name`."""
    v = served.version
    body = model_metadata(name, [str(v.version)], f"loopml-{v.flavor}", served.inputs, [])
    if served.tensors is not None:  # the model's own tensors (an ONNX graph's), as they are
        return {**body, **served.tensors}
    return {**body, "outputs": _output_metadata(served)}


def _decode(body: Any, served: Served) -> DecodedRequest:
    rows = declared_rows(body)
    if rows > MAX_ROWS:
        raise RequestError(
            413, f"The request declares {rows} rows; at most {MAX_ROWS} are served per request."
        )
    try:
        decoded = decode_infer_request(body, list(served.inputs))
    except InvalidInput as error:
        raise RequestError(400, str(error)) from None
    if isinstance(decoded, RefusedValue):
        raise RequestError(422, decoded.message)
    return decoded


def _listed(values: Any) -> list[Any]:
    return list(values.tolist()) if hasattr(values, "tolist") else list(values)


def _kept(values: Any) -> Any:
    """Values for the log: a numpy array as it is (kept as a typed column), else a list."""
    return values if type(values).__module__ == "numpy" else _listed(values)


def _python_values(column: Any) -> list[Any]:
    """A decoded column as Python values, None where a float tensor held null (NaN)."""
    import numpy as np

    if column.dtype.kind != "f":
        return list(column.tolist())
    values = column.astype(object)
    values[np.isnan(column)] = None
    return list(values.tolist())


def _infer(
    server: Server, host: ModelHost, served: Served, decoded: DecodedRequest
) -> tuple[list[str], dict[str, Any]]:
    """Typed columns, the model's outputs and the rows' ids; the rows logged last (room for
    them is reserved), so nothing fails after they are."""
    started = time.perf_counter_ns()
    times = request_event_times(decoded.parameters, decoded.rows, "parameters.")
    values = [_python_values(decoded.columns[name]) for name, _ in served.inputs]
    prepared = columns_frame(values, served.inputs, served.categories)
    if prepared.errors:
        first = min(prepared.errors)
        raise RequestError(422, f"Row {first}: {prepared.errors[first]}")
    try:
        outputs = _outputs(served, served.features(prepared.frame), decoded.requested_outputs)
    except RequestError:
        raise
    except Exception as exc:
        raise RequestError(
            422, f"The model could not predict these rows: {type(exc).__name__}: {exc}"
        ) from None
    ids = server.ids.new(decoded.rows)
    version = served.version
    logged = [v for k, v in outputs.items() if k != PROBABILITIES] or list(outputs.values())
    probabilities = outputs.get(PROBABILITIES)
    if probabilities is not None:
        probabilities = _kept(probabilities)
    server.recent.add(host.deployment, ids)
    if server.sink is not None:
        rows, inputs = logged_inputs(prepared, [range(decoded.rows)])
        server.sink.log_predictions(
            ServedRows(
                host.deployment,
                version.name,
                version.version,
                rows,
                _kept(logged[0]),
                ids,
                (time.perf_counter_ns() - started) // 1000,
                prepared.flags,
                probabilities=probabilities,
                client_ids=[decoded.id] * len(ids),
                event_times_us=times,
                inputs=inputs,
            )
        )
    server.telemetry.rows(host.deployment, len(ids))
    return ids, outputs


async def answer(
    server: Server, host: ModelHost, served: Served, body: Any, *, from_grpc: bool = False
) -> tuple[DecodedRequest, list[str], dict[str, Any], ModelVersion]:
    """A V2 request (its JSON form, binary inputs as `BinaryData`) decoded, admitted to the
    log, predicted and logged: the request, its rows' ids, the outputs by name and the version
    that answered. Rows that make a matrix share a model call with other requests' (the
    micro-batcher); others are answered alone. Both the REST routes and the gRPC service
    (`from_grpc`, which has its own batcher: `Server.batcher`) answer through here."""
    if declared_rows(body) <= INLINE_ROWS:
        decoded = _decode(body, served)
    else:
        decoded = await run_in_threadpool(_decode, body, served)
    wanted = decoded.requested_outputs
    _check_wanted(served, wanted)
    times = request_event_times(decoded.parameters, decoded.rows, "parameters.")
    rows = tensor_rows(decoded, served)
    await server.admit(decoded.rows)
    try:
        if rows is None:
            ids, outputs = await run_in_threadpool(_infer, server, host, served, decoded)
            return decoded, ids, outputs, served.version
        probabilities = served.has_proba and (wanted is None or PROBABILITIES in wanted)
        batcher = server.batcher(host, kind="grpc" if from_grpc else "tensors")
        done: TensorAnswer = await batcher.submit(
            range(decoded.rows), probabilities, times, tensors=rows
        )
    except BaseException:
        server.release(decoded.rows)
        raise
    outputs = _named(done.served, done.predictions, done.probabilities, wanted)
    return decoded, done.ids, outputs, done.served.version


HEADER_LENGTH = "Inference-Header-Content-Length"


def _split(body: bytes, header: str) -> dict[str, Any]:
    if not header.isdigit():
        raise RequestError(400, f"{HEADER_LENGTH} is {header!r}, not a length in bytes.")
    try:
        return split_request(body, int(header))
    except InvalidInput as error:
        raise RequestError(400, str(error)) from None


def routes(server: Server, wrap: Wrap) -> list[Route]:
    from loopml import __version__

    async def meta(request: Request) -> Response:
        return json_response(server_metadata("loopml", __version__))

    async def live(request: Request) -> Response:
        return json_response({"live": True})

    async def ready(request: Request) -> Response:
        return json_response({"ready": all(h.current is not None for h in server.hosts.values())})

    async def model(request: Request) -> Response:
        name = request.path_params["name"]
        served = check_version(server.host(name), request.path_params.get("version"))
        return json_response(metadata(name, served))

    async def model_ready(request: Request) -> Response:
        check_version(server.host(request.path_params["name"]), request.path_params.get("version"))
        return json_response({"name": request.path_params["name"], "ready": True})

    async def infer(request: Request) -> Response:
        host = server.host(request.path_params["name"])
        served = check_version(host, request.path_params.get("version"))
        header = request.headers.get(HEADER_LENGTH)
        if header is None:
            body = await read_json(request)
        else:  # the binary tensor data extension: JSON, then the binary inputs' bytes
            body = _split(await read_body(request), header)
        decoded, ids, outputs, version = await answer(server, host, served, body)
        reply = encode_infer_response(
            version.name, str(version.version), outputs, decoded.id, {"request_ids": ids}
        )
        binary = binary_outputs(body) if isinstance(body, dict) else frozenset()
        if binary is not None and not binary:
            return json_response(reply)
        content, length = encode_binary_response(reply, outputs, binary)
        return Response(content, media_type="application/octet-stream",
                        headers={HEADER_LENGTH: str(length)})  # fmt: skip

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
