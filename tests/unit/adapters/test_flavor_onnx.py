"""The onnx flavor: models exported to ONNX (by skl2onnx here, or built by hand as a stand-in for
a PyTorch export) save with their tensor signature, load into onnxruntime without pickle, and
predict what the source model predicts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io
from onnx import ModelProto, TensorProto, helper, numpy_helper
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from loopml.adapters.flavors.base import flavor_for, get_flavor
from loopml.adapters.flavors.onnx_model import OnnxModel
from loopml.adapters.model_serializer import FlavorModelSerializer
from loopml.adapters.step_values import TypedValueSerializer
from loopml.domain.signature import ColumnType, Signature, infer_signature, tensor_signature
from loopml.errors import IntegrityError, InvalidInput, NotFound
from loopml.ports import LoadedModel

skl2onnx = pytest.importorskip("skl2onnx")
from skl2onnx import convert_sklearn  # noqa: E402
from skl2onnx.common.data_types import FloatTensorType, StringTensorType  # noqa: E402

TOLERANCE = 1e-5


def _iris() -> tuple[pd.DataFrame, Any]:
    features, labels = load_iris(return_X_y=True, as_frame=True)
    features.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    return features, labels.to_numpy()


def _to_onnx(model: Any, *, zipmap: bool = True, width: int = 4) -> ModelProto:
    options = None if zipmap else {id(model): {"zipmap": False}}
    proto: ModelProto = convert_sklearn(
        model,
        initial_types=[("float_input", FloatTensorType([None, width]))],
        options=options,
        name="model",  # skl2onnx names a graph at random unless told
    )
    return proto


def _save_load(proto: Any, tmp_path: Path) -> tuple[dict[str, Any], LoadedModel]:
    flavor = get_flavor("onnx")
    info = flavor.save(proto, tmp_path / "model")
    return info, flavor.load(tmp_path / "model", info, trust_pickle=False)


def _matmul_add(weights: Any, bias: Any) -> ModelProto:
    """A tiny dense layer, `x @ W + b`, as a PyTorch or Keras export of one would be."""
    rows, cols = weights.shape
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
        ],
        "dense",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", rows])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", cols])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


CLASSIFIERS = {
    "logistic-zipmap": (lambda: LogisticRegression(max_iter=1000), True),
    "logistic-tensor": (lambda: LogisticRegression(max_iter=1000), False),
    "boosting-zipmap": (lambda: GradientBoostingClassifier(n_estimators=20, random_state=0), True),
}


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_a_classifier_predicts_labels_and_probabilities_as_its_source(
    name: str, tmp_path: Path
) -> None:
    make, zipmap = CLASSIFIERS[name]
    features, labels = _iris()
    model = make().fit(features, labels)
    info, loaded = _save_load(_to_onnx(model, zipmap=zipmap), tmp_path)

    assert loaded.predict(features).tolist() == model.predict(features).tolist()
    probabilities = loaded.predict_proba(features)
    assert probabilities.shape == (150, 3)
    np.testing.assert_allclose(probabilities, model.predict_proba(features), atol=TOLERANCE)
    assert loaded.raw.classes_.tolist() == [0, 1, 2]
    assert info["classes"] == [0, 1, 2]
    # the model server calls it with the signature's float64 matrix: the same answers
    assert loaded.predict(features.to_numpy()).tolist() == model.predict(features).tolist()
    # and asks for both outputs of a batch in one run of the graph: the same answers again
    labels_too, probabilities_too = loaded.predict_with_proba(features.to_numpy())
    assert labels_too.tolist() == loaded.predict(features).tolist()
    np.testing.assert_array_equal(probabilities_too, probabilities)


def test_string_classes_come_back_as_strings_in_class_order(tmp_path: Path) -> None:
    features, labels = _iris()
    names = np.array(["setosa", "versicolor", "virginica"])[labels]
    model = LogisticRegression(max_iter=1000).fit(features, names)
    info, loaded = _save_load(_to_onnx(model), tmp_path)

    assert loaded.predict(features).tolist() == model.predict(features).tolist()
    np.testing.assert_allclose(
        loaded.predict_proba(features), model.predict_proba(features), atol=TOLERANCE
    )
    assert info["classes"] == ["setosa", "versicolor", "virginica"]


def test_info_records_which_output_is_which_and_the_tensor_signature(tmp_path: Path) -> None:
    features, labels = _iris()
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    info, loaded = _save_load(_to_onnx(model), tmp_path)

    assert info["flavor"] == "onnx"
    assert info["inputs"] == [
        {"name": "float_input", "dtype": "float32", "shape": [None, 4], "kind": "tensor"}
    ]
    assert info["outputs"] == [
        {"name": "output_label", "dtype": "int64", "shape": [None], "kind": "tensor"},
        {"name": "output_probability", "dtype": "float32", "shape": [None], "kind": "map_sequence"},
    ]
    assert (info["predict_output"], info["proba_output"]) == ("output_label", "output_probability")
    assert info["opsets"]["ai.onnx.ml"] == 1
    assert info["opsets"]["ai.onnx"] >= 9
    assert info["tensors"] == {  # the model as loopml calls it: what the V2 metadata reports
        "inputs": [{"name": "float_input", "dtype": "float32", "shape": [None, 4]}],
        "outputs": [
            {"name": "prediction", "dtype": "int64", "shape": [None]},
            {"name": "probabilities", "dtype": "float32", "shape": [None, 3]},
        ],
    }
    assert loaded.predict_proba(features.head(2)).dtype == np.float32


def test_a_regressor_predicts_one_value_per_row_and_has_no_probabilities(tmp_path: Path) -> None:
    features, _ = _iris()
    target = features.pop("petal_width")
    model = LinearRegression().fit(features, target)
    info, loaded = _save_load(_to_onnx(model, width=3), tmp_path)

    predicted = loaded.predict(features)
    assert predicted.shape == (150,)  # the [N, 1] output, squeezed
    np.testing.assert_allclose(predicted, model.predict(features), atol=TOLERANCE)
    assert not loaded.has_predict_proba  # type: ignore[attr-defined]
    assert info["proba_output"] is None
    assert [o["name"] for o in info["tensors"]["outputs"]] == ["prediction"]
    with pytest.raises(InvalidInput, match="no predict_proba"):
        loaded.predict_proba(features)


def test_a_hand_built_graph_predicts_and_gives_raw_tensors(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    weights = rng.normal(size=(3, 2)).astype(np.float32)
    bias = np.array([0.5, -1.0], dtype=np.float32)
    info, loaded = _save_load(_matmul_add(weights, bias), tmp_path)
    frame = pd.DataFrame(rng.normal(size=(5, 3)), columns=["a", "b", "c"])

    expected = frame.to_numpy(dtype=np.float32) @ weights + bias
    np.testing.assert_allclose(loaded.predict(frame), expected, atol=TOLERANCE)
    raw = loaded.raw.run({"x": frame.to_numpy(dtype=np.float32)})
    np.testing.assert_allclose(raw["y"], expected, atol=TOLERANCE)
    assert info["inputs"] == [
        {"name": "x", "dtype": "float32", "shape": [None, 3], "kind": "tensor"}
    ]
    assert info["opsets"] == {"ai.onnx": 17}
    assert not loaded.has_predict_proba  # type: ignore[attr-defined]


def test_one_input_per_column_takes_each_column_by_name_with_its_type(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, 200).astype(np.float32),
            "plan": rng.choice(["basic", "pro", "family"], 200).astype(object),
        }
    )
    labels = ((frame["tenure"] < 20) | (frame["plan"] == "pro")).astype(int)
    encode = ColumnTransformer(
        [("num", StandardScaler(), ["tenure"]), ("cat", OneHotEncoder(), ["plan"])]
    )
    model = Pipeline([("encode", encode), ("fit", LogisticRegression())]).fit(frame, labels)
    proto = convert_sklearn(
        model,
        initial_types=[
            ("tenure", FloatTensorType([None, 1])),
            ("plan", StringTensorType([None, 1])),
        ],
        options={id(model.steps[-1][1]): {"zipmap": False}},
    )
    info, loaded = _save_load(proto, tmp_path)

    shuffled = frame[["plan", "tenure"]]  # by name, not position
    assert loaded.predict(shuffled).tolist() == model.predict(frame).tolist()
    np.testing.assert_allclose(
        loaded.predict_proba(shuffled), model.predict_proba(frame), atol=TOLERANCE
    )
    assert [(t["name"], t["dtype"]) for t in info["tensors"]["inputs"]] == [
        ("tenure", "float32"),
        ("plan", "object"),
    ]
    signature = tensor_signature(info["tensors"], None)
    assert [(c.name, c.type) for c in signature.inputs] == [
        ("tenure", ColumnType.FLOAT),
        ("plan", ColumnType.STRING),
    ]


def test_the_graph_types_the_signature_and_the_example_names_its_columns(tmp_path: Path) -> None:
    features, labels = _iris()
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    info, _ = _save_load(_to_onnx(model), tmp_path)
    as_integers = features.round().astype(int)  # the example says integer; the graph says float

    signature = tensor_signature(info["tensors"], infer_signature(as_integers))

    assert [(c.name, c.type) for c in signature.inputs] == [
        (name, ColumnType.FLOAT) for name in features.columns
    ]
    assert [(c.name, c.type) for c in signature.outputs] == [("prediction", ColumnType.INTEGER)]
    unnamed = tensor_signature(info["tensors"], None)
    assert [c.name for c in unnamed.inputs] == ["0", "1", "2", "3"]
    with pytest.raises(InvalidInput, match="example has 3 columns"):
        tensor_signature(
            info["tensors"], Signature.from_dict(infer_signature(features.iloc[:, :3]).to_dict())
        )


def test_a_frame_that_does_not_fit_the_input_is_refused_clearly(tmp_path: Path) -> None:
    features, labels = _iris()
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    _, loaded = _save_load(_to_onnx(model), tmp_path)

    with pytest.raises(InvalidInput, match="takes 4 columns"):
        loaded.predict(features.iloc[:, :3])
    with pytest.raises(InvalidInput, match="do not convert"):
        loaded.predict(features.assign(sepal_length="wide"))


def test_saving_twice_writes_the_same_bytes(tmp_path: Path) -> None:
    features, labels = _iris()
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    proto = _to_onnx(model)
    flavor = get_flavor("onnx")
    flavor.save(proto, tmp_path / "a")
    flavor.save(proto, tmp_path / "b")
    flavor.save(_to_onnx(model), tmp_path / "c")  # exported again (with the same graph name)

    first = (tmp_path / "a" / "model.onnx").read_bytes()
    assert first == (tmp_path / "b" / "model.onnx").read_bytes()
    assert first == (tmp_path / "c" / "model.onnx").read_bytes()
    assert flavor.step_values


def test_a_step_value_is_stored_byte_stable_and_read_back_loaded(tmp_path: Path) -> None:
    features, labels = _iris()
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    values = TypedValueSerializer()
    assert values.dump(_to_onnx(model), tmp_path / "a")[0] == "onnx"
    values.dump(_to_onnx(model), tmp_path / "b")
    assert {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()} == {
        p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()
    }

    read = values.load("onnx", tmp_path / "a")
    assert isinstance(read, OnnxModel)
    assert read.predict(features).tolist() == model.predict(features).tolist()
    assert flavor_for(read).name == "onnx"  # a loaded ONNX model registers as ONNX again


def test_an_onnx_model_is_chosen_and_loads_on_a_shared_server_without_trust(
    tmp_path: Path,
) -> None:
    features, labels = _iris()
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    proto = _to_onnx(model)
    assert flavor_for(proto).name == "onnx"
    shared = FlavorModelSerializer(model_types=("sklearn.",))  # a team server
    name, info = shared.save(proto, tmp_path / "m")
    loaded = shared.load(name, tmp_path / "m", info, trust=False)
    assert loaded.predict(features.head(3)).tolist() == model.predict(features.head(3)).tolist()


def test_an_invalid_model_is_refused_at_save(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "missing"], ["y"])],
        "broken",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
    )
    broken = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(InvalidInput, match="not valid") as caught:
        get_flavor("onnx").save(broken, tmp_path / "m")
    assert "missing" in caught.value.message
    assert not (tmp_path / "m" / "model.onnx").exists()


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (b"not a model at all", "not a readable ONNX model"),
        (b"", "empty"),
        (b"PK\x03\x04 skops", "a skops file"),
    ],
    ids=["garbage", "empty", "zip"],
)
def test_a_damaged_or_foreign_file_is_an_integrity_error(
    content: bytes, named: str, tmp_path: Path
) -> None:
    features, labels = _iris()
    info = get_flavor("onnx").save(
        _to_onnx(LogisticRegression(max_iter=1000).fit(features, labels)), tmp_path
    )
    (tmp_path / "model.onnx").write_bytes(content)
    with pytest.raises(IntegrityError, match=named) as caught:
        get_flavor("onnx").load(tmp_path, info, trust_pickle=True)
    assert "register the model again" in caught.value.hint


def test_a_file_of_another_flavor_is_refused_naming_it(tmp_path: Path) -> None:
    features, labels = _iris()
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    info = get_flavor("onnx").save(_to_onnx(model), tmp_path / "onnx")
    skops.io.dump(model, tmp_path / "skops.bin")
    (tmp_path / "onnx" / "model.onnx").write_bytes((tmp_path / "skops.bin").read_bytes())
    with pytest.raises(IntegrityError, match="a skops file"):
        get_flavor("onnx").load(tmp_path / "onnx", info, trust_pickle=False)

    sklearn_folder = tmp_path / "sklearn"
    get_flavor("sklearn").save(model, sklearn_folder)
    with pytest.raises(NotFound, match=r"model.onnx is missing .*model.skops"):
        get_flavor("onnx").load(sklearn_folder, info, trust_pickle=False)


def test_a_file_swapped_for_another_onnx_model_is_refused(tmp_path: Path) -> None:
    features, labels = _iris()
    info = get_flavor("onnx").save(
        _to_onnx(LogisticRegression(max_iter=1000).fit(features, labels)), tmp_path
    )
    other = _matmul_add(np.ones((4, 1), dtype=np.float32), np.zeros(1, dtype=np.float32))
    (tmp_path / "model.onnx").write_bytes(other.SerializeToString())
    with pytest.raises(IntegrityError, match="not those recorded"):
        get_flavor("onnx").load(tmp_path, info, trust_pickle=False)


def test_without_onnxruntime_loading_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    features, labels = _iris()
    info = get_flavor("onnx").save(
        _to_onnx(LogisticRegression(max_iter=1000).fit(features, labels)), tmp_path
    )
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    with pytest.raises(InvalidInput) as caught:
        get_flavor("onnx").load(tmp_path, info, trust_pickle=False)
    assert caught.value.message == (
        "This model version is an ONNX model, and onnxruntime is not installed."
    )
    assert caught.value.hint == "pip install 'loopml[onnx]'"
