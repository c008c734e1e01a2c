"""What every flavor does, the model it hands back, and how a flavor is chosen.

A flavor is one class in one module of this package, and declares all it does:

    name         what the model version records, and what `get_flavor` looks up
    accepts      whether it saves a given object (tried in `FLAVORS` order at registration)
    save, load   the model into an empty folder and back; `save` returns a JSON-able `info`
                 stored with the version, and `load` reads the folder with only that `info`
    files        the files `save` writes (a stored step value missing one is damaged)
    step_values  whether a step's return value it accepts is stored through it (byte-stable
                 files, loaded without running code) rather than pickled
    check_shared whether a process serving others (a team server) may load a version: Forbidden
                 unless it may

A new flavor is a module here and a line in `FLAVORS`. The flavor modules keep their libraries'
imports inside the methods and test `accepts` only against libraries already imported (an
object of a class not loaded yet cannot exist), so choosing a flavor imports no ML library and
`import loopml` stays light.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from loopml.errors import AlreadyExists, InvalidInput
from loopml.ports import Flavor

FLAVORS: tuple[tuple[str, str], ...] = (
    ("loopml.adapters.flavors.xgboost", "XGBoostFlavor"),
    ("loopml.adapters.flavors.lightgbm", "LightGBMFlavor"),
    ("loopml.adapters.flavors.onnx", "OnnxFlavor"),
    ("loopml.adapters.flavors.sklearn", "SklearnFlavor"),
    ("loopml.adapters.flavors.python", "PythonFlavor"),
)
"""(module, class) of every flavor, in the order `flavor_for` asks them; the python flavor,
which takes anything with `predict`, comes last."""


@dataclass(frozen=True)
class FlavorModel:
    """What a flavor's `load` gives (the `LoadedModel` port): `predict`, `predict_proba` when the
    model has it, and the `raw` object."""

    raw: Any
    flavor: str

    @property
    def has_predict_proba(self) -> bool:
        return callable(getattr(self.raw, "predict_proba", None))

    def predict(self, frame: Any) -> Any:
        return self._method("predict")(frame)

    def predict_proba(self, frame: Any) -> Any:
        return self._method("predict_proba")(frame)

    def _method(self, name: str) -> Any:
        method = getattr(self.raw, name, None)
        if not callable(method):
            raise InvalidInput(
                f"The model ({type(self.raw).__name__}, {self.flavor} flavor) has no {name} "
                "method.",
                "Call a method the model has, such as predict.",
            )
        return method


@cache
def flavors() -> tuple[Flavor, ...]:
    """Every flavor, in the order they are asked whether they take a model."""
    return tuple(getattr(importlib.import_module(module), cls)() for module, cls in FLAVORS)


def flavor_for(model: object) -> Flavor:
    """The first flavor that accepts `model` (sklearn for estimators, python for anything
    with predict)."""
    for flavor in flavors():
        if flavor.accepts(model):
            return flavor
    raise InvalidInput(
        f"Cannot save a {type(model).__name__}: no flavor takes it "
        f"({', '.join(f.name for f in flavors())}); it is not a scikit-learn estimator and has "
        "no predict method.",
        "Register a fitted scikit-learn estimator or pipeline, or an object with predict(frame).",
    )


FOREIGN = {
    "mlflow": (
        "This version holds a model folder as MLflow wrote it (registered through the team "
        "server's MLflow API); loopml loads, serves and monitors models of its own flavors.",
        "Load it with mlflow.pyfunc.load_model('models:/NAME/VERSION'), or register the model "
        "with loopml.models.register to serve it with loopml.",
    ),
}
"""Formats a version may hold that no flavor loads: why, and what to do instead."""


def get_flavor(name: str) -> Flavor:
    """The flavor called `name`, or InvalidInput naming the known ones."""
    for flavor in flavors():
        if flavor.name == name:
            return flavor
    if name in FOREIGN:
        raise InvalidInput(*FOREIGN[name])
    raise InvalidInput(
        f"Unknown model flavor {name!r}.",
        f"Use one of: {', '.join(sorted(f.name for f in flavors()))}.",
    )


def loaded_class(module: str, name: str) -> Any:
    """`module.name` if `module` is imported, else None: an object of a class not loaded yet
    cannot exist, so an `accepts` never needs to import its library."""
    return getattr(sys.modules.get(module), name, None)


def prepare_empty_directory(directory: Path) -> None:
    """Create `directory` if needed; AlreadyExists if it holds anything."""
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise AlreadyExists(
            f"Cannot save a model into {directory}: the folder is not empty.",
            "Save into a new, empty folder.",
        )


def has_probabilities(loaded: Any) -> bool:
    """Whether a loaded model gives class probabilities: as its flavor says (a classifying
    XGBoost or LightGBM Booster does, with no `predict_proba` of its own), else whether it has
    `predict_proba`. Its own `predict_proba` is then the one to call: it reads the rows as
    the model needs them (the columns it was fitted on, text as categories)."""
    said = getattr(loaded, "has_predict_proba", None)
    if isinstance(said, bool):
        return said
    return callable(getattr(loaded.raw, "predict_proba", None))
