"""`compile`: a registered model converted to ONNX, registered as the next version of the same
model only when it predicts what the source predicts on the source's data; linked to its
source, its parity kept on it; refused, with nothing registered, when it cannot be converted or
does not match."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml.bootstrap import Workspace
from loopml.domain.parity import recorded_parity, recorded_source
from loopml.errors import InvalidInput

pytest.importorskip("skl2onnx")
pytest.importorskip("onnxmltools")

PROJECT = "default"


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_breast_cancer

    features, labels = load_breast_cancer(return_X_y=True, as_frame=True)
    features.columns = [c.replace(" ", "_") for c in features.columns]
    return features, labels


def trained(ws: Workspace, model: Any, name: str, features: pd.DataFrame, target: Any) -> Any:
    """`model` fitted on a dataset version, registered from the run that read it."""
    table = features.assign(target=np.asarray(target))
    path = ws.settings.home / f"{name}.parquet"
    table.to_parquet(path)
    data = ws.data.add(path, name=name, project=PROJECT).version
    model.fit(features, target)
    with ws.tracking.start_run(project=PROJECT, name="train") as run:
        run.use_dataset(data)
        run.log_metric("accuracy", 0.93)
        run.flush()
        ws.registry.register(model, name, project=PROJECT, run_id=run.id, input_example=features)
    return model


def versions(ws: Workspace, name: str) -> list[int]:
    return sorted(v.version for v in ws.registry.versions(name, PROJECT))


def test_hist_gradient_boosting_compiles_with_parity_and_a_link_to_its_source(
    ws: Workspace, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    features, labels = cancer
    model = trained(ws, HistGradientBoostingClassifier(random_state=0), "cancer", features, labels)
    source = ws.registry.resolve("cancer/1", PROJECT)

    done = ws.compiler.compile("cancer/1", project=PROJECT)

    version = done.version
    assert (version.name, version.version, version.flavor) == ("cancer", 2, "onnx")
    assert version.run_id == source.run_id  # the same lineage: the source's run and data
    assert version.metrics == source.metrics
    assert recorded_source(version.flavor_info) == {
        "model": "cancer",
        "version": 1,
        "flavor": "sklearn",
        "artifact": source.artifact_digest,
    }
    parity = recorded_parity(version.flavor_info)
    assert parity is not None
    assert parity == done.parity
    assert (parity.passed, parity.rows, parity.mismatches, parity.tolerance) == (
        True,
        569,
        0,
        1e-4,
    )
    assert parity.proba_max_abs_diff is not None
    assert 0 < parity.proba_max_abs_diff < 1e-5
    assert done.checked_on == "dataset cancer@1"
    assert [c["name"] for c in version.signature["inputs"]] == list(features.columns)

    compiled = ws.registry.load("cancer/2", project=PROJECT)
    assert type(compiled.raw).__name__ == "OnnxClassifier"
    assert compiled.predict(features).tolist() == model.predict(features).tolist()
    np.testing.assert_allclose(
        compiled.predict_proba(features), model.predict_proba(features), atol=1e-5
    )

    ws.registry.set_alias("cancer", "champion", 1, project=PROJECT)
    again = ws.compiler.compile("cancer@champion", project=PROJECT)
    assert again.version.version == 2  # the same file from the same data: not registered twice
    assert versions(ws, "cancer") == [1, 2]


def test_a_logistic_pipeline_with_a_text_column_takes_the_same_named_columns(
    ws: Workspace,
) -> None:
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, 300).astype(float),
            "monthly": rng.normal(60, 15, 300),
            "plan": rng.choice(["basic", "pro", "max"], 300),
        }
    )
    encode = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["plan"]),
        (StandardScaler(), ["tenure", "monthly"]),
    )
    target = ((frame["tenure"] < 20) | (frame["plan"] == "max")).astype(int)
    model = trained(ws, make_pipeline(encode, LogisticRegression()), "churn", frame, target)

    done = ws.compiler.compile("churn/1", project=PROJECT)

    assert [(c["name"], c["type"]) for c in done.version.signature["inputs"]] == [
        ("tenure", "float"),
        ("monthly", "float"),
        ("plan", "string"),
    ]
    compiled = ws.registry.load("churn/2", project=PROJECT)
    shuffled = frame[["plan", "monthly", "tenure"]]  # by name, not by position
    assert compiled.predict(shuffled).tolist() == model.predict(frame).tolist()
    assert done.parity.passed
    assert done.parity.mismatches == 0


def test_a_regressor_is_compared_on_its_predictions(
    ws: Workspace, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    features, _ = cancer
    target = features["mean_area"] / 100 + features["mean_texture"]
    inputs = features.drop(columns=["mean_area"])
    model = trained(ws, HistGradientBoostingRegressor(random_state=0), "area", inputs, target)

    done = ws.compiler.compile("area/1", project=PROJECT)

    parity = recorded_parity(done.version.flavor_info)
    assert parity is not None
    assert parity.proba_max_abs_diff is None
    assert parity.prediction_max_abs_diff is not None
    assert parity.prediction_max_abs_diff < 1e-4
    compiled = ws.registry.load("area/2", project=PROJECT)
    np.testing.assert_allclose(compiled.predict(inputs), model.predict(inputs), atol=1e-4)


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_boosted_classifiers_compile(
    ws: Workspace, cancer: tuple[pd.DataFrame, pd.Series], library: str
) -> None:
    if importlib.util.find_spec(f"loopml.adapters.flavors.{library}") is None:
        pytest.skip(f"the {library} flavor is not in this checkout yet")
    features, labels = cancer
    if library == "xgboost":
        import xgboost

        model: Any = xgboost.XGBClassifier(n_estimators=30, max_depth=3)
        target = labels
    else:
        import lightgbm

        model = lightgbm.LGBMClassifier(n_estimators=30, verbose=-1)
        target = np.where(labels == 1, "benign", "malignant")  # labels kept, not 0/1
    trained(ws, model, library, features, target)

    done = ws.compiler.compile(f"{library}/1", project=PROJECT)

    assert done.version.flavor == "onnx"
    assert done.parity.passed
    assert done.parity.mismatches == 0
    compiled = ws.registry.load(f"{library}/2", project=PROJECT)
    assert compiled.predict(features).tolist() == model.predict(features).tolist()
    np.testing.assert_allclose(
        compiled.predict_proba(features), model.predict_proba(features), atol=1e-5
    )


def test_a_difference_over_the_tolerance_is_refused_and_nothing_registered(
    ws: Workspace, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    features, labels = cancer
    trained(ws, HistGradientBoostingClassifier(random_state=0), "cancer", features, labels)

    with pytest.raises(InvalidInput) as refused:
        ws.compiler.compile("cancer/1", project=PROJECT, tolerance=0.0)  # float32 differs

    assert "largest probability difference" in refused.value.message
    assert "over the tolerance 0" in refused.value.message
    assert "row " in refused.value.message
    assert "--tolerance" in refused.value.hint
    assert "cancer/1" in refused.value.hint
    assert versions(ws, "cancer") == [1]


def test_a_converter_giving_another_model_is_refused(
    ws: Workspace, cancer: tuple[pd.DataFrame, pd.Series], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.linear_model import LogisticRegression

    from loopml.adapters import onnx_compiler

    features, labels = cancer
    trained(ws, LogisticRegression(max_iter=5000), "cancer", features, labels)
    wrong = LogisticRegression(max_iter=5000).fit(features, 1 - labels)  # every label flipped
    convert = onnx_compiler._from_sklearn
    monkeypatch.setattr(
        onnx_compiler, "_from_sklearn", lambda raw, inputs, name: convert(wrong, inputs, name)
    )

    with pytest.raises(InvalidInput, match=r"rows got another class") as refused:
        ws.compiler.compile("cancer/1", project=PROJECT, tolerance=0.5)

    assert "Nothing was registered" in refused.value.message
    assert versions(ws, "cancer") == [1]


def test_a_step_without_a_converter_is_named(
    ws: Workspace, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    features, labels = cancer
    model = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=5000))
    trained(ws, model, "cancer", features, labels)

    with pytest.raises(InvalidInput) as refused:
        ws.compiler.compile("cancer/1", project=PROJECT)

    assert "'functiontransformer' (sklearn.preprocessing.FunctionTransformer)" in str(refused.value)
    assert "log1p" in refused.value.message
    assert versions(ws, "cancer") == [1]


class Doubler:
    """A model of the python flavor (cloudpickle)."""

    def predict(self, frame: Any) -> Any:
        return np.asarray(frame).sum(axis=1) * 2


def test_a_python_flavor_model_is_refused(ws: Workspace) -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    ws.registry.register(Doubler(), "double", project=PROJECT, input_example=frame)

    with pytest.raises(InvalidInput, match="python-flavor model") as refused:
        ws.compiler.compile("double/1", project=PROJECT)

    assert "scikit-learn, XGBoost or LightGBM" in refused.value.hint
    assert versions(ws, "double") == [1]


def test_without_training_data_the_rows_are_named_with_data(
    ws: Workspace, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    from sklearn.linear_model import LogisticRegression

    features, labels = cancer
    model = LogisticRegression(max_iter=5000).fit(features, labels)
    ws.registry.register(model, "cancer", project=PROJECT, input_example=features.head())

    with pytest.raises(InvalidInput, match="registered without a run") as refused:
        ws.compiler.compile("cancer/1", project=PROJECT)
    assert "--data" in refused.value.hint

    path = ws.settings.home / "rows.csv"
    features.to_csv(path, index=False)
    ws.data.add(path, name="rows", project=PROJECT)
    done = ws.compiler.compile("cancer/1", project=PROJECT, data="rows@1")
    assert done.checked_on == "dataset rows@1"
    assert done.version.run_id is None
    assert done.parity.passed


def test_a_missing_converter_names_the_extra(
    ws: Workspace, cancer: tuple[pd.DataFrame, pd.Series], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.linear_model import LogisticRegression

    features, labels = cancer
    trained(ws, LogisticRegression(max_iter=5000), "cancer", features, labels)
    monkeypatch.setitem(sys.modules, "skl2onnx", None)  # as if not installed

    with pytest.raises(InvalidInput) as refused:
        ws.compiler.compile("cancer/1", project=PROJECT)

    assert refused.value.hint == "pip install 'loopml[compile]'"
    assert versions(ws, "cancer") == [1]


def test_the_gate_requires_a_passed_parity_check_of_onnx_versions(
    ws: Workspace, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    from loopml.monitoring.gate import gate

    features, labels = cancer
    model = trained(ws, LogisticRegression(max_iter=5000), "cancer", features, labels)
    ws.compiler.compile("cancer/1", project=PROJECT)  # version 2, with parity
    exported = convert_sklearn(
        model, initial_types=[("x", FloatTensorType([None, 30]))], name="by_hand"
    )
    ws.registry.register(exported, "cancer", project=PROJECT, input_example=features.head())

    def judged(candidate: str) -> tuple[bool, str]:
        result = gate(
            ws,
            model="cancer",
            candidate=candidate,
            against=None,
            data="cancer@1",
            rules=["parity_max_abs_diff <= 0.0001"],
            project=PROJECT,
        )
        ((_, held, why),) = result.rules
        return held, why

    assert judged("2")[0]  # compiled, with a passed check
    assert judged("1")[0]  # not ONNX: its own source
    held, why = judged("3")  # ONNX exported by hand: no parity check
    assert not held
    assert why.startswith("inf")
