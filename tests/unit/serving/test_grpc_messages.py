"""The gRPC messages loopml builds at run time are the protocol's wire format: every field of
every message has the number, type and cardinality that a client's own generated classes (NVIDIA
`tritonclient`'s) give it, so each side reads what the other writes."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("grpc", reason="the V2 gRPC service needs loopml[grpc]")


def _fields(descriptor: Any) -> dict[str, tuple[Any, ...]]:
    return {
        field.name: (
            field.number,
            field.type,
            field.is_repeated if hasattr(field, "is_repeated") else field.label,
            field.message_type.full_name if field.message_type else None,
        )
        for field in descriptor.fields
    }


def _same(ours: Any, theirs: Any, path: str) -> list[str]:
    problems = []
    mine, client = _fields(ours), _fields(theirs)
    for name, spec in mine.items():
        if client.get(name) != spec:
            problems.append(f"{path}.{name}: ours {spec}, the client's {client.get(name)}")
    for nested in ours.nested_types:
        problems += _same(nested, theirs.nested_types_by_name[nested.name], f"{path}.{nested.name}")
    return problems


def test_every_message_matches_the_clients_field_for_field() -> None:
    from tritonclient.grpc import service_pb2

    from loopml.serving.grpc_messages import METHODS, messages

    ours = messages()
    theirs = service_pb2.DESCRIPTOR.message_types_by_name
    problems = [p for name, cls in ours.items() for p in _same(cls.DESCRIPTOR, theirs[name], name)]
    assert problems == []
    assert {name for _, request, response in METHODS for name in (request, response)} <= set(ours)
    service = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    for method, request, response in METHODS:
        theirs_method = service.methods_by_name[method]
        assert theirs_method.input_type.name == request
        assert theirs_method.output_type.name == response


def test_a_request_written_by_the_client_reads_back_in_our_classes() -> None:
    import numpy as np
    from tritonclient.grpc import service_pb2

    from loopml.serving.grpc_messages import messages

    sent = service_pb2.ModelInferRequest(model_name="churn", model_version="3", id="c-1")
    sent.parameters["event_time"].int64_param = 1_767_225_600
    tensor = sent.inputs.add(name="x", datatype="FP32", shape=[2, 3])
    tensor.contents.fp32_contents.extend([1, 2, 3, 4, 5, 6])
    sent.outputs.add(name="probabilities").parameters["binary_data"].bool_param = True
    sent.raw_input_contents.append(np.arange(6, dtype="<f4").tobytes())

    read = messages()["ModelInferRequest"].FromString(sent.SerializeToString())
    assert (read.model_name, read.model_version, read.id) == ("churn", "3", "c-1")
    assert read.parameters["event_time"].WhichOneof("parameter_choice") == "int64_param"
    assert list(read.inputs[0].shape) == [2, 3]
    assert list(read.inputs[0].contents.fp32_contents) == [1, 2, 3, 4, 5, 6]
    assert read.outputs[0].parameters["binary_data"].bool_param
    assert read.raw_input_contents[0] == np.arange(6, dtype="<f4").tobytes()
    assert read.SerializeToString() == sent.SerializeToString()
