"""An ONNX classifier through the whole loop: registered with its graph's tensor signature,
served by `loopml serve` (/predict, V2 JSON, V2 binary from tritonclient with its defaults,
/explain), its predictions logged, and a monitor run over them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from served import ServerProcess, free_port, serving, settings_in

from loopml.bootstrap import open_workspace, prediction_log_reader
from loopml.monitoring import monitors

pytest.importorskip("skl2onnx")

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@dataclass
class Served:
    server: ServerProcess
    model: Any
    """The scikit-learn model the ONNX file was exported from."""
    features: pd.DataFrame
    grpc: str
    """host:port of the V2 gRPC service."""


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    home = tmp_path_factory.mktemp("onnx") / "ws"
    settings = settings_in(home)
    features, labels = load_iris(return_X_y=True, as_frame=True)
    features.columns = FEATURES
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    proto = convert_sklearn(
        model, initial_types=[("float_input", FloatTensorType([None, 4]))], name="iris"
    )  # with ZipMap: the probabilities come as one dict per row
    ws = open_workspace(settings)
    home.mkdir(parents=True, exist_ok=True)
    features.assign(species=labels).to_parquet(home / "iris.parquet")
    data = ws.data.add(home / "iris.parquet", name="iris", project="default").version
    with ws.tracking.start_run(project="default", name="export") as run:
        run.use_dataset(data)
        ws.registry.register(
            proto, "iris", project="default", run_id=run.id, input_example=features.head(3)
        )
    ws.close()
    port = free_port()
    with serving(settings, "iris", "--grpc-port", str(port)) as running:
        yield Served(running, model, features, f"127.0.0.1:{port}")


def test_registration_records_the_graphs_tensors(iris: Served) -> None:
    ws = open_workspace(iris.server.settings)
    try:
        version = ws.registry.resolve("iris", "default")
    finally:
        ws.close()
    assert version.flavor == "onnx"
    assert [(c["name"], c["type"]) for c in version.signature["inputs"]] == [
        (name, "float") for name in FEATURES
    ]
    assert version.signature["tensors"]["inputs"] == [
        {"name": "float_input", "dtype": "float32", "shape": [None, 4]}
    ]


def test_v2_metadata_reports_the_real_datatypes_and_shapes(iris: Served) -> None:
    metadata = httpx.get(f"{iris.server.url}/v2/models/iris").json()
    assert metadata["platform"] == "loopml-onnx"
    assert metadata["inputs"] == [{"name": "float_input", "datatype": "FP32", "shape": [-1, 4]}]
    assert metadata["outputs"] == [
        {"name": "prediction", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
    ]


def test_predict_answers_what_the_source_model_answers(iris: Served) -> None:
    rows = iris.features.iloc[[0, 60, 120]]
    response = httpx.post(
        f"{iris.server.url}/predict",
        json={"rows": rows.to_dict("records"), "probabilities": True},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["predictions"] == iris.model.predict(rows).tolist()
    np.testing.assert_allclose(body["probabilities"], iris.model.predict_proba(rows), atol=1e-5)


def test_v2_json_takes_the_graphs_own_input_tensor(iris: Served) -> None:
    rows = iris.features.iloc[[5, 75]]
    body = {
        "id": "onnx-json",
        "inputs": [
            {
                "name": "float_input",
                "shape": [2, 4],
                "datatype": "FP32",
                "data": rows.to_numpy().tolist(),
            }
        ],
    }
    response = httpx.post(f"{iris.server.url}/v2/models/iris/infer", json=body)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["prediction"]["data"] == iris.model.predict(rows).tolist()
    assert outputs["probabilities"]["datatype"] == "FP32"
    assert outputs["probabilities"]["shape"] == [2, 3]
    np.testing.assert_allclose(
        np.reshape(outputs["probabilities"]["data"], (2, 3)),
        iris.model.predict_proba(rows),
        atol=1e-5,
    )


def test_tritonclient_with_its_defaults_infers_from_the_metadata(iris: Served) -> None:
    """A client that reads the metadata sends the tensor it names, in binary (the default)."""
    import tritonclient.http as v2

    client = v2.InferenceServerClient(url=iris.server.url.removeprefix("http://"))
    try:
        (spec,) = client.get_model_metadata("iris")["inputs"]
        rows = iris.features.to_numpy(dtype=np.float32)
        tensor = v2.InferInput(spec["name"], list(rows.shape), spec["datatype"])
        tensor.set_data_from_numpy(rows)
        result = client.infer("iris", [tensor], request_id="onnx-binary")
        assert all("binary_data_size" in o["parameters"] for o in result.get_response()["outputs"])
        assert result.as_numpy("prediction").tolist() == iris.model.predict(iris.features).tolist()
        probabilities = result.as_numpy("probabilities")
        assert probabilities.dtype == np.float32
        np.testing.assert_allclose(
            probabilities, iris.model.predict_proba(iris.features), atol=1e-5
        )
    finally:
        client.close()


def test_tritonclient_grpc_with_its_defaults_infers_from_the_metadata(iris: Served) -> None:
    """Over gRPC: the metadata names the graph's FP32 tensor, and the raw bytes sent for it
    are answered with the graph's own output types."""
    import tritonclient.grpc as v2

    client = v2.InferenceServerClient(url=iris.grpc)
    try:
        (spec,) = client.get_model_metadata("iris", as_json=True)["inputs"]
        assert (spec["datatype"], spec["shape"]) == ("FP32", ["-1", "4"])
        rows = iris.features.to_numpy(dtype=np.float32)
        tensor = v2.InferInput(spec["name"], list(rows.shape), spec["datatype"])
        tensor.set_data_from_numpy(rows)
        result = client.infer("iris", [tensor], request_id="onnx-grpc")
    finally:
        client.close()
    assert result.as_numpy("prediction").tolist() == iris.model.predict(iris.features).tolist()
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities, iris.model.predict_proba(iris.features), atol=1e-5)


