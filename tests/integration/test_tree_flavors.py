"""XGBoost and LightGBM classifiers along the path a user takes: registered with
`loopml.models.register` and an input example, served by `loopml serve`, asked over /predict,
V2 JSON, a third-party V2 client (tritonclient, binary tensors) and /explain, and monitored
over the predictions the server logged."""

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

FEATURES = ["tenure", "monthly", "calls"]
SERVED_ROWS = 300


def _frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, rows).astype(float) + shift,
            "monthly": rng.normal(60, 15, rows).round(2),
            "calls": rng.poisson(3, rows).astype(float),
        }
    )


def _fit(flavor: str, train: pd.DataFrame) -> Any:
    labels = ((train["tenure"] < 20) | (train["calls"] > 5)).astype(int)
    if flavor == "xgboost":
        import xgboost as xgb

        return xgb.XGBClassifier(n_estimators=10, max_depth=3).fit(train[FEATURES], labels)
    import lightgbm as lgb

    return lgb.LGBMClassifier(n_estimators=10, num_leaves=7, verbose=-1).fit(
        train[FEATURES], labels
    )


@dataclass
class Case:
    flavor: str
    model: Any
    version: Any
    server: ServerProcess
    grpc: str
    """host:port of the V2 gRPC service."""


@pytest.fixture(scope="module", params=["xgboost", "lightgbm"])
def case(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Case]:
    """A classifier of the flavor, trained on dataset `train`, registered as `churn` through
    `loopml.models` with an input example, and served by `loopml serve churn`."""
    import loopml
    from loopml.bootstrap import reset_default_workspace

    folder = tmp_path_factory.mktemp(request.param)
    settings = settings_in(folder / "ws")
    train = _frame(400, seed=1)
    model = _fit(request.param, train)
    train.assign(churned=model.predict(train[FEATURES])).to_parquet(folder / "train.parquet")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LOOPML_HOME", str(settings.home))
        env.setenv("LOOPML_DB_URL", settings.db_url)
        env.setenv("LOOPML_ARTIFACTS", settings.artifacts_url)
        env.delenv("LOOPML_SERVER", raising=False)
        reset_default_workspace()
        try:
            dataset = loopml.data.add(folder / "train.parquet", "train")
            with loopml.start_run("fit") as run:
                run.use_dataset(dataset)
                version = loopml.models.register(
                    run, model, "churn", input_example=train[FEATURES].head(5)
                )
        finally:
            reset_default_workspace()
    port = free_port()
    with serving(settings, "churn", "--grpc-port", str(port)) as server:
        yield Case(request.param, model, version, server, f"127.0.0.1:{port}")


def test_registration_records_the_flavor_and_the_signature(case: Case) -> None:
    assert case.version.flavor == case.flavor
    assert case.version.signature["inputs"] == [
        {"name": name, "type": "float"} for name in FEATURES
    ]
    assert case.version.flavor_info["wrapper"] in ("XGBClassifier", "LGBMClassifier")


def test_predict_answers_what_the_fitted_model_answers(case: Case) -> None:
    rows = _frame(8, seed=5)
    columns = ["calls", "tenure", "monthly"]  # any column order
    body = {"columns": columns, "data": rows[columns].to_numpy().tolist(), "probabilities": True}

    answer = httpx.post(f"{case.server.url}/predict", json=body, timeout=30).json()

    assert answer["predictions"] == case.model.predict(rows[FEATURES]).tolist()
    np.testing.assert_allclose(
        answer["probabilities"], case.model.predict_proba(rows[FEATURES]), rtol=1e-6
    )
    assert (answer["model"], answer["model_version"]) == ("churn", 1)


def test_v2_json_infer(case: Case) -> None:
    rows = _frame(4, seed=6)
    body = {
        "id": "json-1",
        "inputs": [
            {"name": name, "shape": [4], "datatype": "FP64", "data": rows[name].tolist()}
            for name in FEATURES
        ],
    }

    response = httpx.post(f"{case.server.url}/v2/models/churn/infer", json=body, timeout=30)

    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["prediction"]["data"] == case.model.predict(rows).tolist()
    probabilities = np.asarray(outputs["probabilities"]["data"]).reshape(4, 2)
    np.testing.assert_allclose(probabilities, case.model.predict_proba(rows), rtol=1e-6)


def test_tritonclient_with_its_defaults(case: Case) -> None:
    import tritonclient.http as v2

    rows = _frame(5, seed=7)
    client = v2.InferenceServerClient(url=case.server.url.removeprefix("http://"))
    try:
        metadata = client.get_model_metadata("churn")
        assert {i["name"]: i["datatype"] for i in metadata["inputs"]} == dict.fromkeys(
            FEATURES, "FP64"
        )
        inputs = []
        for name in FEATURES:
            tensor = v2.InferInput(name, [5], "FP64")
            tensor.set_data_from_numpy(rows[name].to_numpy())  # binary, the default
            inputs.append(tensor)
        result = client.infer("churn", inputs, request_id="triton-1")
    finally:
        client.close()

    assert result.as_numpy("prediction").tolist() == case.model.predict(rows).tolist()
    np.testing.assert_allclose(
        result.as_numpy("probabilities"), case.model.predict_proba(rows), rtol=1e-6
    )


