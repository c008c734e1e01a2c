"""The python flavor: any object with `predict`, saved with cloudpickle.

Unpickling runs code chosen by whoever wrote the file, so `load` refuses unless the caller says it
trusts the model's origin. cloudpickle carries code only between equal Python versions, so a
version mismatch is refused too, with the version to use.
"""

from __future__ import annotations

import pickle
import platform
from pathlib import Path
from typing import Any

from loopml.adapters.flavors.base import FlavorModel, prepare_empty_directory
from loopml.errors import Conflict, Forbidden, IntegrityError, InvalidInput, NotFound

MODEL_FILE = "model.pkl"
INFO_SCHEMA_VERSION = 1


class PythonFlavor:
    """Saves any object with `predict` to `model.pkl` with cloudpickle; loading needs trust."""

    name = "python"
    files = (MODEL_FILE,)
    step_values = False
    """A step's return value is pickled by the step-value store itself."""

    def accepts(self, model: object) -> bool:
        return callable(getattr(model, "predict", None))

    def check_shared(self, info: dict[str, Any], model_types: tuple[str, ...]) -> None:
        raise Forbidden(
            f"This process loads only models whose flavor loads no code, not {self.name!r} "
            "(cloudpickle).",
            "Load it where you trust who registered it (`loopml serve --trust`).",
        )

    def save(self, model: Any, directory: Path) -> dict[str, Any]:
        import cloudpickle

        prepare_empty_directory(directory)
        path = directory / MODEL_FILE
        try:
            with path.open("wb") as file:
                cloudpickle.dump(model, file)
        except (pickle.PicklingError, TypeError, AttributeError) as error:
            path.unlink(missing_ok=True)
            raise InvalidInput(
                f"cloudpickle cannot save this {type(model).__name__}: {error}",
                "Remove what cannot be pickled (open files, locks, connections) from the model.",
            ) from error
        return {
            "flavor": self.name,
            "schema_version": INFO_SCHEMA_VERSION,
            "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
            "python_version": platform.python_version(),
            "cloudpickle_version": cloudpickle.__version__,
            "requires_trust": True,
        }

    def load(self, directory: Path, info: dict[str, Any], *, trust_pickle: bool) -> FlavorModel:
        if not trust_pickle:
            raise Conflict(
                "This model was saved with the python flavor (cloudpickle); loading it runs code "
                "from the file.",
                "Pass trust=True (--trust on the command line) if you trust who registered it.",
            )
        _require_same_python(info)
        path = directory / MODEL_FILE
        if not path.is_file():
            raise NotFound(
                f"The python model file {path} is missing.",
                "Check that the model version's artifacts were downloaded completely.",
            )
        return FlavorModel(raw=_unpickle(path), flavor=self.name)


def _unpickle(path: Path) -> Any:
    try:
        with path.open("rb") as file:
            return pickle.load(file)  # only reached once the caller passed trust_pickle=True
    except ModuleNotFoundError as error:
        raise Conflict(
            f"The model needs the module {error.name!r}, which is not installed here.",
            f"Install the package that provides {error.name!r}, then load the model again.",
        ) from error
    except (pickle.UnpicklingError, EOFError) as error:
        raise IntegrityError(
            f"The model file {path} is not a readable pickle: {error}.",
            "The file is damaged or was replaced; register the model again.",
        ) from error


def _require_same_python(info: dict[str, Any]) -> None:
    saved = str(info.get("python_version", ""))
    running = platform.python_version()
    if saved and saved.split(".")[:2] != running.split(".")[:2]:
        raise Conflict(
            f"This model was pickled by Python {saved}; this is Python {running}, and cloudpickle "
            "does not carry code between Python versions.",
            f"Load it with Python {'.'.join(saved.split('.')[:2])}, or register it again here.",
        )
