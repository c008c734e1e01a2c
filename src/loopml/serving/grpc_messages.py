"""The Open Inference Protocol's gRPC messages, built from a description at first use.

The protocol's gRPC service is `inference.GRPCInferenceService`; clients (NVIDIA's
`tritonclient.grpc`, KServe's) speak to it with the message names and field numbers below, which
are the protocol's wire format. The messages are described here as data and turned into
protobuf classes by the protobuf runtime itself (`descriptor_pb2` + `message_factory`), so
nothing is generated ahead of time: no `protoc` step, no generated module tied to one protobuf
release, and `import loopml` never imports protobuf (only `loopml serve --grpc-port` does).

A field is `(name, number, type)` with a type from `_SCALARS`, a message name (`.inference.X`),
a `repeated ...`, or a `map<string, X>`; a `oneof` groups the fields of `InferParameter`.
"""

from __future__ import annotations

from functools import cache
from typing import Any

PACKAGE = "inference"
SERVICE = "GRPCInferenceService"

_TENSOR_FIELDS = (
    ("name", 1, "string"),
    ("datatype", 2, "string"),
    ("shape", 3, "repeated int64"),
    ("parameters", 4, "map<string, InferParameter>"),
    ("contents", 5, "InferTensorContents"),
)

_MESSAGES: dict[str, tuple[tuple[str, int, str], ...]] = {
    "ServerLiveRequest": (),
    "ServerLiveResponse": (("live", 1, "bool"),),
    "ServerReadyRequest": (),
    "ServerReadyResponse": (("ready", 1, "bool"),),
    "ModelReadyRequest": (("name", 1, "string"), ("version", 2, "string")),
    "ModelReadyResponse": (("ready", 1, "bool"),),
    "ServerMetadataRequest": (),
    "ServerMetadataResponse": (
        ("name", 1, "string"),
        ("version", 2, "string"),
        ("extensions", 3, "repeated string"),
    ),
    "ModelMetadataRequest": (("name", 1, "string"), ("version", 2, "string")),
    "ModelMetadataResponse.TensorMetadata": (
        ("name", 1, "string"),
        ("datatype", 2, "string"),
        ("shape", 3, "repeated int64"),
    ),
    "ModelMetadataResponse": (
        ("name", 1, "string"),
        ("versions", 2, "repeated string"),
        ("platform", 3, "string"),
        ("inputs", 4, "repeated ModelMetadataResponse.TensorMetadata"),
        ("outputs", 5, "repeated ModelMetadataResponse.TensorMetadata"),
    ),
    "ModelInferRequest.InferInputTensor": _TENSOR_FIELDS,
    "ModelInferRequest.InferRequestedOutputTensor": (
        ("name", 1, "string"),
        ("parameters", 2, "map<string, InferParameter>"),
    ),
    "ModelInferRequest": (
        ("model_name", 1, "string"),
        ("model_version", 2, "string"),
        ("id", 3, "string"),
        ("parameters", 4, "map<string, InferParameter>"),
        ("inputs", 5, "repeated ModelInferRequest.InferInputTensor"),
        ("outputs", 6, "repeated ModelInferRequest.InferRequestedOutputTensor"),
        ("raw_input_contents", 7, "repeated bytes"),
    ),
    "ModelInferResponse.InferOutputTensor": _TENSOR_FIELDS,
    "ModelInferResponse": (
        ("model_name", 1, "string"),
        ("model_version", 2, "string"),
        ("id", 3, "string"),
        ("parameters", 4, "map<string, InferParameter>"),
        ("outputs", 5, "repeated ModelInferResponse.InferOutputTensor"),
        ("raw_output_contents", 6, "repeated bytes"),
    ),
    "InferParameter": (
        ("bool_param", 1, "bool"),
        ("int64_param", 2, "int64"),
        ("string_param", 3, "string"),
        ("double_param", 4, "double"),
        ("uint64_param", 5, "uint64"),
    ),
    "InferTensorContents": (
        ("bool_contents", 1, "repeated bool"),
        ("int_contents", 2, "repeated int32"),
        ("int64_contents", 3, "repeated int64"),
        ("uint_contents", 4, "repeated uint32"),
        ("uint64_contents", 5, "repeated uint64"),
        ("fp32_contents", 6, "repeated float"),
        ("fp64_contents", 7, "repeated double"),
        ("bytes_contents", 8, "repeated bytes"),
    ),
}
"""Every message, nested ones as `Outer.Inner`."""

