"""The lightgbm flavor: Boosters and scikit-learn wrappers saved as LightGBM's text model and
loaded back without pickle, answering as the original did on a DataFrame in any column order."""

from __future__ import annotations

import json
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from boosted_checks import check_arrays_only_in_training_order

from loopml.adapters.flavors.base import flavor_for, get_flavor
from loopml.adapters.flavors.boosted import BoostedModel
from loopml.adapters.model_serializer import FlavorModelSerializer
from loopml.adapters.step_values import TypedValueSerializer
from loopml.errors import IntegrityError, InvalidInput, NotFound

COLUMNS = ["tenure", "monthly", "calls"]
QUIET = {"verbose": -1, "n_estimators": 8, "num_leaves": 7}


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
    return lgb.LGBMClassifier(**QUIET).fit(frame, classes > 0)


def _labelled() -> Any:
    """Three classes named by strings: predict must give the strings back."""
    frame, classes = _data()
    return lgb.LGBMClassifier(**QUIET).fit(frame, np.array(["stay", "maybe", "leave"])[classes])


def _regressor() -> Any:
    frame, _ = _data()
    return lgb.LGBMRegressor(**QUIET).fit(frame, frame["monthly"] * 2)


def _ranker() -> Any:
    frame, classes = _data()
    return lgb.LGBMRanker(**QUIET).fit(frame, classes, group=[20] * 10)


def _booster(objective: str) -> Callable[[], Any]:
    def train() -> Any:
        frame, classes = _data()
        params: dict[str, Any] = {"objective": objective, "verbose": -1, "num_leaves": 7}
        if objective == "multiclass":
            params["num_class"] = 3
        elif objective == "binary":
            classes = (classes > 0).astype(int)
        else:
            classes = frame["monthly"].to_numpy()
        return lgb.train(params, lgb.Dataset(frame, classes), num_boost_round=6)

    return train


MODELS: dict[str, Callable[[], Any]] = {
    "classifier": _binary,
    "string-labels": _labelled,
    "regressor": _regressor,
    "ranker": _ranker,
    "booster-binary": _booster("binary"),
    "booster-multiclass": _booster("multiclass"),
    "booster-regression": _booster("regression"),
}


