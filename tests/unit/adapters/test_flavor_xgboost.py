"""The xgboost flavor: Boosters and scikit-learn wrappers saved as XGBoost's JSON and loaded
back without pickle, answering as the original did on a DataFrame in any column order."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from boosted_checks import check_arrays_only_in_training_order

from loopml.adapters.flavors.base import flavor_for, get_flavor
from loopml.adapters.flavors.boosted import BoostedModel
from loopml.adapters.model_serializer import FlavorModelSerializer
from loopml.adapters.step_values import TypedValueSerializer
from loopml.errors import IntegrityError, InvalidInput, NotFound

COLUMNS = ["tenure", "monthly", "calls"]


def _data(rows: int = 200, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, rows).astype(float),
            "monthly": rng.normal(60, 15, rows),
            "calls": rng.poisson(3, rows).astype(float),
        }
    )
    classes = (frame["tenure"] < 20).astype(int) + (frame["monthly"] > 70).astype(int)
    return frame, classes.to_numpy()


def _binary() -> Any:
    frame, classes = _data()
    return xgb.XGBClassifier(n_estimators=8, max_depth=3).fit(frame, classes > 0)


def _multiclass() -> Any:
    frame, classes = _data()
    return xgb.XGBClassifier(n_estimators=8, max_depth=3).fit(frame, classes)


def _regressor() -> Any:
    frame, _ = _data()
    return xgb.XGBRegressor(n_estimators=8, max_depth=3).fit(frame, frame["monthly"] * 2)


def _forest() -> Any:
    frame, _ = _data()
    return xgb.XGBRFRegressor(n_estimators=4, max_depth=3).fit(frame, frame["calls"])


def _ranker() -> Any:
    frame, classes = _data()
    return xgb.XGBRanker(n_estimators=4).fit(frame, classes, qid=np.arange(len(frame)) // 20)


def _booster(objective: str) -> Callable[[], Any]:
    def train() -> Any:
        frame, classes = _data()
        params: dict[str, Any] = {"objective": objective, "max_depth": 3}
        if objective.startswith("multi:"):
            params["num_class"] = 3
        else:
            classes = (classes > 0).astype(int)
        return xgb.train(params, xgb.DMatrix(frame, classes), num_boost_round=6)

    return train


MODELS: dict[str, Callable[[], Any]] = {
    "classifier": _binary,
    "multiclass": _multiclass,
    "regressor": _regressor,
    "random-forest": _forest,
    "ranker": _ranker,
    "booster-binary": _booster("binary:logistic"),
    "booster-softprob": _booster("multi:softprob"),
    "booster-softmax": _booster("multi:softmax"),
}


def _save(model: Any, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    directory = tmp_path / "model"
    info = flavor_for(model).save(model, directory)
    return directory, json.loads(json.dumps(info, allow_nan=False))  # stored as strict JSON


def _load(directory: Path, info: dict[str, Any]) -> BoostedModel:
    loaded = get_flavor("xgboost").load(directory, info, trust_pickle=False)
    assert isinstance(loaded, BoostedModel)
    return loaded


@pytest.fixture
def no_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any unpickling while the test runs fails it."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the model was unpickled")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)


def _original_predictions(model: Any, frame: pd.DataFrame) -> tuple[Any, Any]:
    """What the user's own object answers: (predict, predict_proba or None)."""
    if isinstance(model, xgb.Booster):
        predicted = model.predict(xgb.DMatrix(frame))
        objective = json.loads(model.save_config())["learner"]["objective"]["name"]
        if objective == "binary:logistic":
            return predicted, np.vstack((1 - predicted, predicted)).T
        if objective == "multi:softprob":
            return predicted, predicted
        margins = model.predict(xgb.DMatrix(frame), output_margin=True)
        exp = np.exp(margins - margins.max(axis=1, keepdims=True))
        return predicted, exp / exp.sum(axis=1, keepdims=True)
    proba = model.predict_proba(frame) if hasattr(model, "predict_proba") else None
    return model.predict(frame), proba


