"""The Open Inference Protocol's gRPC service (`inference.GRPCInferenceService`) on a second port.

`loopml serve --grpc-port N` answers ServerLive, ServerReady, ServerMetadata, ModelReady,
ModelMetadata and ModelInfer on `N` beside the REST routes, in the same process and event loop,
over the same hosted models and prediction log: a gRPC request is turned into the JSON form of
a V2 request (each raw input's bytes as `BinaryData`, as the binary tensor data extension
gives them) and answered through `protocol_routes.answer`, so it is checked, admitted to the
log, predicted and logged exactly as a REST request is.

Inputs come either all in `raw_input_contents` (one entry per input, in order; what
`tritonclient.grpc` sends) or each in its `contents` field for its datatype (`fp32_contents`
for FP32, ...). Outputs go back in `raw_output_contents`, which every client reads. The rows'
request ids (for `/feedback`) are the response parameter `request_ids`, comma-separated.

Errors are gRPC statuses with the message the REST route gives: INVALID_ARGUMENT for a
malformed request or a value the model cannot take, NOT_FOUND for an unknown model or version,
RESOURCE_EXHAUSTED for too many rows, UNAVAILABLE when the log has no room (nothing served).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from loopml.domain.binary_tensors import BinaryData
from loopml.domain.inference_protocol import server_metadata
from loopml.domain.inference_responses import binary_tensor
from loopml.serving.frames import RequestError
from loopml.serving.json_io import MAX_BODY_BYTES
from loopml.serving.protocol_routes import answer, check_version, metadata

if TYPE_CHECKING:
    from loopml.domain.records import ModelVersion
    from loopml.serving.app import Server

CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
"""The `InferTensorContents` field each datatype's elements go in (FP16 and BF16 have none:
they come as raw bytes only)."""

_STATUS = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    413: "RESOURCE_EXHAUSTED",
    422: "INVALID_ARGUMENT",
}


def request_body(request: Any) -> dict[str, Any]:
    """A `ModelInferRequest` as the JSON form of a V2 request; RequestError(400) when its
    tensors' contents do not match their datatypes or the raw contents their count."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise RequestError(
            400,
            f"The request has {len(request.inputs)} inputs but {len(raw)} raw_input_contents. "
            "Send every input's bytes in raw_input_contents, in the order of the inputs, or "
            "none and each input's elements in its contents.",
        )
    inputs = []
    for index, tensor in enumerate(request.inputs):
        item: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
            "parameters": _parameters(tensor.parameters),
        }
        item["data"] = BinaryData(raw[index]) if raw else _contents(tensor)
        inputs.append(item)
    body: dict[str, Any] = {"inputs": inputs, "parameters": _parameters(request.parameters)}
    if request.id:
        body["id"] = request.id
    if request.outputs:
        body["outputs"] = [{"name": output.name} for output in request.outputs]
    return body


def _contents(tensor: Any) -> Any:
    """A tensor's elements from its `contents`: a list the JSON rules check, or BYTES as
    `BinaryData` (length-prefixed) so their UTF-8 is checked as the binary extension's is."""
    given = [field.name for field, _ in tensor.contents.ListFields()]
    wanted = CONTENTS.get(tensor.datatype)
    if len(given) > 1 or (given and given[0] != wanted):
        where = f"contents.{wanted}" if wanted else "raw_input_contents"
        raise RequestError(
            400,
            f"Input {tensor.name!r} is {tensor.datatype} but holds its elements in "
            f"{', '.join(f'contents.{name}' for name in given)}. Send {tensor.datatype} "
            f"elements in {where}.",
        )
    if wanted is None:  # FP16, BF16: bytes only
        raise RequestError(
            400,
            f"Input {tensor.name!r} is {tensor.datatype}, which has no contents field. "
            "Send its bytes in raw_input_contents.",
        )
    values = getattr(tensor.contents, wanted)
    if tensor.datatype == "BYTES":
        return BinaryData(b"".join(len(v).to_bytes(4, "little") + v for v in values))
    return list(values)