def test_explain_uses_occlusion_against_the_training_profile(iris: Served) -> None:
    rows = iris.features.iloc[[10, 70, 140]]
    response = httpx.post(f"{iris.server.url}/explain", json={"rows": rows.to_dict("records")})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["method"] == "occlusion"
    assert answer["reference"]["source"] == "training profile"
    reference = answer["reference"]["values"]
    predicted = iris.model.predict_proba(rows).argmax(axis=1)
    for feature in FEATURES:
        occluded = rows.assign(**{feature: reference[feature]})
        expected = (
            iris.model.predict_proba(rows)[np.arange(3), predicted]
            - iris.model.predict_proba(occluded)[np.arange(3), predicted]
        )
        got = [row[feature] for row in answer["explanations"]]
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_served_rows_are_logged_and_a_monitor_reports_on_every_input(iris: Served) -> None:
    import tritonclient.http as v2

    client = v2.InferenceServerClient(url=iris.server.url.removeprefix("http://"))
    try:
        rows = iris.features.to_numpy(dtype=np.float32)
        tensor = v2.InferInput("float_input", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows)
        client.infer("iris", [tensor], request_id="onnx-monitor")
    finally:
        client.close()
    logged = _logged(iris.server, "onnx-monitor", 150)
    assert logged.num_rows == 150
    np.testing.assert_allclose(
        sorted(logged["input.petal_length"].to_pylist()),
        sorted(iris.features["petal_length"].astype(np.float32).tolist()),
        atol=1e-6,
    )
    ws = open_workspace(iris.server.settings)
    try:
        monitors.create("iris-drift", deployment="iris", reference="iris", workspace=ws)
        result = monitors.run("iris-drift", workspace=ws)
    finally:
        ws.close()
    assert result.run.rows >= 150
    report = result.report
    assert report is not None
    assert set(FEATURES) <= set(report.features)
    for feature in FEATURES:
        assert report.features[feature].current_rows >= 150
        assert report.features[feature].p_value is not None


def _logged(server: ServerProcess, client_id: str, rows: int) -> Any:
    """The logged rows of `client_id`, once `rows` of them are there (the log flushes every
    second) or ten seconds have passed."""
    import pyarrow.compute as pc

    deadline = time.monotonic() + 10
    while True:
        logged = prediction_log_reader(server.settings).read("iris", with_feedback=False)
        found = logged.filter(pc.equal(logged["client_id"], client_id))
        if found.num_rows >= rows or time.monotonic() > deadline:
            return found
        time.sleep(0.2)