@pytest.mark.usefixtures("no_pickle")
@pytest.mark.parametrize("name", list(MODELS))
def test_a_model_round_trips_through_the_native_file_and_answers_the_same(
    name: str, tmp_path: Path
) -> None:
    model = MODELS[name]()
    frame, _ = _data(60, seed=11)

    directory, info = _save(model, tmp_path)
    loaded = _load(directory, info)

    assert info["flavor"] == "xgboost"
    assert [p.name for p in directory.iterdir()] == ["model.json"]  # the native file only
    assert type(loaded.raw) is type(model)
    assert loaded.features == tuple(COLUMNS)
    predicted, proba = _original_predictions(model, frame)
    reordered = frame[["calls", "monthly", "tenure"]]  # served in another column order
    np.testing.assert_array_equal(loaded.predict(reordered), predicted)
    assert loaded.has_predict_proba == (proba is not None)
    if proba is not None:
        np.testing.assert_allclose(loaded.predict_proba(reordered), proba, rtol=1e-6)
    else:
        with pytest.raises(InvalidInput, match="gives no class probabilities"):
            loaded.predict_proba(frame)


def test_a_classifier_records_what_rebuilds_it(tmp_path: Path) -> None:
    model = _multiclass()

    _, info = _save(model, tmp_path)

    assert info["wrapper"] == "XGBClassifier"
    assert info["objective"] == "multi:softprob"
    assert info["num_class"] == 3
    assert info["classes"] == [0, 1, 2]
    assert info["feature_names"] == COLUMNS
    assert info["params"]["max_depth"] == 3
    assert info["xgboost_version"] == xgb.__version__


def test_a_step_value_is_stored_byte_for_byte_and_read_back(tmp_path: Path) -> None:
    model = _binary()
    values = TypedValueSerializer()

    assert values.dump(model, tmp_path / "a")[0] == "xgboost"
    values.dump(model, tmp_path / "b")
    again = flavor_for(model).save(model, tmp_path / "c")

    assert (tmp_path / "a" / "model.json").read_bytes() == (
        tmp_path / "b" / "model.json"
    ).read_bytes()
    assert (tmp_path / "c" / "model.json").read_bytes() == (
        tmp_path / "a" / "model.json"
    ).read_bytes()
    assert again["flavor"] == "xgboost"
    restored = values.load("xgboost", tmp_path / "a")
    frame, _ = _data(30, seed=5)
    assert isinstance(restored, xgb.XGBClassifier)
    np.testing.assert_array_equal(restored.predict(frame), model.predict(frame))


@pytest.mark.parametrize("name", ["classifier", "multiclass", "regressor", "booster-softprob"])
def test_contributions_add_up_to_the_margin_of_the_predicted_class(
    name: str, tmp_path: Path
) -> None:
    model = MODELS[name]()
    frame, _ = _data(40, seed=12)
    loaded = _load(*_save(model, tmp_path))

    values, base = loaded.contributions(frame[["monthly", "calls", "tenure"]])

    booster = model if isinstance(model, xgb.Booster) else model.get_booster()
    margins = booster.predict(xgb.DMatrix(frame), output_margin=True)
    if margins.ndim == 2:
        margins = margins[np.arange(len(frame)), margins.argmax(axis=1)]
    assert values.shape == (40, 3)
    np.testing.assert_allclose(values.sum(axis=1) + base, margins, rtol=1e-4, atol=1e-4)
    native = booster.predict(xgb.DMatrix(frame), pred_contribs=True)
    if native.ndim == 2:  # one output: the columns come back in the frame's order
        np.testing.assert_allclose(values[:, 0], native[:, 1], rtol=1e-6)  # monthly
        np.testing.assert_allclose(values[:, 2], native[:, 0], rtol=1e-6)  # tenure


def test_a_frame_without_a_trained_column_is_refused_by_name(tmp_path: Path) -> None:
    loaded = _load(*_save(_binary(), tmp_path))
    frame, _ = _data(5)

    with pytest.raises(InvalidInput, match=r"needs the columns \['calls'\]"):
        loaded.predict(frame.drop(columns="calls"))


def test_an_array_is_refused_by_a_model_that_reads_columns_by_name(tmp_path: Path) -> None:
    loaded = _load(*_save(_regressor(), tmp_path))
    frame, _ = _data(10)

    with pytest.raises(InvalidInput, match="reads its columns by name") as refused:
        loaded.predict(frame.to_numpy())
    assert "['tenure', 'monthly', 'calls']" in refused.value.hint


