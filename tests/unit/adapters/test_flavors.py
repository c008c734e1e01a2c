"""Model flavors: save to a folder, load back, and refuse files that would run code."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from loopml.adapters.flavors.base import flavor_for, get_flavor
from loopml.errors import AlreadyExists, Conflict, IntegrityError, InvalidInput, NotFound
from loopml.ports import Flavor, LoadedModel

TREE_PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
CONSTRUCTED: list[str] = []
"""Names of test classes whose state was restored; a refused file must leave this empty."""


class Backdoor(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """An estimator whose loading is observable: restoring its state records a call."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        CONSTRUCTED.append(type(self).__name__)
        super().__setstate__(state)

    def fit(self, features: Any, target: Any) -> Backdoor:
        self.classes_ = np.unique(target)
        return self

    def predict(self, features: Any) -> Any:
        return np.full(len(features), self.classes_[0])


class MeanModel:
    """A plain-Python model: predicts the mean of the first column it saw."""

    def __init__(self, mean: float) -> None:
        self.mean = mean

    def predict(self, frame: Any) -> Any:
        return np.full(len(frame), self.mean)


class RunsOnUnpickle:
    """Unpickling this makes the folder `marker`: proof that loading ran code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def predict(self, frame: Any) -> Any:
        return frame

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


@pytest.fixture(autouse=True)
def _forget_constructed() -> None:
    CONSTRUCTED.clear()


def _numeric_data() -> tuple[Any, Any]:
    rng = np.random.default_rng(7)
    features = rng.normal(size=(80, 3))
    return features, (features[:, 0] + features[:, 1] > 0).astype(int)


def _frame_data() -> tuple[Any, Any]:
    features, target = _numeric_data()
    plans = np.where(features[:, 2] > 0, "pro", "basic")
    return pd.DataFrame({"plan": plans, "tenure": features[:, 0], "spend": features[:, 1]}), target


def _column_transformer_pipeline() -> Pipeline:
    encode = ColumnTransformer(
        [("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"])], remainder="passthrough"
    )
    return Pipeline([("encode", encode), ("classify", LogisticRegression())])


MODELS = {
    "logistic": (LogisticRegression, _numeric_data),
    "scaled-pipeline": (
        lambda: Pipeline([("scale", StandardScaler()), ("classify", LogisticRegression())]),
        _numeric_data,
    ),
    "hist-gradient-boosting": (
        lambda: HistGradientBoostingClassifier(max_iter=10, random_state=0),
        _numeric_data,
    ),
    "column-transformer": (_column_transformer_pipeline, _frame_data),
}


def _save(model: Any, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    directory = tmp_path / "model"
    info = flavor_for(model).save(model, directory)
    return directory, json.loads(json.dumps(info))  # info is stored as JSON


def _load(directory: Path, info: dict[str, Any], *, trust_pickle: bool = False) -> LoadedModel:
    return get_flavor(info["flavor"]).load(directory, info, trust_pickle=trust_pickle)


@pytest.mark.parametrize("name", list(MODELS))
def test_sklearn_roundtrip_predicts_the_same(name: str, tmp_path: Path) -> None:
    make_model, make_data = MODELS[name]
    features, target = make_data()
    model = make_model().fit(features, target)

    directory, info = _save(model, tmp_path)
    loaded = _load(directory, info)

    assert info["flavor"] == "sklearn"
    assert [path.name for path in directory.iterdir()] == ["model.skops"]
    assert loaded.flavor == "sklearn"
    assert type(loaded.raw) is type(model)
    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))
    np.testing.assert_array_equal(loaded.predict_proba(features), model.predict_proba(features))


def test_sklearn_info_records_versions_and_only_the_needed_types(tmp_path: Path) -> None:
    features, target = _numeric_data()

    _, plain = _save(LogisticRegression().fit(features, target), tmp_path / "plain")
    _, boosted = _save(HistGradientBoostingClassifier(max_iter=5).fit(features, target), tmp_path)

    assert plain["trusted_types"] == []
    assert boosted["trusted_types"] == [TREE_PREDICTOR]
    assert {"sklearn_version", "skops_version", "python_version"} <= plain.keys()
    assert plain["model_class"] == "sklearn.linear_model._logistic.LogisticRegression"


def test_sklearn_custom_class_recorded_at_registration_loads(tmp_path: Path) -> None:
    features, target = _numeric_data()
    model = Pipeline([("scale", StandardScaler()), ("classify", Backdoor())]).fit(features, target)

    directory, info = _save(model, tmp_path)
    loaded = _load(directory, info)

    assert info["trusted_types"] == [f"{Backdoor.__module__}.Backdoor"]
    assert CONSTRUCTED == ["Backdoor"]  # the observable used by the refusal test below works
    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))


def test_sklearn_model_without_predict_proba_says_so(tmp_path: Path) -> None:
    features, target = _numeric_data()
    directory, info = _save(LinearRegression().fit(features, target), tmp_path)
    loaded = _load(directory, info)

    assert not loaded.has_predict_proba
    with pytest.raises(InvalidInput, match="has no predict_proba method"):
        loaded.predict_proba(features)


def _rewrite_schema(path: Path, edit: Any) -> None:
    """Rewrite the skops zip at `path` with its schema.json passed through `edit`."""
    with zipfile.ZipFile(path) as original:
        entries = {name: original.read(name) for name in original.namelist()}
    schema = json.loads(entries["schema.json"])
    edit(schema)
    entries["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w") as rewritten:
        for name, data in entries.items():
            rewritten.writestr(name, data)


def _os_system_node(command: str) -> dict[str, Any]:
    """A skops node that, if constructed, calls os.system(command)."""
    arguments = json.loads(
        zipfile.ZipFile(io.BytesIO(skops.io.dumps((command,)))).read("schema.json")
    )
    return {
        "__class__": "system",
        "__module__": "os",
        "__loader__": "ConstructorFromReduceNode",
        "content": {
            key: arguments[key] for key in ("__class__", "__module__", "__loader__", "content")
        },
    }


def _plant_os_system(tmp_path: Path, marker: Path) -> tuple[Path, dict[str, Any]]:
    features, target = _numeric_data()
    directory, info = _save(LogisticRegression().fit(features, target), tmp_path)

    def plant(schema: dict[str, Any]) -> None:
        schema["content"]["content"]["C"] = _os_system_node(f"touch {marker}")

    _rewrite_schema(directory / "model.skops", plant)
    return directory, info


def test_tampered_skops_file_asking_for_os_system_is_refused_without_running_it(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "pwned"
    directory, info = _plant_os_system(tmp_path, marker)

    with pytest.raises(IntegrityError, match="not recorded at registration") as caught:
        _load(directory, info)

    assert "os.system" in caught.value.message
    assert not marker.exists()


def test_the_planted_os_system_payload_is_live(tmp_path: Path) -> None:
    """Control for the test above: trusting the planted type does run the command."""
    marker = tmp_path / "pwned"
    directory, _ = _plant_os_system(tmp_path, marker)

    skops.io.load(directory / "model.skops", trusted=["os.system"])

    assert marker.exists()


def test_skops_file_swapped_for_an_unrecorded_class_is_refused_without_building_it(
    tmp_path: Path,
) -> None:
    features, target = _numeric_data()
    directory, info = _save(LogisticRegression().fit(features, target), tmp_path)
    skops.io.dump(Backdoor().fit(features, target), directory / "model.skops")

    with pytest.raises(IntegrityError, match="Backdoor"):
        _load(directory, info)

    assert CONSTRUCTED == []


def test_damaged_skops_file_is_an_integrity_error(tmp_path: Path) -> None:
    features, target = _numeric_data()
    directory, info = _save(LogisticRegression().fit(features, target), tmp_path)
    (directory / "model.skops").write_bytes(b"not a zip file")

    with pytest.raises(IntegrityError, match="not a readable skops file"):
        _load(directory, info)


def test_missing_model_file_is_not_found(tmp_path: Path) -> None:
    features, target = _numeric_data()
    directory, info = _save(LogisticRegression().fit(features, target), tmp_path)
    (directory / "model.skops").unlink()

    with pytest.raises(NotFound, match=r"model\.skops is missing"):
        _load(directory, info)


def test_sklearn_info_without_trusted_types_is_refused(tmp_path: Path) -> None:
    features, target = _numeric_data()
    directory, info = _save(LogisticRegression().fit(features, target), tmp_path)
    del info["trusted_types"]

    with pytest.raises(InvalidInput, match="trusted_types"):
        _load(directory, info)


def test_saving_into_a_non_empty_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "leftover.txt").write_text("x")

    with pytest.raises(AlreadyExists, match="not empty"):
        get_flavor("python").save(MeanModel(1.0), tmp_path)


def test_python_flavor_roundtrip_with_trust(tmp_path: Path) -> None:
    class Doubler:  # defined in a function: cloudpickle saves the class by value
        def predict(self, frame: Any) -> Any:
            return np.asarray(frame) * 2

    directory, info = _save(Doubler(), tmp_path)
    loaded = _load(directory, info, trust_pickle=True)

    assert info["flavor"] == "python"
    assert info["requires_trust"] is True
    assert {"python_version", "cloudpickle_version"} <= info.keys()
    assert [path.name for path in directory.iterdir()] == ["model.pkl"]
    np.testing.assert_array_equal(loaded.predict([1, 2]), [2, 4])
    with pytest.raises(InvalidInput, match="has no predict_proba method"):
        loaded.predict_proba([1, 2])


def test_python_flavor_refuses_without_trust_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    directory, info = _save(RunsOnUnpickle(marker), tmp_path)

    with pytest.raises(Conflict, match="python flavor") as caught:
        _load(directory, info, trust_pickle=False)

    assert "trust=True" in caught.value.hint
    assert not marker.exists()
    _load(directory, info, trust_pickle=True)  # control: trusting the file runs its code
    assert marker.exists()


def test_python_flavor_refuses_another_python_version(tmp_path: Path) -> None:
    directory, info = _save(MeanModel(2.0), tmp_path)
    info["python_version"] = "2.7.18"

    with pytest.raises(Conflict, match=r"Python 2\.7\.18") as caught:
        _load(directory, info, trust_pickle=True)

    assert "Python 2.7" in caught.value.hint


def test_python_flavor_refuses_what_cannot_be_pickled(tmp_path: Path) -> None:
    model = MeanModel(1.0)
    model.lock = threading.Lock()  # type: ignore[attr-defined]

    with pytest.raises(InvalidInput, match="cloudpickle cannot save"):
        get_flavor("python").save(model, tmp_path)

    assert list(tmp_path.iterdir()) == []


def test_damaged_pickle_is_an_integrity_error(tmp_path: Path) -> None:
    directory, info = _save(MeanModel(1.0), tmp_path)
    (directory / "model.pkl").write_bytes(b"\x80\x05garbage")

    with pytest.raises(IntegrityError, match="not a readable pickle"):
        _load(directory, info, trust_pickle=True)


@pytest.mark.parametrize(
    ("model", "flavor"),
    [
        pytest.param(LogisticRegression(), "sklearn", id="unfitted-estimator"),
        pytest.param(Pipeline([("scale", StandardScaler())]), "sklearn", id="pipeline"),
        pytest.param(MeanModel(0.0), "python", id="object-with-predict"),
    ],
)
def test_flavor_for_picks_by_kind(model: object, flavor: str) -> None:
    chosen = flavor_for(model)

    assert chosen.name == flavor
    assert isinstance(chosen, Flavor)


class NotCallablePredict:
    predict = "yes"


@pytest.mark.parametrize(
    "model",
    [pytest.param(object(), id="plain-object"), pytest.param(NotCallablePredict(), id="attr")],
)
def test_flavor_for_without_predict_is_refused(model: object) -> None:
    with pytest.raises(InvalidInput, match="has no predict method"):
        flavor_for(model)


def test_unknown_flavor_name_is_refused() -> None:
    with pytest.raises(InvalidInput, match="Unknown model flavor 'mxnet'") as caught:
        get_flavor("mxnet")

    assert "python, sklearn" in caught.value.hint


def test_flavor_base_and_signature_import_no_heavy_library() -> None:
    code = (
        "import sys, loopml.adapters.flavors.base, loopml.domain.signature; "
        "print(sorted({'sklearn', 'skops', 'cloudpickle', 'pandas'} & set(sys.modules)))"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"
