"""The xgboost flavor: Boosters and their scikit-learn wrappers, saved as XGBoost's own JSON.

`save` writes `model.json` with XGBoost's `save_model` (trees and numbers, never a pickle) and
records in `info` what rebuilds a scikit-learn wrapper: its class (one of `WRAPPERS`), its
scalar constructor parameters, the objective, the number and labels of classes and the feature
names. `load` reads the file with XGBoost's `load_model` whatever `trust_pickle` says: loading
runs no code from the file.

JSON rather than XGBoost's default UBJSON: XGBoost 3.2 crashes the process (a segmentation
fault, not an exception) reading some truncated or altered UBJSON files, while the damaged JSON
files tried (cut at every 3% of their length, bytes flipped at random) all gave an
XGBoostError; a server must survive a bad file with a clear error.
"""

from __future__ import annotations

import json
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

MODEL_FILE = "model.json"
INFO_SCHEMA_VERSION = 1

WRAPPERS = {
    "XGBClassifier": "classifier",
    "XGBRegressor": "regressor",
    "XGBRanker": "ranker",
    "XGBRFClassifier": "classifier",
    "XGBRFRegressor": "regressor",
}
"""The scikit-learn wrappers this flavor saves and rebuilds, by class name: `load` builds only
these (subclasses and the Dask/Spark wrappers go to other flavors)."""

PROBA_OBJECTIVES = ("binary:logistic", "multi:softprob", "multi:softmax")
"""Objectives whose Booster gives class probabilities (`predict_proba` of a raw Booster)."""


LABELLED_BY_ARGMAX = ("binary:logistic", "multi:softprob")
"""Objectives whose wrapper's `predict` is the most probable class of its `predict_proba`
(binary: the positive class when its probability is over 0.5, which is where it is the larger
of the two columns)."""


def _xgboost() -> Any:
    return import_library("xgboost", "an XGBoost", "xgboost")


class XGBoostFlavor:
    """Saves xgboost Boosters and XGBClassifier/XGBRegressor/XGBRanker to `model.json`."""

    name = "xgboost"
    files = (MODEL_FILE,)
    step_values = True
    """A step returning a Booster or wrapper stores it here: saving one model twice writes the
    same bytes (tested), and loading runs no code."""

    def accepts(self, model: object) -> bool:
        return booster_or_wrapper(model, ("xgboost.core", "Booster"), "xgboost.sklearn", WRAPPERS)

    def check_shared(self, info: dict[str, Any], model_types: tuple[str, ...]) -> None:
        """A team server may load any version: the file holds trees and numbers that XGBoost
        reads without running code, and the only class built is a wrapper from `WRAPPERS`, so
        the registrant names nothing to import or call (what `model_types` guards against in
        the sklearn flavor)."""

    def save(self, model: Any, directory: Path) -> dict[str, Any]:
        xgb = _xgboost()
        wrapper = None if isinstance(model, xgb.Booster) else type(model).__name__
        if wrapper is not None:
            _check_wrapper(model)
        prepare_empty_directory(directory)
        model.save_model(directory / MODEL_FILE)  # a wrapper notes its estimator type in it
        booster = model if wrapper is None else model.get_booster()
        learner = json.loads(booster.save_config())["learner"]
        info: dict[str, Any] = {
            "flavor": self.name,
            "schema_version": INFO_SCHEMA_VERSION,
            "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
            "wrapper": wrapper,
            "objective": learner["objective"]["name"],
            "num_class": int(learner["learner_model_param"]["num_class"]),
            "feature_names": None if booster.feature_names is None else list(booster.feature_names),
            "params": {} if wrapper is None else scalar_params(model.get_params()),
            "xgboost_version": xgb.__version__,
        }
        if wrapper is not None and WRAPPERS[wrapper] == "classifier":
            info["classes"], info["classes_dtype"] = label_values(model.classes_, "XGBoost")
        return info

    def load(self, directory: Path, info: dict[str, Any], *, trust_pickle: bool) -> BoostedModel:
        """Read `model.json` with XGBoost; `trust_pickle` is unused (no pickle here)."""
        check_info_flavor(info, self.name)
        xgb = _xgboost()
        path = directory / MODEL_FILE
        if not path.is_file():
            found = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
            raise NotFound(
                f"The XGBoost model file {path} is missing (the folder holds {found}).",
                "Check that the model version's artifacts were downloaded completely, and that "
                "it was registered with the xgboost flavor.",
            )
        wrapper = recorded_wrapper(info, WRAPPERS)
        features = recorded_features(info)
        try:
            raw = (
                xgb.Booster() if wrapper is None else getattr(xgb, wrapper)(**recorded_params(info))
            )
            raw.load_model(path)
        except (ValueError, TypeError) as error:  # XGBoostError is a ValueError
            raise IntegrityError(
                f"The model file {path} is not a readable XGBoost model: {first_line(error)}",
                "The file is damaged, was replaced, or is another library's model; register "
                "the model again.",
            ) from error
        _check_loaded(raw, wrapper, features, info)
        return XGBoostModel(
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
            f"This {type(model).__name__} has a custom objective function, which XGBoost's "
            "format cannot hold; the rebuilt model would predict differently.",
            "Register model.get_booster() (its predict gives raw scores), or use a built-in "
            "objective.",
        )


