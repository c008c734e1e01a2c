"""The model server's public surface as outsiders see it: a V2 client written by someone else
(NVIDIA's `tritonclient`), and the OpenAPI document fuzzed by schemathesis (no input gets a 5xx).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from served import ServerProcess, logged_rows, register_churn, serving, settings_in

from loopml.testing.fuzz import fuzz_openapi


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    settings = settings_in(tmp_path_factory.mktemp("protocol") / "ws")
    register_churn(settings, with_plan=True)
    with serving(settings, "churn") as running:
        yield running


def test_a_third_party_v2_client_can_infer(server: ServerProcess) -> None:
    import tritonclient.http as v2

    client = v2.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("churn")
        metadata = client.get_model_metadata("churn")
        assert {i["name"]: i["datatype"] for i in metadata["inputs"]} == {
            "tenure": "FP64",
            "monthly": "FP64",
            "plan": "BYTES",
        }
        columns = {
            "tenure": np.array([3.0, 60.0]),
            "monthly": np.array([29.5, 80.0]),
            "plan": np.array([b"basic", b"pro"], dtype=object),
        }
        inputs = []
        for name, values in columns.items():
            tensor = v2.InferInput(name, list(values.shape), "BYTES" if name == "plan" else "FP64")
            tensor.set_data_from_numpy(values, binary_data=False)
            inputs.append(tensor)
        wanted = [
            v2.InferRequestedOutput("prediction", binary_data=False),
            v2.InferRequestedOutput("probabilities", binary_data=False),
        ]
        result = client.infer("churn", inputs, outputs=wanted, request_id="tc-1")
        assert result.as_numpy("prediction").tolist() == [1, 0]
        probabilities = result.as_numpy("probabilities")
        assert probabilities.shape == (2, 2)
        assert np.allclose(probabilities.sum(axis=1), 1.0)
        assert result.get_response()["id"] == "tc-1"  # the client's id, echoed
        server_ids = result.get_response()["parameters"]["request_ids"]  # the server's, per row
        assert len(set(server_ids)) == 2
        assert "tc-1" not in server_ids
        with pytest.raises(Exception, match="no output 'score'"):
            client.infer("churn", inputs, outputs=[v2.InferRequestedOutput("score", False)])
    finally:
        client.close()


def test_tritonclient_with_its_defaults_sends_and_reads_binary_tensors(
    server: ServerProcess,
) -> None:
    """tritonclient sends inputs as binary data and asks for every output as binary data
    unless told otherwise; the rows are logged like any other."""
    import tritonclient.http as v2

    client = v2.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
        inputs = []
        for name, values in (("tenure", np.array([3.0, 60.0, 12.0])),
                             ("monthly", np.array([29.5, 80.0, 45.0])),
                             ("plan", np.array([b"basic", b"pro", "família".encode()],
                                               dtype=object))):  # fmt: skip
            tensor = v2.InferInput(name, list(values.shape), "BYTES" if name == "plan" else "FP64")
            tensor.set_data_from_numpy(values)  # binary_data=True, the default
            inputs.append(tensor)
        result = client.infer("churn", inputs, request_id="tc-binary")
        assert result.as_numpy("prediction").tolist() == [1, 0, 1]
        probabilities = result.as_numpy("probabilities")
        assert probabilities.shape == (3, 2)
        assert np.allclose(probabilities.sum(axis=1), 1.0)
        outputs = result.get_response()["outputs"]
        assert all("binary_data_size" in o["parameters"] for o in outputs)
        ids = result.get_response()["parameters"]["request_ids"]

        only = client.infer("churn", inputs, outputs=[v2.InferRequestedOutput("probabilities")])
        assert only.as_numpy("prediction") is None
        assert np.allclose(only.as_numpy("probabilities"), probabilities)
    finally:
        client.close()
    rows = logged_rows(server, "tc-binary", 3)
    assert sorted(rows["request_id"].to_pylist()) == sorted(ids)
    assert sorted(rows["input.plan"].to_pylist()) == ["basic", "família", "pro"]


def test_binary_requests_whose_sizes_disagree_are_refused_and_nothing_islogged_rows(
    server: ServerProcess,
) -> None:
    import httpx
    import orjson

    def infer(
        declared: int, extra: bytes = b"", header: str | None = None, tenure: float = 3.0
    ) -> httpx.Response:
        request = {
            "id": "tc-bad",
            "inputs": [
                {"name": "tenure", "shape": [1], "datatype": "FP64",
                 "parameters": {"binary_data_size": declared}},
                {"name": "monthly", "shape": [1], "datatype": "FP64", "data": [29.5]},
                {"name": "plan", "shape": [1], "datatype": "BYTES", "data": ["basic"]},
            ],
        }  # fmt: skip
        json_part = orjson.dumps(request)
        return httpx.post(
            f"{server.url}/v2/models/churn/infer",
            content=json_part + np.array([tenure], "<f8").tobytes() + extra,
            headers={"Inference-Header-Content-Length": header or str(len(json_part))},
        )

    for answer, message in (
        (infer(16), "declares 16 bytes of binary data, but the body holds 8 more"),
        (infer(8, b"\x00" * 4), "holds 4 bytes after the JSON"),
        (infer(8, header="12abc"), "not a length in bytes"),
        (infer(8, header="100000"), "but the body has"),
    ):
        assert answer.status_code == 400, answer.text
        assert message in answer.json()["error"]
    poison = infer(8, tenure=float("inf"))
    assert poison.status_code == 422, poison.text
    assert "inf, not a finite number" in poison.json()["error"]
    good = infer(8)
    assert good.status_code == 200, good.text
    assert good.json()["outputs"][0]["data"] == [1]  # no binary output asked for: JSON
    time.sleep(1.5)  # a flush, for anything refused that would have been logged
    assert logged_rows(server, "tc-bad", 1).num_rows == 1  # the good request, not the refused


def test_no_generated_request_gets_a_server_error(server: ServerProcess, tmp_path: Path) -> None:
    """schemathesis's coverage and fuzzing phases over every operation of the server's own
    OpenAPI document; model-name paths use the served model, so requests reach the model
    rather than stopping at a 404."""
    done = fuzz_openapi(
        f"{server.url}/openapi.json",
        tmp_path,
        parameters={"name": "churn", "version": "1"},
        max_examples=60,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout


def test_the_fuzzed_server_still_serves(server: ServerProcess) -> None:
    import httpx

    row = {"tenure": 3.0, "monthly": 29.5, "plan": "basic"}
    answer = httpx.post(f"{server.url}/predict", json={"rows": [row]})
    assert answer.status_code == 200
    assert answer.json()["predictions"] == [1]


def test_a_health_monitor_reads_readiness_errors_and_latency_from_the_server(
    server: ServerProcess,
) -> None:
    import httpx

    from loopml.bootstrap import open_workspace
    from loopml.monitoring import monitors

    row = {"tenure": 3.0, "monthly": 29.5, "plan": "basic"}
    ws = open_workspace(server.settings)
    try:
        monitors.create("health", deployment="churn", probe=server.url, workspace=ws)
        first = monitors.run("health", workspace=ws).document
        assert first["down"] == 0
        for _ in range(6):
            httpx.post(f"{server.url}/predict", json={"rows": [row]})
        for _ in range(2):
            httpx.post(f"{server.url}/predict", json={"rows": [{"tenure": 1}]})  # a 422
        time.sleep(1.5)  # the log's flush interval
        second = monitors.run("health", workspace=ws).document
        assert second["error_rate"] == pytest.approx(2 / 8)
        assert second["rows"] >= 6
        assert second["p99_latency_ms"] > 0
    finally:
        ws.close()
