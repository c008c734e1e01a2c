"""The sklearn flavor: scikit-learn estimators saved with skops, loaded without running code.

`save` records the types outside skops' safe defaults that the model needs (`trusted_types`);
`load` trusts exactly those, so a file altered after registration to ask for anything else (a
function to call, a class whose construction runs code) is refused before any object is built.
"""

from __future__ import annotations

import platform
import zipfile
from pathlib import Path
from typing import Any

from loopml.adapters.flavors.base import FlavorModel, loaded_class, prepare_empty_directory
from loopml.adapters.flavors.skops_canonical import canonicalize_skops
from loopml.errors import Forbidden, IntegrityError, InvalidInput, NotFound

MODEL_FILE = "model.skops"
INFO_SCHEMA_VERSION = 1


class SklearnFlavor:
    """Saves scikit-learn estimators and pipelines to `model.skops`."""

    name = "sklearn"
    files = (MODEL_FILE,)
    step_values = True
    """A step returning an estimator stores it here: byte-stable, loaded without pickle."""

    def accepts(self, model: object) -> bool:
        estimator = loaded_class("sklearn.base", "BaseEstimator")
        return estimator is not None and isinstance(model, estimator)

    def check_shared(self, info: dict[str, Any], model_types: tuple[str, ...]) -> None:
        check_recorded_types(info, model_types)

    def save(self, model: Any, directory: Path) -> dict[str, Any]:
        import sklearn
        import skops
        import skops.io
        from skops.io.exceptions import UnsupportedTypeException

        prepare_empty_directory(directory)
        path = directory / MODEL_FILE
        try:
            skops.io.dump(model, path)
        except UnsupportedTypeException as error:
            path.unlink(missing_ok=True)
            raise InvalidInput(
                f"skops cannot save this {type(model).__name__}: {error}",
                "Save it with the python flavor (cloudpickle) instead; loading it will need trust.",
            ) from error
        canonicalize_skops(path)
        return {
            "flavor": self.name,
            "schema_version": INFO_SCHEMA_VERSION,
            "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
            "trusted_types": sorted(skops.io.get_untrusted_types(file=path)),
            "sklearn_version": sklearn.__version__,
            "skops_version": skops.__version__,
            "python_version": platform.python_version(),
        }

    def load(self, directory: Path, info: dict[str, Any], *, trust_pickle: bool) -> FlavorModel:
        """Load with only the recorded types trusted; `trust_pickle` is unused (no pickle here)."""
        import skops.io
        from skops.io.exceptions import UntrustedTypesFoundException

        trusted = _trusted_types(info)
        path = directory / MODEL_FILE
        if not path.is_file():
            raise NotFound(
                f"The sklearn model file {path} is missing.",
                "Check that the model version's artifacts were downloaded completely.",
            )
        try:
            model = skops.io.load(path, trusted=trusted)
        except UntrustedTypesFoundException as error:
            unexpected = sorted(set(skops.io.get_untrusted_types(file=path)) - set(trusted))
            raise IntegrityError(
                "The model file asks for types that were not recorded at registration: "
                f"{unexpected or error}.",
                "The file was changed after it was registered; do not load it. Register the "
                "model again from a trusted source.",
            ) from error
        except (zipfile.BadZipFile, KeyError, ValueError) as error:
            raise IntegrityError(
                f"The model file {path} is not a readable skops file: {error!r}.",
                "The file is damaged or was replaced; register the model again.",
            ) from error
        return FlavorModel(raw=model, flavor=self.name)


SERVER_MODEL_TYPES = ("sklearn.",)
"""What a team server loads a model with by default: classes of scikit-learn only."""


def check_recorded_types(info: dict[str, Any], prefixes: tuple[str, ...]) -> None:
    """Forbidden unless every type the registrant recorded is a class under one of `prefixes`.

    A workspace loads the types its registrant recorded; a process serving others (the team
    server, when its UI explains a prediction or its schedule runs a retrain loop) must not let
    a registrant name what it builds: a recorded function such as `builtins.eval`, or
    `sklearn.datasets.dump_svmlight_file`, would be called while loading. So there, a recorded
    name must be a class, and of a package the operator trusts.
    """
    refused = [name for name in _trusted_types(info) if not _trusted_class(name, prefixes)]
    if refused:
        raise Forbidden(
            f"This process loads models built only from classes of {', '.join(prefixes)}; "
            f"this one records {refused[:5]}.",
            "Load it where you trust who registered it (`loopml serve`, `loopml.models.load`), "
            "or start the server with --trust-model-type PREFIX for a package you trust.",
        )


def _trusted_class(name: str, prefixes: tuple[str, ...]) -> bool:
    import importlib

    if not name.startswith(prefixes):
        return False
    module_name, _, attribute = name.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError):
        return False
    return isinstance(found, type)


def _trusted_types(info: dict[str, Any]) -> list[str]:
    trusted = info.get("trusted_types")
    if not isinstance(trusted, list) or not all(isinstance(name, str) for name in trusted):
        raise InvalidInput(
            f"The sklearn flavor info has trusted_types={trusted!r}; a list of type names is "
            "needed.",
            "Pass the info dict returned by save when the model was registered.",
        )
    return trusted