def _save(model: Any, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    directory = tmp_path / "model"
    info = flavor_for(model).save(model, directory)
    return directory, json.loads(json.dumps(info, allow_nan=False))  # stored as strict JSON


def _load(directory: Path, info: dict[str, Any]) -> BoostedModel:
    loaded = get_flavor("lightgbm").load(directory, info, trust_pickle=False)
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
    predicted = model.predict(frame)
    if isinstance(model, lgb.Booster):
        objective = model.params["objective"]
        if objective == "binary":
            return predicted, np.vstack((1 - predicted, predicted)).T
        return predicted, predicted if objective == "multiclass" else None
    return predicted, model.predict_proba(frame) if hasattr(model, "predict_proba") else None


@pytest.mark.usefixtures("no_pickle")
@pytest.mark.parametrize("name", list(MODELS))
def test_a_model_round_trips_through_the_native_file_and_answers_the_same(
    name: str, tmp_path: Path
) -> None:
    model = MODELS[name]()
    frame, _ = _data(60, seed=11)

    directory, info = _save(model, tmp_path)
    loaded = _load(directory, info)

    assert info["flavor"] == "lightgbm"
    assert [p.name for p in directory.iterdir()] == ["model.txt"]  # the native file only
    assert type(loaded.raw) is type(model)
    assert loaded.features == tuple(COLUMNS)
    predicted, proba = _original_predictions(model, frame)
    reordered = frame[["calls", "monthly", "tenure"]]  # served in another column order
    np.testing.assert_array_equal(loaded.predict(reordered), predicted)
    assert loaded.has_predict_proba == (proba is not None)
    if proba is not None:
        np.testing.assert_allclose(loaded.predict_proba(reordered), proba, rtol=1e-12)
    else:
        with pytest.raises(InvalidInput, match="gives no class probabilities"):
            loaded.predict_proba(frame)


def test_a_rebuilt_classifier_keeps_its_labels_and_importances(tmp_path: Path) -> None:
    model = _labelled()

    directory, info = _save(model, tmp_path)
    loaded = _load(directory, info)

    assert info["wrapper"] == "LGBMClassifier"
    assert (info["objective"], info["num_class"]) == ("multiclass", 3)
    assert info["classes"] == ["leave", "maybe", "stay"]
    assert info["feature_names"] == COLUMNS
    assert info["lightgbm_version"] == lgb.__version__
    assert loaded.raw.classes_.tolist() == ["leave", "maybe", "stay"]
    assert loaded.raw.n_classes_ == 3
    assert loaded.raw.feature_names_in_.tolist() == COLUMNS
    np.testing.assert_array_equal(loaded.raw.feature_importances_, model.feature_importances_)


def test_a_model_fitted_on_an_array_reads_columns_by_position(tmp_path: Path) -> None:
    frame, classes = _data()
    model = lgb.LGBMClassifier(**QUIET).fit(frame.to_numpy(), classes)

    directory, info = _save(model, tmp_path)
    loaded = _load(directory, info)

    assert info["feature_names"] is None
    np.testing.assert_array_equal(loaded.predict(frame.to_numpy()), model.predict(frame.to_numpy()))


def test_a_step_value_is_stored_byte_for_byte_and_read_back(tmp_path: Path) -> None:
    model = _labelled()
    values = TypedValueSerializer()

    assert values.dump(model, tmp_path / "a")[0] == "lightgbm"
    values.dump(model, tmp_path / "b")

    assert (tmp_path / "a" / "model.txt").read_bytes() == (
        tmp_path / "b" / "model.txt"
    ).read_bytes()
    restored = values.load("lightgbm", tmp_path / "a")
    frame, _ = _data(30, seed=5)
    assert isinstance(restored, lgb.LGBMClassifier)
    np.testing.assert_array_equal(restored.predict(frame), model.predict(frame))


@pytest.mark.parametrize("name", ["classifier", "string-labels", "regressor", "booster-multiclass"])
def test_contributions_add_up_to_the_margin_of_the_predicted_class(
    name: str, tmp_path: Path
) -> None:
    model = MODELS[name]()
    frame, _ = _data(40, seed=12)
    loaded = _load(*_save(model, tmp_path))

    values, base = loaded.contributions(frame[["monthly", "calls", "tenure"]])

    margins = model.predict(frame, raw_score=True)
    if margins.ndim == 2:
        margins = margins[np.arange(len(frame)), margins.argmax(axis=1)]
    assert values.shape == (40, 3)
    np.testing.assert_allclose(values.sum(axis=1) + base, margins, rtol=1e-9, atol=1e-9)
    native = model.predict(frame, pred_contrib=True)
    if native.shape[1] == 4:  # one output: the columns come back in the frame's order
        np.testing.assert_allclose(values[:, 0], native[:, 1])  # monthly
        np.testing.assert_allclose(values[:, 2], native[:, 0])  # tenure


def test_a_frame_without_a_trained_column_is_refused_by_name(tmp_path: Path) -> None:
    loaded = _load(*_save(_binary(), tmp_path))
    frame, _ = _data(5)

    with pytest.raises(InvalidInput, match=r"needs the columns \['monthly'\]"):
        loaded.predict(frame.drop(columns="monthly"))


def test_an_xgboost_model_in_the_place_of_the_lightgbm_file_is_an_integrity_error(
    tmp_path: Path,
) -> None:
    import xgboost as xgb

    directory, info = _save(_binary(), tmp_path)
    frame, classes = _data()
    other = xgb.XGBClassifier(n_estimators=2).fit(frame, classes)
    (directory / "model.txt").unlink()
    other.save_model(directory / "model.json")
    (directory / "model.json").rename(directory / "model.txt")  # XGBoost's JSON, misnamed

    with pytest.raises(IntegrityError, match="not a readable LightGBM model") as refused:
        _load(directory, info)
    assert "register the model again" in refused.value.hint


def _flip_inside_a_tree(text: bytes) -> bytes:
    """A tree whose leaf count no longer matches its arrays: LightGBM's parallel tree parser
    aborted the process on such a file."""
    return text.replace(b"num_leaves=", b"num_leaves=9", 1)


@pytest.mark.parametrize(
    "damage",
    [
        *(
            pytest.param(
                lambda text, f=fraction: text[: int(len(text) * f)], id=f"cut-at-{fraction}"
            )
            for fraction in (0.05, 0.2, 0.33, 0.5, 0.7, 0.95, 0.999)
        ),
        pytest.param(_flip_inside_a_tree, id="tree-altered"),
        pytest.param(lambda text: b"", id="empty"),
        pytest.param(lambda text: b"\xff\xfe\x00binary", id="binary-garbage"),
    ],
)
def test_a_damaged_file_is_an_integrity_error_and_the_process_survives(
    damage: Callable[[bytes], bytes], tmp_path: Path
) -> None:
    directory, info = _save(_binary(), tmp_path)
    path = directory / "model.txt"
    path.write_bytes(damage(path.read_bytes()))

    with pytest.raises(IntegrityError, match="not a readable LightGBM model") as refused:
        _load(directory, info)
    assert "register the model again" in refused.value.hint


def test_an_xgboost_version_folder_is_not_found_as_a_lightgbm_one(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_bytes(b"{}")

    with pytest.raises(NotFound, match=r"model\.txt is missing .*model\.json"):
        _load(tmp_path, {"flavor": "lightgbm"})
    with pytest.raises(InvalidInput, match="belongs to a 'xgboost' model"):
        _load(tmp_path, {"flavor": "xgboost"})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("wrapper", "builtins.eval", id="class-outside-the-allow-list"),
        pytest.param("params", {"n_jobs": {"a": 1}}, id="non-scalar-param"),
        pytest.param("params", {"_Booster": 1}, id="private-param"),
        pytest.param("classes_dtype", "V8", id="classes-of-an-unsafe-dtype"),
        pytest.param("feature_names", "tenure", id="features-not-a-list"),
    ],
)
def test_an_altered_info_is_refused_before_anything_is_built(
    field: str, value: Any, tmp_path: Path
) -> None:
    directory, info = _save(_binary(), tmp_path)

    with pytest.raises(IntegrityError, match="altered"):
        _load(directory, {**info, field: value})


