"""The V2 gRPC service as clients call it: NVIDIA's `tritonclient.grpc` with its defaults (raw
tensor bytes), requests with typed contents, and requests that must be refused without a row
logged."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from served import ServerProcess, free_port, logged_rows, register_churn, serving, settings_in

pytest.importorskip("grpc", reason="the V2 gRPC service needs loopml[grpc]")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    settings = settings_in(tmp_path_factory.mktemp("grpc") / "ws")
    register_churn(settings, with_plan=True)
    port = free_port()
    with serving(settings, "churn", "--grpc-port", str(port)) as running:
        yield running, f"127.0.0.1:{port}"


def _columns(rows: int = 3) -> dict[str, np.ndarray]:
    tenure = np.array([3.0, 60.0, 12.0] * rows)[:rows]
    monthly = np.array([29.5, 80.0, 45.0] * rows)[:rows]
    plan = np.array([b"basic", b"pro", "família".encode()] * rows, dtype=object)[:rows]
    return {"tenure": tenure, "monthly": monthly, "plan": plan}


def test_tritonclient_grpc_with_its_defaults_infers_and_the_rows_arelogged_rows(
    server: tuple[ServerProcess, str],
) -> None:
    import tritonclient.grpc as v2

    process, address = server
    client = v2.InferenceServerClient(url=address)
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("churn")
        assert not client.is_model_ready("churn", "99")
        assert "binary_tensor_data" in client.get_server_metadata().extensions
        metadata = client.get_model_metadata("churn", as_json=True)
        assert {i["name"]: i["datatype"] for i in metadata["inputs"]} == {
            "tenure": "FP64",
            "monthly": "FP64",
            "plan": "BYTES",
        }
        assert "probabilities" in {o["name"] for o in metadata["outputs"]}
        inputs = []
        for name, values in _columns().items():
            tensor = v2.InferInput(name, list(values.shape), "BYTES" if name == "plan" else "FP64")
            tensor.set_data_from_numpy(values)  # raw_input_contents, the client's only way
            inputs.append(tensor)
        result = client.infer("churn", inputs, request_id="grpc-1")
        assert result.as_numpy("prediction").tolist() == [1, 0, 1]
        probabilities = result.as_numpy("probabilities")
        assert probabilities.shape == (3, 2)
        assert np.allclose(probabilities.sum(axis=1), 1.0)
        response = result.get_response()
        assert response.id == "grpc-1"
        ids = response.parameters["request_ids"].string_param.split(",")
        assert len(set(ids)) == 3

        only = client.infer("churn", inputs, outputs=[v2.InferRequestedOutput("probabilities")])
        assert only.as_numpy("prediction") is None
        assert np.allclose(only.as_numpy("probabilities"), probabilities)
    finally:
        client.close()
    rows = logged_rows(process, "grpc-1", 3)
    assert sorted(rows["request_id"].to_pylist()) == sorted(ids)
    assert sorted(rows["input.plan"].to_pylist()) == ["basic", "família", "pro"]


def _call(address: str, request: Any) -> Any:
    """ModelInfer through the client library's own stub (its message classes, not ours)."""
    import grpc
    from tritonclient.grpc import service_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        return service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)


def _request(client_id: str, **tensors: tuple[str, dict[str, Any]]) -> Any:
    from tritonclient.grpc import service_pb2 as pb

    request = pb.ModelInferRequest(model_name="churn", id=client_id)
    for name, (datatype, contents) in tensors.items():
        request.inputs.add(
            name=name, datatype=datatype, shape=[1], contents=pb.InferTensorContents(**contents)
        )
    return request


