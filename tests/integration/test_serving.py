"""The model server in-process: predictions, validation, feedback, the V2 protocol, metrics,
the prediction log and live swaps when the alias moves."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from loopml.bootstrap import Workspace, open_workspace, prediction_log_reader, prediction_log_writer
from loopml.serving.app import create_app
from loopml.serving.host import ModelHost
from loopml.serving.log_sink import LogSink
from loopml.settings import Settings


def _frame(rows: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, rows),
            "plan": rng.choice(["basic", "plus", "pro"], rows),
            "monthly": rng.normal(60, 15, rows).round(2),
        }
    )
    return frame, (frame["tenure"] < 20).astype(int).to_numpy()


def _model(depth: int) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    encode = ColumnTransformer(
        [("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"])], remainder="passthrough"
    )
    frame, labels = _frame()
    model = Pipeline(
        [("encode", encode), ("gbm", HistGradientBoostingClassifier(max_depth=depth, max_iter=20))]
    )
    return model.fit(frame, labels)


@pytest.fixture
def served(
    make_settings: Callable[..., Settings],
) -> Iterator[tuple[Workspace, ModelHost, TestClient, LogSink]]:
    ws = open_workspace(make_settings())
    frame, _ = _frame()
    for depth in (2, 3):
        ws.registry.register(_model(depth), "churn", project="default", input_example=frame.head(3))
    ws.registry.set_alias("churn", "champion", 1, project="default")
    host = ModelHost(ws, "churn-prod", "churn@champion", poll_s=0.2)
    sink = LogSink(prediction_log_writer(ws.settings), prediction_log_reader(ws.settings))
    with TestClient(create_app({"churn-prod": host}, sink)) as client:
        yield ws, host, client, sink
    host.stop()
    sink.close()
    ws.close()


ROW = {"tenure": 3, "plan": "basic", "monthly": 29.5}


def test_predict_answers_with_version_and_request_ids(served: Any) -> None:
    _, _, client, _ = served
    response = client.post(
        "/predict", json={"rows": [ROW, {**ROW, "tenure": 60}], "probabilities": True}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["predictions"] == [1, 0]
    assert (body["model"], body["model_version"]) == ("churn", 1)
    assert len(set(body["request_ids"])) == 2
    assert len(body["probabilities"][0]) == 2
    split = client.post(
        "/predict", json={"columns": ["tenure", "plan", "monthly"], "data": [[3, "basic", 29.5]]}
    )
    assert split.json()["predictions"] == [1]


def test_a_split_body_in_any_column_order_is_served_and_logged_as_the_same_rows(
    served: Any,
) -> None:
    _, _, client, sink = served
    frame, _ = _frame(40, seed=3)
    records = client.post("/predict", json={"rows": frame.to_dict(orient="records")}).json()
    mixed = frame.assign(note="ignored")[["monthly", "note", "plan", "tenure"]]
    split = client.post("/predict", json=mixed.to_dict(orient="split", index=False)).json()
    assert split["predictions"] == records["predictions"]
    sink.flush()
    reader = sink.reader
    logged = [reader.get(rid) for rid in (records["request_ids"][5], split["request_ids"][5])]
    inputs = [{k: v for k, v in row.items() if k.startswith("input.")} for row in logged if row]
    assert len(inputs) == 2
    assert inputs[0] == inputs[1] == {f"input.{k}": v for k, v in frame.iloc[5].items()}


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"rows": [{"tenure": 3, "plan": "basic"}]}, 422, "Row 0 has no field 'monthly'"),
        (
            {"rows": [ROW, {**ROW, "tenure": "long"}]},
            422,
            "Row 1: field 'tenure' is 'long', a string; the model takes an integer.",
        ),
        ({"rows": []}, 422, "no rows"),
        ({"rows": "x"}, 422, "list of objects"),
        ({"columns": ["tenure"], "data": [[1, 2]]}, 422, "Row 0 of 'data'"),
        ({"columns": ["tenure", "plan"], "data": [[1, "pro"]]}, 422, "no field 'monthly'"),
        ({"rows": [ROW] * 10_001}, 413, "at most 10000"),
        ([1, 2], 422, "JSON object"),
    ],
    ids=[
        "missing-field",
        "wrong-type",
        "empty",
        "rows-not-list",
        "split-shape",
        "split-missing-field",
        "too-many-rows",
        "not-an-object",
    ],
)
def test_bad_requests_get_a_4xx_naming_the_problem(
    served: Any, body: Any, status: int, words: str
) -> None:
    _, _, client, _ = served
    response = client.post("/predict", json=body)
    assert response.status_code == status
    assert words in response.json()["error"]


def test_garbage_and_huge_bodies_are_refused_and_the_server_keeps_serving(served: Any) -> None:
    _, _, client, _ = served
    assert client.post("/predict", content=b"{not json").status_code == 400
    assert client.post("/predict", content=b"x" * (9 * 1024 * 1024)).status_code == 413
    assert client.post("/predict", json={"rows": [ROW]}).status_code == 200


def test_nulls_are_served_and_flagged_in_the_log(served: Any) -> None:
    ws, _, client, sink = served
    response = client.post("/predict", json={"rows": [{**ROW, "monthly": None}]})
    assert response.status_code == 200
    request_id = response.json()["request_ids"][0]
    sink.flush()
    record = prediction_log_reader(ws.settings).get(request_id)
    assert record is not None
    assert record["flags"] == "null:monthly"


def test_feedback_is_joined_to_its_prediction(served: Any) -> None:
    ws, _, client, sink = served
    ids = client.post("/predict", json={"rows": [ROW, ROW]}).json()["request_ids"]
    answer = client.post("/feedback", json=[{"request_id": ids[0], "label": 0}])
    assert answer.json() == {"accepted": 1}
    assert client.post("/feedback", json={"label": 1}).status_code == 422
    sink.flush()
    table = prediction_log_reader(ws.settings).read("churn-prod")
    labels = dict(
        zip(table["request_id"].to_pylist(), table["label_json"].to_pylist(), strict=True)
    )
    assert labels == {ids[0]: "0", ids[1]: None}


def test_the_v2_protocol(served: Any) -> None:
    _, _, client, _ = served
    assert client.get("/v2").json()["name"] == "loopml"
    assert client.get("/v2/health/ready").status_code == 200
    meta = client.get("/v2/models/churn-prod").json()
    assert [i["name"] for i in meta["inputs"]] == ["tenure", "plan", "monthly"]
    assert client.get("/v2/models/churn-prod/versions/1/ready").status_code == 200
    assert client.get("/v2/models/churn-prod/versions/7/ready").status_code == 404
    body = {
        "id": "r1",
        "inputs": [
            {"name": "tenure", "shape": [2], "datatype": "INT64", "data": [3, 60]},
            {"name": "plan", "shape": [2], "datatype": "BYTES", "data": ["basic", "pro"]},
            {"name": "monthly", "shape": [2], "datatype": "FP64", "data": [29.5, 80.0]},
        ],
    }
    response = client.post("/v2/models/churn-prod/infer", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["model_name"], result["model_version"], result["id"]) == ("churn", "1", "r1")
    assert [o["name"] for o in result["outputs"]] == ["prediction", "probabilities"]
    assert result["outputs"][0]["data"] == [1, 0]
    assert result["outputs"][1]["shape"] == [2, 2]
    assert [o["name"] for o in meta["outputs"]] == ["prediction", "probabilities"]
    only = client.post(
        "/v2/models/churn-prod/infer", json={**body, "outputs": [{"name": "probabilities"}]}
    ).json()
    assert [o["name"] for o in only["outputs"]] == ["probabilities"]
    unknown = client.post(
        "/v2/models/churn-prod/infer", json={**body, "outputs": [{"name": "score"}]}
    )
    assert unknown.status_code == 400
    assert "prediction, probabilities" in unknown.json()["error"]
    wrong = {
        "inputs": [
            {**body["inputs"][0], "datatype": "BYTES", "data": ["a", "b"]},
            *body["inputs"][1:],
        ]
    }
    refused = client.post("/v2/models/churn-prod/infer", json=wrong)
    assert refused.status_code == 400
    assert "tenure" in refused.json()["error"]
    assert client.post("/v2/models/nope/infer", json=body).status_code == 404


JAN_1_S = 1_767_225_600  # 2026-01-01T00:00:00Z


def test_event_times_are_logged_beside_the_serving_time_on_predict_and_v2(served: Any) -> None:
    ws, _, client, sink = served
    whole = client.post("/predict", json={"rows": [ROW, ROW], "event_time": "2026-01-01T00:00:00Z"})
    per_row = client.post(
        "/predict",
        json={
            "columns": ["tenure", "plan", "monthly"],
            "data": [[3, "basic", 29.5], [60, "pro", 80.0]],
            "event_times": [JAN_1_S + 0.5, "2026-01-02T01:00:00+01:00"],
        },
    )
    untimed = client.post("/predict", json={"rows": [ROW]})
    tensors = [
        {"name": "tenure", "shape": [2], "datatype": "INT64", "data": [3, 60]},
        {"name": "plan", "shape": [2], "datatype": "BYTES", "data": ["basic", "pro"]},
        {"name": "monthly", "shape": [2], "datatype": "FP64", "data": [29.5, 80.0]},
    ]
    v2_whole = client.post(
        "/v2/models/churn-prod/infer",
        json={"inputs": tensors, "parameters": {"event_time": JAN_1_S + 3 * 86_400}},
    )
    v2_rows = client.post(
        "/v2/models/churn-prod/infer",
        json={"inputs": tensors, "parameters": {"event_times": [JAN_1_S, JAN_1_S + 60]}},
    )
    answers = [whole, per_row, untimed, v2_whole, v2_rows]
    assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
    ids = [
        *whole.json()["request_ids"],
        *per_row.json()["request_ids"],
        *untimed.json()["request_ids"],
        *v2_whole.json()["parameters"]["request_ids"],
        *v2_rows.json()["parameters"]["request_ids"],
    ]
    sink.flush()
    reader = prediction_log_reader(ws.settings)
    found = [reader.get(request_id) for request_id in ids]
    day_us = 86_400_000_000
    jan_1 = JAN_1_S * 1_000_000
    expected = [jan_1, jan_1, jan_1 + 500_000, jan_1 + day_us, None]
    expected += [jan_1 + 3 * day_us] * 2 + [jan_1, jan_1 + 60_000_000]
    assert [row["event_time_us"] for row in found] == expected  # type: ignore[index]
    assert all(row["time_us"] > jan_1 + 3 * day_us for row in found)  # type: ignore[index]
    january = reader.read("churn-prod", since_us=jan_1, until_us=jan_1 + 2 * day_us)
    assert sorted(january["request_id"].to_pylist()) == sorted([*ids[:4], *ids[7:]])


def test_metrics_in_prometheus_format(served: Any) -> None:
    _, _, client, _ = served
    client.post("/predict", json={"rows": [ROW]})
    client.post("/predict", json={"rows": []})
    text = client.get("/metrics").text
    assert 'loopml_requests_total{endpoint="predict",status="200"} 1.0' in text
    assert 'loopml_requests_total{endpoint="predict",status="422"} 1.0' in text
    assert 'loopml_model_version{deployment="churn-prod",model="churn"} 1.0' in text
    assert "loopml_prediction_log_queue_rows" in text


def test_moving_the_alias_swaps_live_without_a_failed_request(served: Any) -> None:
    ws, host, client, _ = served
    host.start()
    failures: list[str] = []
    versions: set[int] = set()
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            response = client.post("/predict", json={"rows": [ROW]})
            if response.status_code != 200:
                failures.append(response.text)
            else:
                versions.add(response.json()["model_version"])

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    for target in (2, 1, 2):
        ws.registry.set_alias("churn", "champion", target, project="default")
        deadline = threading.Event()
        for _ in range(50):
            if host.current.version.version == target:
                break
            deadline.wait(0.1)
        assert host.current.version.version == target
    stop.set()
    for worker in workers:
        worker.join()
    assert failures == []
    assert versions == {1, 2}
    assert host.swaps == 3


def test_one_bad_request_in_a_batch_does_not_fail_the_others(served: Any) -> None:
    from loopml.serving.batching import Job
    from loopml.serving.frames import RequestError

    _, host, client, _ = served
    server = client.app.state.server
    good = [ROW, {**ROW, "tenure": 61}]
    bad = [ROW, {**ROW, "monthly": "a lot"}]
    results = server.run_batch(
        host,
        [
            Job(good, False, None),
            Job(bad, False, None),  # type: ignore[arg-type]
            Job([ROW], True, None),
        ],
    )  # type: ignore[arg-type]
    assert results[0]["predictions"] == [1, 0]
    assert isinstance(results[1], RequestError)
    assert results[1].message == (
        "Row 1: field 'monthly' is 'a lot', a string; the model takes a number. "
        "Send a number (null for a missing value)."
    )
    assert results[2]["predictions"] == [1]
    assert len(results[2]["probabilities"]) == 1


def test_concurrent_requests_share_model_calls(served: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    _, _, client, _ = served
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(
            pool.map(lambda _: client.post("/predict", json={"rows": [ROW]}), range(200))
        )
    assert {a.status_code for a in answers} == {200}
    batcher = client.app.state.server.batcher(next(iter(client.app.state.server.hosts.values())))
    assert batcher.jobs == 200
    assert batcher.batches < 200  # some requests were answered together


def test_a_numeric_model_takes_arrays_with_the_same_answers(
    make_settings: Callable[..., Settings],
) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    ws = open_workspace(make_settings())
    frame, labels = _frame()
    numeric = frame[["tenure", "monthly"]]
    model = HistGradientBoostingClassifier(max_iter=20).fit(numeric, labels)
    ws.registry.register(model, "numeric", project="default", input_example=numeric.head(3))
    host = ModelHost(ws, "numeric", "numeric")
    assert host.current.array_input
    with TestClient(create_app({"numeric": host})) as client:
        rows = numeric.head(50).to_dict("records")
        answer = client.post("/predict", json={"rows": rows}).json()
    assert answer["predictions"] == model.predict(numeric.head(50)).tolist()
    ws.close()


def test_the_openapi_document_lists_every_route(served: Any) -> None:
    _, _, client, _ = served
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    app_paths = {route.path for route in client.app.routes}
    assert app_paths - {"/openapi.json"} == set(document["paths"])
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    row = body["schema"]["oneOf"][0]["properties"]["rows"]["items"]
    assert row["required"] == ["tenure", "plan", "monthly"]  # the served model's signature
    assert row["properties"]["plan"]["type"] == ["string", "null"]


def test_shadow_sees_every_request_and_canary_answers_its_share(served: Any) -> None:
    from loopml.serving.host import DeploymentHosts

    ws, _, _, sink = served
    primary = ModelHost(ws, "split", "churn/1")
    shadow = ModelHost(ws, "split", "churn/2", role="shadow")
    canary = ModelHost(ws, "split", "churn/2", role="canary")
    hosts = {"split": DeploymentHosts(primary, shadow, canary, canary_percent=100.0)}
    with TestClient(create_app(hosts, sink)) as client:
        answered = {
            client.post("/predict", json={"rows": [ROW]}).json()["model_version"] for _ in range(10)
        }
        assert answered == {2}  # the canary takes 100%
        client.app.state.server.deployments["split"].canary_percent = 0.0
        ids = [client.post("/predict", json={"rows": [ROW]}).json() for _ in range(10)]
        assert {answer["model_version"] for answer in ids} == {1}
    sink.flush()
    table = prediction_log_reader(ws.settings).read("split", with_feedback=False)
    shadows = [
        v
        for v, s in zip(
            table["model_version"].to_pylist(), table["shadow"].to_pylist(), strict=True
        )
        if s
    ]
    assert len(shadows) == 20  # the shadow (version 2) saw every request
    assert set(shadows) == {2}


def test_deployments_are_records_with_events(served: Any) -> None:
    from loopml.errors import InvalidInput, NotFound

    ws, _, _, _ = served
    found, created = ws.deployments.create(
        "churn-prod", project="default", model="churn@champion", shadow="churn/2"
    )
    assert created
    assert (found.model_ref, found.shadow_ref) == ("churn@champion", "churn/2")
    _, created_again = ws.deployments.create("churn-prod", project="default", model="churn/2")
    assert not created_again
    assert ws.deployments.get("churn-prod", "default").shadow_ref is None
    with pytest.raises(NotFound, match="no version 9"):
        ws.deployments.create("x", project="default", model="churn/9")
    with pytest.raises(InvalidInput, match="without a canary"):
        ws.deployments.create("x", project="default", model="churn/1", canary_percent=5)
    ws.deployments.delete("churn-prod", "default")
    assert ws.deployments.list("default") == []
    actions = [e.action for e in ws.audit.log(entity="deployment:default/churn-prod")]
    assert actions == ["deployment.deleted", "deployment.saved", "deployment.saved"]


def test_explain_is_exact_for_a_linear_model_with_a_training_reference(
    make_settings: Callable[..., Settings], tmp_path: Any
) -> None:
    from sklearn.linear_model import LogisticRegression

    ws = open_workspace(make_settings())
    frame, labels = _frame()
    numeric = frame[["tenure", "monthly"]].astype(float)
    numeric.to_csv(tmp_path / "train.csv", index=False)
    version = ws.data.add(tmp_path / "train.csv", name="train", project="default").version
    model = LogisticRegression().fit(numeric, labels)
    with ws.tracking.start_run(project="default", name="fit") as run:
        run.use_dataset(version)
        ws.registry.register(
            model, "linear", project="default", run_id=run.id, input_example=numeric.head(3)
        )
    host = ModelHost(ws, "linear", "linear")
    with TestClient(create_app({"linear": host})) as client:
        answer = client.post("/explain", json={"rows": numeric.head(3).to_dict("records")}).json()
    assert answer["method"] == "linear-exact"
    assert answer["reference"]["source"] == "training profile"
    reference = answer["reference"]["values"]
    assert reference["tenure"] == pytest.approx(
        float(np.quantile(numeric["tenure"], 0.5, method="averaged_inverted_cdf"))
    )
    base = model.decision_function(pd.DataFrame([reference]))[0]
    scores = model.decision_function(numeric.head(3))
    for row, score in zip(answer["explanations"], scores, strict=True):
        assert base + sum(row.values()) == pytest.approx(score)
    ws.close()


def test_explain_falls_back_to_occlusion_and_says_which_reference(served: Any) -> None:
    _, host, client, _ = served
    rows = [ROW, {**ROW, "tenure": 60, "plan": "pro"}]
    answer = client.post("/explain", json={"rows": rows}).json()
    assert answer["method"] == "occlusion"
    assert answer["reference"]["source"] == "this request's means and modes"
    assert set(answer["explanations"][0]) == {"tenure", "plan", "monthly"}
    model = host.current.model
    frame = pd.DataFrame(rows)
    reference = answer["reference"]["values"]
    predicted = model.predict_proba(frame).argmax(axis=1)
    occluded = frame.assign(tenure=reference["tenure"])
    expected = (
        model.predict_proba(frame)[np.arange(2), predicted]
        - model.predict_proba(occluded)[np.arange(2), predicted]
    )
    got = [row["tenure"] for row in answer["explanations"]]
    assert got == pytest.approx(expected.tolist())
    assert client.post("/explain", json={"rows": [{"tenure": 1}]}).status_code == 422


def test_an_unseen_category_is_served_and_flagged(
    make_settings: Callable[..., Settings], tmp_path: Any
) -> None:
    ws = open_workspace(make_settings())
    frame, _ = _frame()
    frame.to_csv(tmp_path / "train.csv", index=False)
    version = ws.data.add(tmp_path / "train.csv", name="train", project="default").version
    with ws.tracking.start_run(project="default", name="fit") as run:
        run.use_dataset(version)
        ws.registry.register(
            _model(2), "churn", project="default", run_id=run.id, input_example=frame.head(3)
        )
    host = ModelHost(ws, "churn", "churn")
    assert host.current.categories == {"plan": frozenset({"basic", "plus", "pro"})}
    sink = LogSink(prediction_log_writer(ws.settings), prediction_log_reader(ws.settings))
    with TestClient(create_app({"churn": host}, sink)) as client:
        answer = client.post(
            "/predict", json={"rows": [ROW, {**ROW, "plan": "gold", "monthly": None}]}
        )
    assert answer.status_code == 200
    ids = answer.json()["request_ids"]
    reader = prediction_log_reader(ws.settings)
    assert reader.get(ids[0])["flags"] == ""  # type: ignore[index]
    assert reader.get(ids[1])["flags"] == "null:monthly,unseen_category:plan"  # type: ignore[index]
    ws.close()


def test_probabilities_are_logged_when_asked_for_every_row(
    make_settings: Callable[..., Settings],
) -> None:
    ws = open_workspace(make_settings())
    frame, _ = _frame()
    ws.registry.register(_model(1), "churn", project="default", input_example=frame.head(3))
    host = ModelHost(ws, "churn", "churn")
    sink = LogSink(prediction_log_writer(ws.settings), prediction_log_reader(ws.settings))
    with TestClient(create_app({"churn": host}, sink, log_probabilities=True)) as client:
        ids = client.post("/predict", json={"rows": [ROW, ROW]}).json()["request_ids"]
    sink.close()
    logged = prediction_log_reader(ws.settings).get(ids[0])
    assert logged is not None
    probabilities = json.loads(logged["proba_json"])
    assert len(probabilities) == 2
    assert sum(probabilities) == pytest.approx(1.0)
    ws.close()