def test_without_lightgbm_installed_loading_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, info = _save(_binary(), tmp_path)
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # `import lightgbm` now fails

    with pytest.raises(InvalidInput) as refused:
        _load(directory, info)

    assert refused.value.message == (
        "This model version is a LightGBM model, and lightgbm is not installed."
    )
    assert refused.value.hint == "pip install 'loopml[lightgbm]'"


def test_wrappers_that_cannot_be_rebuilt_the_same_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not fitted"):
        flavor_for(lgb.LGBMClassifier()).save(lgb.LGBMClassifier(), tmp_path / "a")

    def squared(labels: Any, predicted: Any) -> tuple[Any, Any]:
        return predicted - labels, np.ones_like(predicted)

    frame, _ = _data(50)
    custom = lgb.LGBMRegressor(objective=squared, **QUIET).fit(frame, frame["calls"])
    with pytest.raises(InvalidInput, match="custom objective"):
        flavor_for(custom).save(custom, tmp_path / "b")


def test_a_team_server_loads_it(tmp_path: Path) -> None:
    model = _labelled()
    shared = FlavorModelSerializer(model_types=("sklearn.",))
    name, info = shared.save(model, tmp_path / "m")
    frame, _ = _data(10)

    loaded = shared.load(name, tmp_path / "m", json.loads(json.dumps(info)), trust=True)

    assert name == "lightgbm"
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))


