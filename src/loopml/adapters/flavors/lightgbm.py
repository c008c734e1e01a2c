"""The lightgbm flavor: Boosters and their scikit-learn wrappers, saved as LightGBM's text model.

`save` writes `model.txt` with LightGBM's `save_model` (trees and numbers, never a pickle; up to
the best iteration when early stopping found one) and records in `info` what rebuilds a
scikit-learn wrapper: its class (one of `WRAPPERS`), its scalar constructor parameters, the
objective, the number and labels of classes and the feature names. `load` reads the file with
`lightgbm.Booster(model_file=...)` whatever `trust_pickle` says: loading runs no code.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml.adapters.flavors.base import prepare_empty_directory
from loopml.adapters.flavors.boosted import (
    BoostedModel,
    binary_proba,
    booster_or_wrapper,
    check_info_flavor,
    first_line,
    import_library,
    label_values,
    numeric_matrix,
    recorded_features,
    recorded_labels,
    recorded_params,
    recorded_wrapper,
    scalar_params,
)
from loopml.errors import IntegrityError, InvalidInput, NotFound

MODEL_FILE = "model.txt"
INFO_SCHEMA_VERSION = 1

WRAPPERS = {"LGBMClassifier": "classifier", "LGBMRegressor": "regressor", "LGBMRanker": "ranker"}
"""The scikit-learn wrappers this flavor saves and rebuilds, by class name: `load` builds only
these (subclasses and the Dask wrappers go to other flavors)."""

PROBA_OBJECTIVES = ("binary", "multiclass", "multiclassova")
"""Objectives whose Booster gives class probabilities (`predict_proba` of a raw Booster)."""


def _lightgbm() -> Any:
    return import_library("lightgbm", "a LightGBM", "lightgbm")


class LightGBMFlavor:
    """Saves lightgbm Boosters and LGBMClassifier/LGBMRegressor/LGBMRanker to `model.txt`."""

    name = "lightgbm"
    files = (MODEL_FILE,)
    step_values = True
    """A step returning a Booster or wrapper stores it here: saving one model twice writes the
    same bytes (tested), and loading runs no code."""

    def accepts(self, model: object) -> bool:
        return booster_or_wrapper(
            model, ("lightgbm.basic", "Booster"), "lightgbm.sklearn", WRAPPERS
        )

    def check_shared(self, info: dict[str, Any], model_types: tuple[str, ...]) -> None:
        """A team server may load any version: the text model holds trees and numbers that
        LightGBM parses without running code, and the only class built is a wrapper from
        `WRAPPERS`, so the registrant names nothing to import or call (what `model_types`
        guards against in the sklearn flavor)."""

    def save(self, model: Any, directory: Path) -> dict[str, Any]:
        lgb = _lightgbm()
        wrapper = None if isinstance(model, lgb.Booster) else type(model).__name__
        if wrapper is not None:
            _check_wrapper(model)
        booster = model if wrapper is None else model.booster_
        prepare_empty_directory(directory)
        path = directory / MODEL_FILE
        booster.save_model(path)
        header = _header(path)
        names = booster.feature_name()
        named = hasattr(model, "feature_names_in_") if wrapper else not _default_names(names)
        info: dict[str, Any] = {
            "flavor": self.name,
            "schema_version": INFO_SCHEMA_VERSION,
            "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
            "wrapper": wrapper,
            "objective": header.get("objective", "").split(" ")[0],
            "num_class": int(header.get("num_class", "1")),
            "feature_names": list(names) if named else None,
            "params": {} if wrapper is None else scalar_params(model.get_params()),
            "lightgbm_version": lgb.__version__,
        }
        if wrapper is not None and WRAPPERS[wrapper] == "classifier":
            info["classes"], info["classes_dtype"] = label_values(model.classes_, "LightGBM")
        return info

    def load(self, directory: Path, info: dict[str, Any], *, trust_pickle: bool) -> BoostedModel:
        """Read `model.txt` with LightGBM; `trust_pickle` is unused (no pickle here)."""
        check_info_flavor(info, self.name)
        lgb = _lightgbm()
        path = directory / MODEL_FILE
        if not path.is_file():
            found = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
            raise NotFound(
                f"The LightGBM model file {path} is missing (the folder holds {found}).",
                "Check that the model version's artifacts were downloaded completely, and that "
                "it was registered with the lightgbm flavor.",
            )
        wrapper = recorded_wrapper(info, WRAPPERS)
        features = recorded_features(info)
        booster = _read_booster(lgb, path)
        if features is not None and tuple(booster.feature_name()) != features:
            raise IntegrityError(
                f"The LightGBM model file has the features {booster.feature_name()}, its "
                f"registration records {list(features)}.",
                "The file was replaced after registration; register the model again.",
            )
        raw = booster if wrapper is None else _rebuild(lgb, wrapper, booster, info)
        return LightGBMModel(
            raw=raw,
            flavor=self.name,
            features=features,
            objective=str(info.get("objective", "")),
            wrapped=wrapper is not None,
        )


def _check_wrapper(model: Any) -> None:
    if not model.__sklearn_is_fitted__():
        raise InvalidInput(
            f"This {type(model).__name__} is not fitted, so it has no trees to save.",
            "Call fit before registering it.",
        )
    if callable(model.objective):
        raise InvalidInput(
            f"This {type(model).__name__} has a custom objective function, which LightGBM's "
            "text model cannot hold; the rebuilt model would predict differently.",
            "Register model.booster_ (its predict gives raw scores), or use a built-in objective.",
        )


def _read_booster(lgb: Any, path: Path) -> Any:
    """The Booster in `path`, or IntegrityError.

    LightGBM parses the trees of a text model in parallel at the offsets its `tree_sizes` line
    gives, and a damaged tree there aborts the whole process (std::terminate), not raises. So
    the layout is checked here first, and the trees are then parsed one after another (the
    line dropped), where LightGBM raises on a damaged one."""
    data = path.read_bytes()
    problem = _layout_problem(data)
    try:
        if problem is None:  # without tree_sizes, trees are parsed one by one: errors, not aborts
            text = re.sub(r"(?m)^tree_sizes=.*\n", "", data.decode("utf-8"), count=1)
            return lgb.Booster(model_str=text)
    except (lgb.basic.LightGBMError, ValueError, UnicodeDecodeError) as error:
        problem = first_line(error)
    raise IntegrityError(
        f"The model file {path} is not a readable LightGBM model: {problem}",
        "The file is damaged, was replaced, or is another library's model; register the model "
        "again.",
    )


def _layout_problem(data: bytes) -> str | None:
    """What is wrong with the layout of a text model, or None: it starts with `tree`, each tree
    starts where the header's `tree_sizes` put it, `end of trees` follows the last, and the
    file ends with the `pandas_categorical` line the Python package writes last."""
    if not data.startswith(b"tree\n"):
        return "it does not start with the line `tree`."
    header, _, trees = data.partition(b"\n\n")
    sizes_line = next((ln for ln in header.split(b"\n") if ln.startswith(b"tree_sizes=")), None)
    if sizes_line is None or not all(s.isdigit() for s in sizes_line[11:].split()):
        return "its header has no tree_sizes line."
    position = 0
    for index, size in enumerate(int(s) for s in sizes_line[11:].split()):
        if not trees.startswith(b"Tree=%d\n" % index, position):
            return f"tree {index} is not where tree_sizes puts it (the file is cut short?)."
        position += size
    if not trees.startswith(b"end of trees", position):
        return "`end of trees` is not where tree_sizes puts it (the file is cut short?)."
    if not data.rstrip(b"\n").rpartition(b"\n")[2].startswith(b"pandas_categorical:"):
        return "it does not end with its pandas_categorical line (the file is cut short?)."
    return None


def _rebuild(lgb: Any, wrapper: str, booster: Any, info: dict[str, Any]) -> Any:
    """The wrapper `fit` would have made around `booster`.

    LightGBM has no public way to load a wrapper from a model file, so this sets the attributes
    `fit` sets and `predict`, `predict_proba`, `classes_` and `feature_importances_` read (the
    round-trip tests check them against the installed LightGBM)."""
    from lightgbm.compat import _LGBMLabelEncoder

    model = getattr(lgb, wrapper)(**recorded_params(info))
    model._Booster = booster
    model._objective = str(info.get("objective") or "") or None
    model._n_features = model._n_features_in = booster.num_feature()
    model._fitted_with_feature_names = info.get("feature_names") is not None
    model._best_iteration = booster.best_iteration
    model._best_score = {}
    if WRAPPERS[wrapper] == "classifier":
        model._le = _LGBMLabelEncoder().fit(recorded_labels(info))
        model._classes = model._le.classes_
        model._n_classes = len(model._classes)
        model._class_map = dict(
            zip(model._classes, model._le.transform(model._classes), strict=True)
        )
    model.fitted_ = True
    return model


def _header(path: Path) -> dict[str, str]:
    """The `key=value` lines heading a LightGBM text model (up to its first tree)."""
    header: dict[str, str] = {}
    with path.open(encoding="utf-8") as file:
        for line in file:
            if line.startswith("Tree="):
                break
            key, equals, value = line.strip().partition("=")
            if equals:
                header[key] = value
    return header


def _default_names(names: list[str]) -> bool:
    """Whether LightGBM made the names up (`Column_0`, ...): the model was fitted on an array."""
    return names == [f"Column_{index}" for index in range(len(names))]


@functools.lru_cache(maxsize=64)
def _spelled(names: tuple[Any, ...]) -> tuple[Any, ...]:
    """`names` as LightGBM spells them, the same tuple when it changes none (served batches
    ask with the same columns each time)."""
    spelled = tuple(lightgbm_names(names))
    return names if spelled == tuple(str(name) for name in names) else spelled


def lightgbm_names(names: Any) -> list[str]:
    """Feature names as LightGBM keeps them: each whitespace character becomes `_`."""
    return [re.sub(r"\s", "_", str(name)) for name in names]


@dataclass(frozen=True)
class LightGBMModel(BoostedModel):
    """A loaded LightGBM Booster or wrapper; a Booster is given the DataFrame itself. LightGBM
    names a feature fitted as `mean radius` `mean_radius` (its file keeps only that), so a
    frame's columns are read with that spelling too: the rows a model was fitted on are the
    rows it is served."""

    wrapped: bool = False

    def spelled(self, names: list[Any]) -> list[Any]:
        return lightgbm_names(names)

    def select(self, frame: Any) -> Any:
        """As for any booster, after naming the frame's columns as LightGBM does."""
        if hasattr(frame, "columns") and self.features is not None:
            given = tuple(frame.columns.tolist())
            names = _spelled(given)
            if names != given:
                frame = frame.set_axis(list(names), axis=1)
        return super().select(frame)

    def _booster_has_proba(self) -> bool:
        return not self.wrapped and self.objective in PROBA_OBJECTIVES

    def _predict(self, selected: Any) -> Any:
        matrix = numeric_matrix(selected) if self.wrapped else None
        if matrix is None:
            return self.raw.predict(selected)
        kind = WRAPPERS[type(self.raw).__name__]
        if kind != "classifier":  # the wrapper's predict is its booster's
            return self.raw.booster_.predict(matrix)
        import numpy as np

        return self.raw.classes_[np.argmax(self._probabilities(matrix), axis=1)]

    def predict_with_proba(self, frame: Any) -> tuple[Any, Any]:
        selected = self.select(frame)
        matrix = numeric_matrix(selected) if self.wrapped else None
        if matrix is None or WRAPPERS[type(self.raw).__name__] != "classifier":
            return self._predict(selected), self._predict_proba(selected)
        import numpy as np

        probabilities = self._probabilities(matrix)  # the wrapper's predict: the most probable
        return self.raw.classes_[np.argmax(probabilities, axis=1)], probabilities

    def _predict_proba(self, selected: Any) -> Any:
        if self.wrapped:
            matrix = numeric_matrix(selected)
            if matrix is None:
                return self.raw.predict_proba(selected)
            return self._probabilities(matrix)
        predicted = self.raw.predict(selected)
        return binary_proba(predicted) if predicted.ndim == 1 else predicted

    def _probabilities(self, matrix: Any) -> Any:
        """A wrapped classifier's `predict_proba`, computed as it computes it (its booster's
        probabilities, a binary model's as two columns; `predict` takes the most probable
        class) without the wrapper's checks of its input, which cost a hundred times the
        trees on one row."""
        predicted = self.raw.booster_.predict(matrix)
        return binary_proba(predicted) if predicted.ndim == 1 else predicted

    def _contribution_blocks(self, selected: Any) -> Any:
        booster = self.raw.booster_ if self.wrapped else self.raw
        values = self.raw.predict(selected, pred_contrib=True)  # classes side by side
        return values.reshape(values.shape[0], -1, booster.num_feature() + 1)
