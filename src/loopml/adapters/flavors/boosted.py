"""What the xgboost and lightgbm flavors share: the loaded model, and the checks of `info`.

Both libraries save trees in their own format (no pickle), and both name their features in the
file, so a loaded model picks its columns from a DataFrame by name, in the order it was
trained on: a request sending `monthly, tenure` to a model trained on `tenure, monthly` gets
the same answer as the original model on its own column order.

A scikit-learn wrapper (`XGBClassifier`, `LGBMRegressor`, ...) is rebuilt on load as the class
its `info` names, looked up in the flavor's allow-list (never an import path from the info),
with its constructor parameters limited to plain scalars: nothing a registrant writes into
`info` is called or imported.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib
import math
import re
from dataclasses import dataclass
from typing import Any

from loopml.adapters.flavors.base import FlavorModel, loaded_class
from loopml.errors import IntegrityError, InvalidInput

PARAM_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
"""A constructor parameter kept in `info`: a public name (no `_Booster`, no dunder)."""

LABEL_KINDS = frozenset("iufbUO")
"""numpy dtype kinds of class labels kept in `info`: numbers, booleans and strings."""


def booster_or_wrapper(
    model: object, booster: tuple[str, str], wrappers_module: str, wrappers: Any
) -> bool:
    """Whether `model` is the library's Booster (`booster` = module, class) or one of its
    scikit-learn `wrappers` by class name, the class itself, not a subclass (a subclass may
    change what predict means). Only classes already imported are looked at."""
    kind = loaded_class(*booster)
    if kind is not None and isinstance(model, kind):
        return True
    cls = type(model)
    return cls.__name__ in wrappers and loaded_class(wrappers_module, cls.__name__) is cls


def import_library(module: str, model_kind: str, extra: str) -> Any:
    """`module`, or InvalidInput naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise InvalidInput(
            f"This model version is {model_kind} model, and {module} is not installed.",
            f"pip install 'loopml[{extra}]'",
        ) from error