def test_a_categorical_feature_is_read_from_plain_strings(tmp_path: Path) -> None:
    """Rows arrive as JSON, so a category column comes back as strings (and in whatever order
    of categories the request happens to hold)."""
    frame, classes = _data()
    frame["plan"] = pd.Categorical(np.array(["basic", "pro", "family"])[classes])
    model = lgb.LGBMClassifier(**QUIET, min_child_samples=5).fit(frame, classes)
    loaded = _load(*_save(model, tmp_path))
    served = frame.tail(30).astype({"plan": str})  # pandas' string dtype

    assert not isinstance(served["plan"].dtype, pd.CategoricalDtype)
    np.testing.assert_allclose(loaded.predict_proba(served), model.predict_proba(frame.tail(30)))
    assert loaded.predict(served).tolist() == model.predict(frame.tail(30)).tolist()


def test_an_early_stopped_model_answers_and_explains_with_its_best_trees(tmp_path: Path) -> None:
    frame, classes = _data(300)
    model = lgb.LGBMClassifier(n_estimators=200, learning_rate=0.5, verbose=-1)
    model.fit(
        frame[:200],
        classes[:200] > 0,
        eval_X=(frame[200:],),
        eval_y=(classes[200:] > 0,),
        callbacks=[lgb.early_stopping(3, verbose=False)],
    )
    loaded = _load(*_save(model, tmp_path))

    values, base = loaded.contributions(frame)

    assert model.best_iteration_ < 200
    np.testing.assert_allclose(loaded.predict_proba(frame), model.predict_proba(frame))
    margins = model.predict(frame, raw_score=True)
    np.testing.assert_allclose(values.sum(axis=1) + base, margins, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("wrapped", [True, False])
def test_columns_with_spaces_are_read_as_lightgbm_spells_them(
    wrapped: bool, tmp_path: Path
) -> None:
    """LightGBM keeps `mean radius` as `mean_radius`: the rows it was fitted on, with their
    own column names, still get the original's answers and contributions."""
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"mean radius": rng.random(300), "worst area": rng.random(300)})
    labels = (frame["mean radius"] > 0.5).astype(int)
    if wrapped:
        model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(frame, labels)
    else:
        model = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(frame, labels), 5)
    flavor = get_flavor("lightgbm")
    info = flavor.save(model, tmp_path / "m")
    loaded = flavor.load(tmp_path / "m", info, trust_pickle=False)
    reordered = frame[["worst area", "mean radius"]]
    assert np.allclose(loaded.predict(reordered), model.predict(frame))
    values, base = loaded.contributions(reordered)
    margin = (model.booster_ if wrapped else model).predict(frame, raw_score=True)
    assert np.allclose(values.sum(axis=1) + base, margin)
    assert np.abs(values[:, 1]).sum() > 0  # "mean radius" is read, not left at zero


@pytest.mark.parametrize("classes", [2, 3])
def test_predict_with_proba_answers_as_predict_and_predict_proba(
    classes: int, tmp_path: Path
) -> None:
    """The server's one call for both outputs gives what the two calls give, to the bit."""
    rng = np.random.default_rng(classes)
    frame = pd.DataFrame({"a": rng.random(400), "b": rng.random(400), "c": rng.random(400)})
    labels = np.minimum((frame["a"] * classes).astype(int), classes - 1)
    model = lgb.LGBMClassifier(n_estimators=8, num_leaves=7, verbose=-1).fit(frame, labels)
    flavor = get_flavor("lightgbm")
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


def test_signature_names_are_matched_as_lightgbm_spells_them(tmp_path: Path) -> None:
    frame, classes = _data()
    frame.columns = ["tenure months", "monthly", "calls"]
    model = lgb.LGBMClassifier(**QUIET).fit(frame, classes > 0)
    loaded = _load(*_save(model, tmp_path))

    ordered = loaded.in_order(list(frame.columns))
    assert ordered.ordered_arrays
    np.testing.assert_array_equal(
        ordered.predict_proba(frame.to_numpy()), model.predict_proba(frame)
    )
