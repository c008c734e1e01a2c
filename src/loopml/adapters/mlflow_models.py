"""A model folder as MLflow writes it, loaded from its library's own format so that loopml can
register it in its own flavor (and so serve, explain and monitor it).

What loads: XGBoost (`model.xgb`, `.ubj` or `.json`), LightGBM boosters (`model.lgb`, text),
ONNX (`model.onnx`), and scikit-learn saved with skops (MLflow 3's default) when every type it
asks for comes from scikit-learn, NumPy or SciPy. A pickle (scikit-learn's `model.pkl`, a
LightGBM scikit-learn model) runs code as it loads: only with `trust_pickles`. Anything else
(custom Python models, flavors loopml does not have) stays in MLflow's folder, with the reason.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from loopml.ports.mlflow_source import NativeModel

SAFE_PACKAGES = ("sklearn.", "numpy.", "scipy.", "builtins.")
"""Where a skops file's types may come from, when nobody vouched for the file."""


def native_model(folder: Path, *, trust_pickles: bool) -> NativeModel | str:
    """The model in MLflow's `folder`, loaded from its own format, with its input example; or
    why it was not loaded (one line)."""
    import yaml

    try:
        flavors = yaml.safe_load((folder / "MLmodel").read_text()).get("flavors", {})
    except (OSError, yaml.YAMLError, AttributeError) as error:
        return f"its MLmodel file cannot be read ({error})"
    for kind, load in _LOADERS.items():
        if kind in flavors:
            found = load(folder, flavors[kind], trust_pickles)
            if isinstance(found, str):
                return found
            return NativeModel(found, _example(folder), kind)
    named = ", ".join(sorted(k for k in flavors if k != "python_function")) or "python_function"
    return f"its flavor ({named}) has no loopml flavor; kept as MLflow's folder"


def _xgboost(folder: Path, conf: dict[str, Any], trust: bool) -> Any:
    import xgboost

    path = folder / str(conf.get("data", "model.xgb"))
    model_class = str(conf.get("model_class", "xgboost.core.Booster"))
    module, _, name = model_class.rpartition(".")
    if not module.startswith("xgboost"):
        return f"its XGBoost model class {model_class!r} is not XGBoost's"
    cls = getattr(importlib.import_module(module), name, None)
    if cls is None:
        return f"this XGBoost has no class {model_class!r}"
    if cls is xgboost.Booster:
        return xgboost.Booster(model_file=str(path))
    model = cls()
    model.load_model(str(path))
    return model


def _lightgbm(folder: Path, conf: dict[str, Any], trust: bool) -> Any:
    import lightgbm

    path = folder / str(conf.get("data", "model.lgb"))
    if path.suffix == ".pkl":
        return _pickled(path, trust, "a LightGBM scikit-learn model")
    return lightgbm.Booster(model_file=str(path))


def _onnx(folder: Path, conf: dict[str, Any], trust: bool) -> Any:
    import onnx

    return onnx.load(str(folder / str(conf.get("data", "model.onnx"))))


def _sklearn(folder: Path, conf: dict[str, Any], trust: bool) -> Any:
    path = folder / str(conf.get("pickled_model", "model.pkl"))
    if conf.get("serialization_format") != "skops":
        return _pickled(path, trust, "a scikit-learn model")
    import skops.io

    asked = skops.io.get_untrusted_types(file=path)
    unsafe = [t for t in asked if not t.startswith(SAFE_PACKAGES)]
    if unsafe and not trust:
        return f"its skops file builds {unsafe[0]!r}; import with --trust-pickles to load it"
    return skops.io.load(path, trusted=asked)


def _pickled(path: Path, trust: bool, what: str) -> Any:
    if not trust:
        return f"it is {what} saved as a pickle; import with --trust-pickles to load it"
    import cloudpickle

    with path.open("rb") as file:
        return cloudpickle.load(file)


_LOADERS = {"xgboost": _xgboost, "lightgbm": _lightgbm, "onnx": _onnx, "sklearn": _sklearn}


def _example(folder: Path) -> Any:
    """MLflow's `input_example.json` as a DataFrame (its split orient) or an array."""
    path = folder / "input_example.json"
    if not path.is_file():
        return None
    try:
        given = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if isinstance(given, dict) and {"columns", "data"} <= set(given):
        import pandas as pd

        return pd.DataFrame(given["data"], columns=given["columns"])
    if isinstance(given, list):
        import numpy as np

        return np.asarray(given)
    return None