def test_a_model_fitted_on_an_array_reads_columns_by_position(tmp_path: Path) -> None:
    frame, classes = _data()
    model = xgb.XGBClassifier(n_estimators=4).fit(frame.to_numpy(), classes)

    directory, info = _save(model, tmp_path)
    loaded = _load(directory, info)

    assert info["feature_names"] is None
    np.testing.assert_array_equal(loaded.predict(frame.to_numpy()), model.predict(frame.to_numpy()))
    np.testing.assert_allclose(
        loaded.predict_proba(frame.to_numpy()), model.predict_proba(frame.to_numpy())
    )


def test_a_lightgbm_model_in_the_place_of_the_xgboost_file_is_an_integrity_error(
    tmp_path: Path,
) -> None:
    import lightgbm as lgb

    directory, info = _save(_binary(), tmp_path)
    frame, classes = _data()
    other = lgb.LGBMClassifier(n_estimators=3, verbose=-1).fit(frame, classes)
    other.booster_.save_model(directory / "model.json")

    with pytest.raises(IntegrityError, match="not a readable XGBoost model") as refused:
        _load(directory, info)
    assert "Stack trace" not in refused.value.message
    assert "register the model again" in refused.value.hint


def _as_ubjson(data: bytes) -> bytes:
    booster = xgb.Booster()
    booster.load_model(bytearray(data))
    return bytes(booster.save_raw(raw_format="ubj"))


@pytest.mark.parametrize(
    "damage",
    [
        *(
            pytest.param(
                lambda data, f=fraction: data[: int(len(data) * f)], id=f"cut-at-{fraction}"
            )
            for fraction in (0.12, 0.48, 0.57, 0.9, 0.999)  # where a cut UBJSON file crashed
        ),
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(lambda data: b"{not json", id="garbage"),
        pytest.param(_as_ubjson, id="ubjson-under-the-json-name"),
    ],
)
def test_a_damaged_file_is_an_integrity_error_and_the_process_survives(
    damage: Callable[[bytes], bytes], tmp_path: Path
) -> None:
    directory, info = _save(_binary(), tmp_path)
    path = directory / "model.json"
    path.write_bytes(damage(path.read_bytes()))

    with pytest.raises(IntegrityError, match="not a readable XGBoost model"):
        _load(directory, info)


def test_a_file_swapped_for_another_xgboost_model_is_noticed(tmp_path: Path) -> None:
    directory, info = _save(_binary(), tmp_path)
    frame, classes = _data()
    other = xgb.XGBClassifier(n_estimators=2).fit(frame[["tenure", "monthly"]], classes > 0)
    (directory / "model.json").unlink()
    other.save_model(directory / "model.json")

    with pytest.raises(IntegrityError, match="features"):
        _load(directory, info)


def test_a_lightgbm_version_folder_is_not_found_as_an_xgboost_one(tmp_path: Path) -> None:
    (tmp_path / "model.txt").write_text("tree\nversion=v4\n")

    with pytest.raises(NotFound, match=r"model\.json is missing .*model\.txt"):
        _load(tmp_path, {"flavor": "xgboost"})
    with pytest.raises(InvalidInput, match="belongs to a 'lightgbm' model"):
        _load(tmp_path, {"flavor": "lightgbm"})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("wrapper", "os.system", id="class-outside-the-allow-list"),
        pytest.param("params", {"objective": ["a"]}, id="non-scalar-param"),
        pytest.param("params", {"_Booster": 1}, id="private-param"),
        pytest.param("classes", "0,1", id="classes-not-a-list"),
    ],
)
def test_an_altered_info_is_refused_before_anything_is_built(
    field: str, value: Any, tmp_path: Path
) -> None:
    directory, info = _save(_binary(), tmp_path)

    with pytest.raises(IntegrityError, match="altered"):
        _load(directory, {**info, field: value})


def test_without_xgboost_installed_loading_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, info = _save(_binary(), tmp_path)
    monkeypatch.setitem(sys.modules, "xgboost", None)  # `import xgboost` now fails

    with pytest.raises(InvalidInput) as refused:
        _load(directory, info)

    assert refused.value.message == (
        "This model version is an XGBoost model, and xgboost is not installed."
    )
    assert refused.value.hint == "pip install 'loopml[xgboost]'"