def test_tritonclient_grpc_with_its_defaults(case: Case) -> None:
    import tritonclient.grpc as v2

    rows = _frame(6, seed=8)
    client = v2.InferenceServerClient(url=case.grpc)
    try:
        assert client.is_model_ready("churn")
        metadata = client.get_model_metadata("churn", as_json=True)
        assert [i["datatype"] for i in metadata["inputs"]] == ["FP64"] * len(FEATURES)
        inputs = []
        for name in FEATURES:
            tensor = v2.InferInput(name, [6], "FP64")
            tensor.set_data_from_numpy(rows[name].to_numpy())  # raw contents, the client's way
            inputs.append(tensor)
        result = client.infer("churn", inputs, request_id="grpc-1")
    finally:
        client.close()

    assert result.as_numpy("prediction").tolist() == case.model.predict(rows).tolist()
    np.testing.assert_allclose(
        result.as_numpy("probabilities"), case.model.predict_proba(rows), rtol=1e-6
    )


def _margins(case: Case, rows: pd.DataFrame) -> Any:
    if case.flavor == "xgboost":
        return case.model.predict(rows, output_margin=True)
    return case.model.predict(rows, raw_score=True)


def test_explain_gives_tree_contributions_that_add_up_to_the_margin(case: Case) -> None:
    rows = _frame(3, seed=8)

    response = httpx.post(
        f"{case.server.url}/explain", json={"rows": rows.to_dict("records")}, timeout=30
    )

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["method"] == "tree-contributions"
    assert answer["output"] == "raw margin"
    assert [set(row) for row in answer["explanations"]] == [set(FEATURES)] * 3
    totals = [
        base + sum(row.values())
        for base, row in zip(answer["base_values"], answer["explanations"], strict=True)
    ]
    np.testing.assert_allclose(totals, _margins(case, rows), rtol=1e-4, atol=1e-4)
    assert any(abs(row["tenure"]) > 0 for row in answer["explanations"])


def test_served_predictions_are_logged_and_monitored(case: Case) -> None:
    from loopml.bootstrap import open_workspace
    from loopml.monitoring import monitors

    rows = _frame(SERVED_ROWS, seed=9, shift=25.0)  # tenure moved: drift to find
    body = {"rows": rows.to_dict("records")}
    answer = httpx.post(f"{case.server.url}/predict", json=body, timeout=60).json()
    logged = _logged(case.server, answer["request_ids"])
    assert sorted(logged["request_id"]) == sorted(answer["request_ids"])
    assert sorted(logged["input.tenure"]) == sorted(rows["tenure"])
    assert sorted(map(str, logged["output"])) == sorted(map(str, answer["predictions"]))

    ws = open_workspace(case.server.settings)
    try:
        monitors.create(
            f"{case.flavor}-drift", deployment="churn", reference="train", model="churn",
            workspace=ws,
        )  # fmt: skip
        result = monitors.run(f"{case.flavor}-drift", workspace=ws)
    finally:
        ws.close()

    report = result.report
    assert result.run.rows >= SERVED_ROWS
    assert set(FEATURES) <= set(report.features)
    assert "tenure" in report.drifted_features
    assert all(np.isfinite(report.features[name].p_value) for name in FEATURES)
    assert report.importance_source == "model"  # the model's own importances, read after load
    assert report.importance["tenure"] > 0
    document = result.document
    assert document["prediction_drift"]["rows"] == result.run.rows  # the loaded model predicted
    assert document["prediction_drift"]["drifted"]  # fewer short tenures: fewer churners
    quality = document["quality"]
    assert all(quality["columns"][name]["null_rate"] == 0.0 for name in FEATURES)
    assert "out_of_range:tenure" in quality["issues"]


def _logged(server: ServerProcess, ids: list[str]) -> dict[str, list[Any]]:
    """The logged rows of `ids` once they are all there (the log flushes every second)."""
    import pyarrow.compute as pc

    from loopml.bootstrap import prediction_log_reader

    deadline = time.monotonic() + 15
    while True:
        table = prediction_log_reader(server.settings).read("churn", with_feedback=False)
        found = table.filter(pc.is_in(table["request_id"], value_set=_strings(ids)))
        if found.num_rows >= len(ids) or time.monotonic() > deadline:
            return {n: found[n].to_pylist() for n in ("request_id", "input.tenure", "output")}
        time.sleep(0.2)


def _strings(values: list[str]) -> Any:
    import pyarrow as pa

    return pa.array(values, type=pa.string())


def test_a_raw_booster_registers_with_the_output_its_flavor_predicts(tmp_path: Any) -> None:
    """An XGBoost Booster takes no data frame: its output type comes from the model as the
    flavor loads it; a model that predicts nothing for its example is a clear error."""
    import xgboost as xgb

    from loopml.bootstrap import open_workspace
    from loopml.errors import InvalidInput

    features = _frame(200, seed=3)[FEATURES]
    labels = (features["tenure"] < 20).astype(int)
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(features, label=labels), 5)
    ws = open_workspace(settings_in(tmp_path))
    try:
        version = ws.registry.register(booster, "raw", project="default", input_example=features)
        assert version.flavor == "xgboost"
        assert version.signature["outputs"] == [{"name": "prediction", "type": "float"}]

        class Refuses:
            def predict(self, frame: Any) -> Any:
                raise TypeError("takes no frames")

        with pytest.raises(InvalidInput, match="could not predict its input example"):
            ws.registry.register(Refuses(), "no", project="default", input_example=features)
        assert [m.name for m in ws.registry.models("default")] == ["raw"]  # nothing half-made
    finally:
        ws.close()