def test_typed_contents_are_served_and_wrong_ones_refused_with_nothinglogged_rows(
    server: tuple[ServerProcess, str],
) -> None:
    import grpc

    process, address = server
    good = {
        "tenure": ("FP64", {"fp64_contents": [3.0]}),
        "monthly": ("FP64", {"fp64_contents": [29.5]}),
        "plan": ("BYTES", {"bytes_contents": [b"basic"]}),
    }
    answer = _call(address, _request("grpc-typed", **good))
    assert np.frombuffer(answer.raw_output_contents[0], "<i8").tolist() == [1]

    refused = [
        ({**good, "tenure": ("FP64", {"int64_contents": [3]})}, "holds its elements in "
         "contents.int64_contents. Send FP64 elements in contents.fp64_contents"),
        ({**good, "tenure": ("BYTES", {"bytes_contents": [b"3"]})}, "BYTES, which cannot feed"),
        ({**good, "tenure": ("FP64", {"fp64_contents": [float("inf")]})}, "not a finite number"),
        ({**good, "plan": ("BYTES", {"bytes_contents": [b"\xff\xfe"]})}, "not UTF-8"),
        ({**good, "tenure": ("FP16", {})}, "Send its bytes in raw_input_contents"),
        ({k: v for k, v in good.items() if k != "plan"}, "lacks the model inputs ['plan']"),
    ]  # fmt: skip
    for tensors, message in refused:
        with pytest.raises(grpc.RpcError) as caught:
            _call(address, _request("grpc-refused", **tensors))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
        assert message in caught.value.details()

    raw = _request("grpc-refused", **good)
    raw.raw_input_contents.append(np.array([3.0], "<f8").tobytes())  # one of three inputs
    with pytest.raises(grpc.RpcError, match="3 inputs but 1 raw_input_contents"):
        _call(address, raw)
    raw.raw_input_contents[0] = b"\x00" * 4  # three inputs, 4 bytes for an FP64
    for _ in range(2):
        raw.raw_input_contents.append(b"")
    with pytest.raises(grpc.RpcError, match="8 bytes\\) but 4 bytes"):
        _call(address, raw)

    elsewhere = _request("grpc-refused", **good)
    elsewhere.model_name = "nobody"
    with pytest.raises(grpc.RpcError) as caught:
        _call(address, elsewhere)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    time.sleep(1.5)  # a flush, for anything refused that would have been logged
    assert logged_rows(process, "grpc-typed", 1).num_rows == 1
    assert logged_rows(process, "grpc-refused", 1).num_rows == 0


def test_more_rows_than_served_at_once_are_refused_before_decoding(
    server: tuple[ServerProcess, str],
) -> None:
    import grpc
    from tritonclient.grpc import service_pb2 as pb

    _, address = server
    request = pb.ModelInferRequest(model_name="churn")
    for name in ("tenure", "monthly"):
        request.inputs.add(name=name, datatype="FP64", shape=[20_000])
        request.raw_input_contents.append(np.zeros(20_000, "<f8").tobytes())
    request.inputs.add(name="plan", datatype="BYTES", shape=[20_000])
    request.raw_input_contents.append(b"")
    with pytest.raises(grpc.RpcError) as caught:
        _call(address, request)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "at most 10000 are served" in caught.value.details()