_ONEOF = {"InferParameter": "parameter_choice"}
"""Messages whose fields are all one `oneof`, and its name."""

METHODS = (
    ("ServerLive", "ServerLiveRequest", "ServerLiveResponse"),
    ("ServerReady", "ServerReadyRequest", "ServerReadyResponse"),
    ("ModelReady", "ModelReadyRequest", "ModelReadyResponse"),
    ("ServerMetadata", "ServerMetadataRequest", "ServerMetadataResponse"),
    ("ModelMetadata", "ModelMetadataRequest", "ModelMetadataResponse"),
    ("ModelInfer", "ModelInferRequest", "ModelInferResponse"),
)
"""(method, request message, response message) of the service, as the protocol names them."""

_SCALARS = {
    "double": 1,
    "float": 2,
    "int64": 3,
    "uint64": 4,
    "int32": 5,
    "bool": 8,
    "string": 9,
    "bytes": 12,
    "uint32": 13,
}
"""Scalar type names and their `FieldDescriptorProto.Type` numbers."""


def _add_field(message: Any, name: str, number: int, spec: str, owner: str) -> None:
    from google.protobuf import descriptor_pb2 as pb

    field = message.field.add(name=name, number=number, json_name=_camel(name))
    field.label = pb.FieldDescriptorProto.LABEL_OPTIONAL
    if spec.startswith("map<string, "):
        value = spec[len("map<string, ") : -1]
        entry = message.nested_type.add(name=_camel(name, upper=True) + "Entry")
        entry.options.map_entry = True
        _add_field(entry, "key", 1, "string", owner)
        _add_field(entry, "value", 2, value, owner)
        field.label = pb.FieldDescriptorProto.LABEL_REPEATED
        field.type = pb.FieldDescriptorProto.TYPE_MESSAGE
        field.type_name = f".{PACKAGE}.{owner}.{entry.name}"
        return
    if spec.startswith("repeated "):
        field.label = pb.FieldDescriptorProto.LABEL_REPEATED
        spec = spec[len("repeated ") :]
    if spec in _SCALARS:
        field.type = _SCALARS[spec]
    else:
        field.type = pb.FieldDescriptorProto.TYPE_MESSAGE
        field.type_name = f".{PACKAGE}.{spec}"


def _camel(name: str, *, upper: bool = False) -> str:
    head, *rest = name.split("_")
    text = head + "".join(part.title() for part in rest)
    return text[:1].upper() + text[1:] if upper else text


def file_descriptor() -> Any:
    """The protocol's messages and service as one `FileDescriptorProto`."""
    from google.protobuf import descriptor_pb2 as pb

    proto = pb.FileDescriptorProto(name="loopml_inference.proto", package=PACKAGE, syntax="proto3")
    made: dict[str, Any] = {}
    for full_name in sorted(_MESSAGES, key=lambda name: name.count(".")):  # outer ones first
        outer, _, inner = full_name.rpartition(".")
        parent = made[outer].nested_type if outer else proto.message_type
        made[full_name] = parent.add(name=inner)
    for full_name, fields in _MESSAGES.items():
        message = made[full_name]
        for name, number, spec in fields:
            _add_field(message, name, number, spec, full_name)
        if full_name in _ONEOF:
            message.oneof_decl.add(name=_ONEOF[full_name])
            for field in message.field:
                field.oneof_index = 0
    service = proto.service.add(name=SERVICE)
    for method, request, response in METHODS:
        service.method.add(
            name=method, input_type=f".{PACKAGE}.{request}", output_type=f".{PACKAGE}.{response}"
        )
    return proto


@cache
def messages() -> dict[str, Any]:
    """Every message class by its name (`ModelInferRequest`, `InferParameter`, ...)."""
    from google.protobuf import descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()  # its own pool: no clash with a client's classes
    found = pool.AddSerializedFile(file_descriptor().SerializeToString())
    return {
        name: message_factory.GetMessageClass(found.message_types_by_name[name])
        for name in _MESSAGES
        if "." not in name
    }