def _parameters(parameters: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in parameters.items():
        chosen = value.WhichOneof("parameter_choice")
        found[key] = None if chosen is None else getattr(value, chosen)
    return found


def response_message(
    reply: Any, version: ModelVersion, request_id: str, ids: list[str], outputs: dict[str, Any]
) -> Any:
    """The `ModelInferResponse` (class `reply`) of `version`: every output's bytes in
    `raw_output_contents`."""
    message = reply(model_name=version.name, model_version=str(version.version), id=request_id)
    message.parameters["request_ids"].string_param = ",".join(ids)
    for output_name, array in outputs.items():
        datatype, shape, raw = binary_tensor(output_name, array)
        message.outputs.add(name=output_name, datatype=datatype, shape=shape)
        message.raw_output_contents.append(raw)
    return message


class Service:
    """The service's methods over `server`: each takes a request message and the call's
    context and returns the response message, or aborts the call with a status."""

    def __init__(self, server: Server) -> None:
        from loopml.serving.grpc_messages import messages

        self.server = server
        self.messages = messages()

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return self.messages["ServerLiveResponse"](live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        ready = all(h.current is not None for h in self.server.hosts.values())
        return self.messages["ServerReadyResponse"](ready=ready)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        from loopml import __version__

        return self.messages["ServerMetadataResponse"](**server_metadata("loopml", __version__))

    async def ModelReady(self, request: Any, context: Any) -> Any:
        """Ready, or not (a model or version not served here is not ready; the call itself
        succeeds, as clients expect a yes or a no)."""
        try:
            check_version(self.server.host(request.name or None), request.version)
        except RequestError:
            return self.messages["ModelReadyResponse"](ready=False)
        return self.messages["ModelReadyResponse"](ready=True)

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        from google.protobuf import json_format

        host = self.server.host(request.name or None)
        body = metadata(request.name or host.deployment, check_version(host, request.version))
        return json_format.ParseDict(body, self.messages["ModelMetadataResponse"]())

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        host = self.server.host(request.model_name or None)
        served = check_version(host, request.model_version)
        body = request_body(request)
        _, ids, outputs, version = await answer(self.server, host, served, body, from_grpc=True)
        reply = self.messages["ModelInferResponse"]
        return response_message(reply, version, request.id, ids, outputs)


def _method(server: Server, name: str, call: Callable[[Any, Any], Awaitable[Any]]) -> Any:
    """`call` with every failure turned into a gRPC status (never an unhandled error), and
    counted in the server's telemetry as its REST twin would be."""
    import grpc

    async def handle(request: Any, context: Any) -> Any:
        started, status = time.perf_counter(), 200
        try:
            return await call(request, context)
        except RequestError as error:
            status = error.status
            code = getattr(grpc.StatusCode, _STATUS.get(error.status, "UNAVAILABLE"))
            message = error.message
        except Exception as exc:  # last line: a status, never a crash
            status, code = 503, grpc.StatusCode.UNAVAILABLE
            message = f"The server could not answer: {type(exc).__name__}: {exc}"
        finally:
            server.telemetry.request(f"grpc_{name}", status, time.perf_counter() - started)
            server.requests += 1
        return await context.abort(code, message)  # raises: the call ends with the status

    return handle


async def start(server: Server, host: str, port: int) -> tuple[Any, int]:
    """A running `grpc.aio` server for `server`'s models on `host:port`, and the port it
    listens on (port 0 takes any free one). Workers sharing a port each start one on it
    (SO_REUSEPORT), as they share the REST port."""
    import grpc

    from loopml.serving.grpc_messages import METHODS, PACKAGE, SERVICE

    service = Service(server)
    handlers = {}
    for method, request, response in METHODS:
        handlers[method] = grpc.unary_unary_rpc_method_handler(
            _method(server, method, getattr(service, method)),
            request_deserializer=service.messages[request].FromString,
            response_serializer=service.messages[response].SerializeToString,
        )
    options = [("grpc.max_receive_message_length", MAX_BODY_BYTES), ("grpc.so_reuseport", 1)]
    grpc_server = grpc.aio.server(options=options)
    grpc_server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(f"{PACKAGE}.{SERVICE}", handlers),)
    )
    bound = grpc_server.add_insecure_port(f"{host}:{port}")
    await grpc_server.start()
    return grpc_server, bound