@dataclass(frozen=True)
class BoostedModel(FlavorModel, abc.ABC):
    """A loaded XGBoost or LightGBM model: `raw` is the library's own object (a Booster, or the
    rebuilt scikit-learn wrapper). `predict` and `predict_proba` answer what the original
    object's `predict` and `predict_proba` answer (a Booster's `predict` its raw `predict`
    output), on the columns named `features`, in that order. `contributions` gives each
    feature's share of the raw margin score (TreeSHAP, computed by the library)."""

    features: tuple[str, ...] | None
    """The trained feature names in order; None when the model was trained on an array."""
    objective: str
    ordered_arrays: bool = False
    """Whether `select` takes a 2-D array as the features in training order (`in_order`)."""

    @property
    def has_predict_proba(self) -> bool:
        return callable(getattr(self.raw, "predict_proba", None)) or self._booster_has_proba()

    def predict(self, frame: Any) -> Any:
        return self._predict(self.select(frame))

    def predict_with_proba(self, frame: Any) -> tuple[Any, Any]:
        """`predict` and `predict_proba` of the same rows, their columns picked once (the
        server asks for both of every batch); a library that can derive its labels from its
        probabilities exactly as its own `predict` does calls its trees once."""
        selected = self.select(frame)
        return self._predict(selected), self._predict_proba(selected)

    def predict_proba(self, frame: Any) -> Any:
        if not self.has_predict_proba:
            raise InvalidInput(
                f"The model ({type(self.raw).__name__}, {self.flavor} flavor, objective "
                f"{self.objective!r}) gives no class probabilities.",
                "Call predict; probabilities come from classifiers and from Boosters with a "
                "binary or multiclass objective.",
            )
        return self._predict_proba(self.select(frame))

    def contributions(self, frame: Any) -> tuple[Any, Any]:
        """(rows x columns of `frame`, base value per row): each feature's contribution to the
        row's raw margin score, in `frame`'s column order (0 for a column the model does not
        read), and the trees' expected margin. Contributions plus base add up to the margin.
        A multiclass model explains the margin of the class it predicts."""
        import numpy as np

        selected = self.select(frame)
        blocks = np.asarray(self._contribution_blocks(selected), dtype="float64")
        rows = np.arange(blocks.shape[0])
        predicted = blocks.sum(axis=2).argmax(axis=1)  # the highest margin: the predicted class
        picked = blocks[rows, predicted]
        values, base = picked[:, :-1], picked[:, -1]
        names = list(getattr(frame, "columns", range(values.shape[1])))
        order = list(self.features) if self.features is not None else names
        position = {name: index for index, name in enumerate(order)}
        aligned = np.zeros((len(rows), len(names)))
        for column, name in enumerate(self.spelled(names)):
            if name in position:
                aligned[:, column] = values[:, position[name]]
        return aligned, base

    def in_order(self, names: list[str]) -> BoostedModel:
        """This model, taking arrays too when their columns are `names` and those are its
        features in training order: a server whose rows always reach the model as a matrix
        of its signature's columns checks the names once here, instead of building (and
        picking columns from) a DataFrame on every call."""
        if self.features is None or tuple(self.spelled(names)) != self.features:
            return self
        return dataclasses.replace(self, ordered_arrays=True)

    def spelled(self, names: list[Any]) -> list[Any]:
        """Column names as the library spells its features (LightGBM changes some)."""
        return names

    def select(self, frame: Any) -> Any:
        """`frame`'s columns the model was trained on, in training order.

        A model that knows its column names takes only a DataFrame: an array's columns cannot
        be matched to names, and taking them in training order would silently swap two
        columns sent in another order (a server tries arrays on all-zero warm-up rows, where
        a swap shows no difference). A model trained on an array takes anything, by position.
        """
        import pandas as pd

        if self.features is None:
            return _as_categories(frame) if isinstance(frame, pd.DataFrame) else frame
        if self.ordered_arrays and getattr(frame, "shape", ())[1:] == (len(self.features),):
            return frame  # an array of the features in training order (`in_order`)
        if not isinstance(frame, pd.DataFrame):
            raise InvalidInput(
                f"The {self.flavor} model reads its columns by name, and a "
                f"{type(frame).__name__} has none.",
                f"Send a DataFrame with the columns {list(self.features)}.",
            )
        if list(frame.columns) == list(self.features):  # already in training order: no copy
            return _as_categories(frame)
        missing = [name for name in self.features if name not in frame.columns]
        if missing:
            raise InvalidInput(
                f"The {self.flavor} model needs the columns {missing}, which the rows lack "
                f"(they have {[str(c) for c in frame.columns][:20]}).",
                f"Send every column the model was trained on: {list(self.features)}.",
            )
        return _as_categories(frame[list(self.features)])

    def _booster_has_proba(self) -> bool:
        return False

    def _predict(self, selected: Any) -> Any:
        return self.raw.predict(selected)

    def _predict_proba(self, selected: Any) -> Any:
        return self.raw.predict_proba(selected)

    @abc.abstractmethod
    def _contribution_blocks(self, selected: Any) -> Any:
        """rows x classes x (features + 1): per class, the contributions and the base last
        (each library's model says how it computes them)."""


def _as_categories(frame: Any) -> Any:
    """`frame` with its text columns as pandas categories: both libraries read a categorical
    feature only from a `category` column, and map its values onto the categories they were
    trained on, while rows arriving as JSON (or a Parquet log) hold plain strings."""
    text = [name for name, dtype in frame.dtypes.items() if dtype.kind in "OSU"]
    return frame.astype(dict.fromkeys(text, "category")) if text else frame


def numeric_matrix(selected: Any) -> Any:
    """The selected rows as one float64 matrix when every column is a number (no category),
    else None. Both libraries predict far faster from a matrix than from a DataFrame, which
    their wrappers inspect column by column on every call (one row of 30 columns: XGBoost's
    wrapper 5 ms from a frame, 0.7 ms from a matrix; LightGBM's booster 0.06 ms)."""
    import numpy as np

    if isinstance(selected, np.ndarray):
        return selected.astype(np.float64, copy=False) if selected.dtype.kind in "biuf" else None
    dtypes = getattr(selected, "dtypes", None)
    if dtypes is None or not all(dtype.kind in "biuf" for dtype in dtypes):
        return None
    return selected.to_numpy(dtype=np.float64)