def _check_loaded(
    raw: Any, wrapper: str | None, features: tuple[str, ...] | None, info: dict[str, Any]
) -> None:
    """IntegrityError unless the file holds the model `info` describes."""
    import numpy as np

    booster = raw if wrapper is None else raw.get_booster()
    names = None if booster.feature_names is None else tuple(booster.feature_names)
    if names != features:
        raise IntegrityError(
            f"The XGBoost model file has the features {names}, its registration records "
            f"{features}.",
            "The file was replaced after registration; register the model again.",
        )
    if wrapper is not None and WRAPPERS[wrapper] == "classifier":
        labels = recorded_labels(info)
        if not np.array_equal(np.asarray(raw.classes_), labels):
            raise IntegrityError(
                f"The XGBoost model file has {raw.n_classes_} classes, its registration "
                f"records {labels.tolist()[:10]}.",
                "The file was replaced after registration; register the model again.",
            )


@dataclass(frozen=True)
class XGBoostModel(BoostedModel):
    """A loaded XGBoost Booster or wrapper. A Booster is called the way its users call it,
    `booster.predict(DMatrix(frame))`."""

    wrapped: bool = False

    def _booster_has_proba(self) -> bool:
        return not self.wrapped and self.objective in PROBA_OBJECTIVES

    def predict_with_proba(self, frame: Any) -> tuple[Any, Any]:
        selected = self.select(frame)
        matrix = numeric_matrix(selected) if self.wrapped else None
        if matrix is None or self.objective not in LABELLED_BY_ARGMAX:
            return self._predict(selected), self._predict_proba(selected)
        import numpy as np

        probabilities = self.raw.predict_proba(matrix)
        return self.raw.classes_[np.argmax(probabilities, axis=1)], probabilities

    def _predict(self, selected: Any) -> Any:
        if self.wrapped:  # the wrapper's own predict, from a matrix when the rows make one
            matrix = numeric_matrix(selected)
            return self.raw.predict(selected if matrix is None else matrix)
        return self.raw.predict(self._matrix(selected))

    def _predict_proba(self, selected: Any) -> Any:
        if self.wrapped:
            matrix = numeric_matrix(selected)
            return self.raw.predict_proba(selected if matrix is None else matrix)
        if self.objective == "multi:softmax":
            from scipy.special import softmax

            margins = self.raw.predict(self._matrix(selected), output_margin=True)
            return softmax(margins, axis=1)
        predicted = self.raw.predict(self._matrix(selected))
        return binary_proba(predicted) if predicted.ndim == 1 else predicted

    def _contribution_blocks(self, selected: Any) -> Any:
        booster = self.raw.get_booster() if self.wrapped else self.raw
        values = booster.predict(
            self._matrix(selected), pred_contribs=True, iteration_range=self._iterations()
        )
        return values[:, None, :] if values.ndim == 2 else values

    def _matrix(self, selected: Any) -> Any:
        import xgboost

        missing = getattr(self.raw, "missing", None) if self.wrapped else None
        ordered = self.features is not None and not hasattr(selected, "columns")
        names = list(self.features or ()) if ordered else None  # an array in training order
        return xgboost.DMatrix(
            selected, missing=missing, enable_categorical=True, feature_names=names
        )

    def _iterations(self) -> tuple[int, int]:
        """The trees the wrapper's predict uses: up to the best iteration of early stopping."""
        if not self.wrapped or getattr(self.raw, "booster", None) == "gblinear":
            return (0, 0)
        try:
            return (0, int(self.raw.best_iteration) + 1)
        except AttributeError:
            return (0, 0)
