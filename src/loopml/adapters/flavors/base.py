"""What every flavor does, the model it hands back, and how a flavor is chosen.

A flavor writes a model into an empty folder and returns a JSON-able `info` dict that is stored
with the model version; `load` reads the folder back using only what `info` recorded. The concrete
flavors are imported by name when asked for, so `import loopml` never pulls in sklearn.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from loopml.errors import AlreadyExists, InvalidInput

FLAVOR_CLASSES: dict[str, tuple[str, str]] = {
    "sklearn": ("loopml.adapters.flavors.sklearn", "SklearnFlavor"),
    "python": ("loopml.adapters.flavors.python", "PythonFlavor"),
}
"""Flavor name -> (module, class). Looked up by name so this module imports no flavor eagerly."""


@runtime_checkable
class Flavor(Protocol):
    """Saves a model to a folder and loads it back."""

    @property
    def name(self) -> str: ...

    def save(self, model: Any, directory: Path) -> dict[str, Any]:
        """Write `model` into the empty `directory`; return the info to store with the version."""
        ...

    def load(self, directory: Path, info: dict[str, Any], *, trust_pickle: bool) -> LoadedModel:
        """Read the model saved in `directory` with `info` from its `save`."""
        ...


@dataclass(frozen=True)
class LoadedModel:
    """A loaded model: `predict`, `predict_proba` when the model has it, and the `raw` object."""

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


def flavor_for(model: object) -> Flavor:
    """The flavor that saves `model`: sklearn for estimators, python for anything with predict."""
    if _is_sklearn_estimator(model):
        return get_flavor("sklearn")
    if callable(getattr(model, "predict", None)):
        return get_flavor("python")
    raise InvalidInput(
        f"Cannot save a {type(model).__name__}: it is not a scikit-learn estimator and has no "
        "predict method.",
        "Register a fitted scikit-learn estimator or pipeline, or an object with predict(frame).",
    )


def get_flavor(name: str) -> Flavor:
    """The flavor called `name`, or InvalidInput naming the known ones."""
    if name not in FLAVOR_CLASSES:
        raise InvalidInput(
            f"Unknown model flavor {name!r}.",
            f"Use one of: {', '.join(sorted(FLAVOR_CLASSES))}.",
        )
    module_name, class_name = FLAVOR_CLASSES[name]
    flavor: Flavor = getattr(importlib.import_module(module_name), class_name)()
    return flavor


def prepare_empty_directory(directory: Path) -> None:
    """Create `directory` if needed; AlreadyExists if it holds anything."""
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise AlreadyExists(
            f"Cannot save a model into {directory}: the folder is not empty.",
            "Save into a new, empty folder.",
        )


def _is_sklearn_estimator(model: object) -> bool:
    # An estimator instance exists only once sklearn is imported, so an unloaded sklearn means no.
    if "sklearn" not in sys.modules:
        return False
    from sklearn.base import BaseEstimator

    return isinstance(model, BaseEstimator)