@pytest.fixture(scope="module")
def numeric(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    settings = settings_in(tmp_path_factory.mktemp("grpc-numeric") / "ws")
    register_churn(settings)  # tenure and monthly: V2 rows batch as one matrix
    port = free_port()
    with serving(settings, "churn", "--grpc-port", str(port)) as running:
        yield running, f"127.0.0.1:{port}"


async def _send_json(client: Any, rid: str, matrix: Any) -> tuple[Any, Any]:
    tensor = {"name": "x", "shape": list(matrix.shape), "datatype": "FP64"}
    body = {"id": rid, "inputs": [{**tensor, "data": matrix.reshape(-1).tolist()}]}
    answer = await client.post("/v2/models/churn/infer", json=body)
    outputs = {o["name"]: np.array(o["data"], dtype=float) for o in answer.json()["outputs"]}
    return outputs["prediction"], outputs["probabilities"].reshape(-1, 2)


async def _send_binary(client: Any, rid: str, matrix: Any) -> tuple[Any, Any]:
    import orjson

    raw = matrix.astype("<f8").tobytes()
    tensor = {"name": "x", "shape": list(matrix.shape), "datatype": "FP64",
              "parameters": {"binary_data_size": len(raw)}}  # fmt: skip
    header = orjson.dumps(
        {"id": rid, "parameters": {"binary_data_output": True}, "inputs": [tensor]}
    )
    length = {"Inference-Header-Content-Length": str(len(header))}
    answer = await client.post("/v2/models/churn/infer", content=header + raw, headers=length)
    size = int(answer.headers["Inference-Header-Content-Length"])
    body, rest = orjson.loads(answer.content[:size]), answer.content[size:]
    first = body["outputs"][0]["parameters"]["binary_data_size"]
    return np.frombuffer(rest[:first], "<i8"), np.frombuffer(rest[first:], "<f8").reshape(-1, 2)


async def _send_grpc(channel: Any, rid: str, matrix: Any) -> tuple[Any, Any]:
    from tritonclient.grpc import service_pb2 as pb

    request = pb.ModelInferRequest(model_name="churn", id=rid)
    request.inputs.add(name="x", datatype="FP64", shape=list(matrix.shape))
    request.raw_input_contents.append(matrix.astype("<f8").tobytes())
    call = channel.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=pb.ModelInferRequest.SerializeToString,
        response_deserializer=pb.ModelInferResponse.FromString,
    )
    raw = (await call(request, timeout=20)).raw_output_contents
    return np.frombuffer(raw[0], "<i8"), np.frombuffer(raw[1], "<f8").reshape(-1, 2)


def test_concurrent_requests_share_model_calls_and_each_gets_its_own_rows(
    numeric: tuple[ServerProcess, str],
) -> None:
    """Requests over JSON, binary and gRPC at once, of 1 to 7 rows each: every answer holds
    the model's outputs for its own rows, in order, and the log keeps each request's rows
    under its own client id."""
    import asyncio

    import grpc
    import httpx
    import pandas as pd

    from loopml.bootstrap import open_workspace, prediction_log_reader

    process, address = numeric
    ws = open_workspace(process.settings)
    model = ws.registry.load("churn/1", project="default").raw
    ws.close()
    rng = np.random.default_rng(7)
    requests = []
    for index in range(48):
        rows = int(rng.integers(1, 8))
        matrix = np.column_stack([rng.integers(0, 72, rows), rng.normal(60, 15, rows)])
        requests.append((f"mix-{index}", ("json", "binary", "grpc")[index % 3], matrix))

    async def everything() -> list[Any]:
        async with (
            httpx.AsyncClient(base_url=process.url, timeout=20) as client,
            grpc.aio.insecure_channel(address) as channel,
        ):
            sent = {"json": _send_json, "binary": _send_binary}
            return await asyncio.gather(*(
                _send_grpc(channel, rid, m) if how == "grpc" else sent[how](client, rid, m)
                for rid, how, m in requests
            ))  # fmt: skip

    answers = asyncio.run(everything())
    for (rid, how, matrix), (predicted, probabilities) in zip(requests, answers, strict=True):
        frame = pd.DataFrame(matrix, columns=["tenure", "monthly"])
        assert predicted.tolist() == model.predict(frame).tolist(), (rid, how)
        assert np.allclose(probabilities, model.predict_proba(frame)), (rid, how)
    metrics = httpx.get(f"{process.url}/metrics").text
    batches = [line for line in metrics.splitlines() if line.startswith("loopml_batch_rows_count")]
    assert float(batches[0].split()[-1]) < len(requests)  # requests shared model calls

    time.sleep(1.5)
    logged = prediction_log_reader(process.settings).read("churn", with_feedback=False)
    by_client = logged.to_pandas().groupby("client_id")
    for rid, _, matrix in requests:
        rows = by_client.get_group(rid).sort_values("request_id")  # ids are made in row order
        assert np.array_equal(rows[["input.tenure", "input.monthly"]].to_numpy(), matrix)