def test_wrappers_that_cannot_be_rebuilt_the_same_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not fitted"):
        flavor_for(xgb.XGBClassifier()).save(xgb.XGBClassifier(), tmp_path / "a")

    def squared(labels: Any, predicted: Any) -> tuple[Any, Any]:
        return predicted - labels, np.ones_like(predicted)

    frame, _ = _data(50)
    custom = xgb.XGBRegressor(n_estimators=2, objective=squared).fit(frame, frame["calls"])
    with pytest.raises(InvalidInput, match="custom objective"):
        flavor_for(custom).save(custom, tmp_path / "b")


def test_a_team_server_loads_it(tmp_path: Path) -> None:
    model = _binary()
    shared = FlavorModelSerializer(model_types=("sklearn.",))
    name, info = shared.save(model, tmp_path / "m")
    frame, _ = _data(10)

    loaded = shared.load(name, tmp_path / "m", json.loads(json.dumps(info)), trust=True)

    assert name == "xgboost"
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))


def test_choosing_a_flavor_imports_no_boosting_library() -> None:
    code = (
        "import sys\n"
        "from sklearn.linear_model import LinearRegression\n"
        "from loopml.adapters.flavors.base import flavor_for\n"
        "print(flavor_for(LinearRegression()).name, "
        "sorted({'xgboost', 'lightgbm'} & set(sys.modules)))"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "sklearn []"


def test_a_categorical_feature_is_read_from_plain_strings(tmp_path: Path) -> None:
    """Rows arrive as JSON, so a category column comes back as strings."""
    frame, classes = _data()
    frame["plan"] = pd.Categorical(np.array(["basic", "pro", "family"])[classes])
    model = xgb.XGBClassifier(n_estimators=6, enable_categorical=True).fit(frame, classes > 0)
    loaded = _load(*_save(model, tmp_path))
    served = frame.head(30).astype({"plan": object})

    assert served["plan"].dtype == object
    np.testing.assert_allclose(loaded.predict_proba(served), model.predict_proba(frame.head(30)))


def test_an_early_stopped_model_answers_and_explains_with_its_best_trees(tmp_path: Path) -> None:
    frame, classes = _data(300)
    model = xgb.XGBClassifier(n_estimators=200, early_stopping_rounds=3, learning_rate=0.5)
    model.fit(frame[:200], classes[:200] > 0, eval_set=[(frame[200:], classes[200:] > 0)])
    loaded = _load(*_save(model, tmp_path))

    values, base = loaded.contributions(frame)

    assert model.best_iteration < 199
    np.testing.assert_allclose(loaded.predict_proba(frame), model.predict_proba(frame))
    margins = model.predict(frame, output_margin=True)
    np.testing.assert_allclose(values.sum(axis=1) + base, margins, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("classes", [2, 3])
def test_predict_with_proba_answers_as_predict_and_predict_proba(
    classes: int, tmp_path: Path
) -> None:
    """The server's one call for both outputs gives what the two calls give, to the bit."""
    rng = np.random.default_rng(classes)
    frame = pd.DataFrame({"a": rng.random(400), "b": rng.random(400), "c": rng.random(400)})
    labels = np.minimum((frame["a"] * classes).astype(int), classes - 1)
    model = xgb.XGBClassifier(n_estimators=8, max_depth=3).fit(frame, labels)
    flavor = get_flavor("xgboost")
    info = flavor.save(model, tmp_path / "m")
    loaded = flavor.load(tmp_path / "m", info, trust_pickle=False)
    rows = frame[["c", "a", "b"]]  # another column order
    predicted, probabilities = loaded.predict_with_proba(rows)
    assert np.array_equal(predicted, model.predict(frame))
    assert np.array_equal(probabilities, model.predict_proba(frame))
    assert np.array_equal(predicted, loaded.predict(rows))


@pytest.mark.parametrize("name", list(MODELS))
def test_an_array_in_training_order_answers_as_the_frame_and_no_other_order_is_taken(
    name: str, tmp_path: Path
) -> None:
    frame, _ = _data(20)
    check_arrays_only_in_training_order(_load(*_save(MODELS[name](), tmp_path)), frame)