def binary_proba(positive: Any) -> Any:
    """The (rows, 2) probabilities of a binary model's positive-class probabilities."""
    import numpy as np

    positive = np.asarray(positive)
    return np.vstack((1.0 - positive, positive)).T


def scalar_params(params: dict[str, Any]) -> dict[str, Any]:
    """The constructor parameters worth keeping: public names with plain, JSON-able scalar
    values (no callables, no objects, no NaN)."""
    kept: dict[str, Any] = {}
    for name, value in params.items():
        if not isinstance(name, str) or not PARAM_NAME.match(name):
            continue
        plain = value is None or isinstance(value, str | bool | int)
        if plain or (isinstance(value, float) and math.isfinite(value)):
            kept[name] = value
    return kept


def recorded_params(info: dict[str, Any]) -> dict[str, Any]:
    """`info["params"]`, checked again on load: the info may have been edited since."""
    params = info.get("params") or {}
    if not isinstance(params, dict) or scalar_params(params) != params:
        raise IntegrityError(
            f"The {info.get('flavor')} flavor info holds constructor parameters that are not "
            f"plain scalars: {params!r:.200}.",
            "The registry entry was altered; register the model again.",
        )
    return params


def recorded_wrapper(info: dict[str, Any], allowed: dict[str, str]) -> str | None:
    """The wrapper class name `info` records, if it is in the flavor's allow-list."""
    wrapper = info.get("wrapper")
    if wrapper is not None and wrapper not in allowed:
        raise IntegrityError(
            f"The {info.get('flavor')} flavor info names the class {wrapper!r}, which is not "
            f"one this flavor rebuilds ({', '.join(sorted(allowed))}).",
            "The registry entry was altered; register the model again.",
        )
    return wrapper if isinstance(wrapper, str) else None


def label_values(classes: Any, kind: str) -> tuple[list[Any], str]:
    """A classifier's `classes_` as JSON values and the numpy dtype to rebuild them with."""
    import numpy as np

    array = np.asarray(classes)
    values = array.tolist()
    fine = all(
        isinstance(v, str | bool | int) or (isinstance(v, float) and math.isfinite(v))
        for v in values
    )
    if array.dtype.kind not in LABEL_KINDS or not fine:
        raise InvalidInput(
            f"The {kind} classifier's class labels {values[:5]!r} are not strings or numbers.",
            "Fit it on labels that are strings, integers, floats or booleans.",
        )
    return values, array.dtype.str


def recorded_labels(info: dict[str, Any]) -> Any:
    """The classifier's `classes_` as numpy built them, from `info`."""
    import numpy as np

    values, dtype = info.get("classes"), info.get("classes_dtype")
    try:
        kind: str = np.dtype(str(dtype)).kind
    except TypeError:
        kind = ""
    if not isinstance(values, list) or kind not in LABEL_KINDS:
        raise IntegrityError(
            f"The {info.get('flavor')} flavor info records classes={values!r:.100} of dtype "
            f"{dtype!r}; a list of labels and a numeric or string dtype are needed.",
            "The registry entry was altered; register the model again.",
        )
    return np.asarray(values, dtype=np.dtype(str(dtype)))


def recorded_features(info: dict[str, Any]) -> tuple[str, ...] | None:
    features = info.get("feature_names")
    if features is None:
        return None
    if not isinstance(features, list) or not all(isinstance(name, str) for name in features):
        raise IntegrityError(
            f"The {info.get('flavor')} flavor info records feature_names={features!r:.100}.",
            "The registry entry was altered; register the model again.",
        )
    return tuple(features)


def check_info_flavor(info: dict[str, Any], name: str) -> None:
    if info.get("flavor") != name:
        raise InvalidInput(
            f"This info belongs to a {info.get('flavor')!r} model, not an {name} one.",
            "Load the version with the flavor it was registered with.",
        )


def first_line(error: BaseException) -> str:
    """A library error's message without its C++ source location and stack trace."""
    line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", line)
