"""The ONNX compiler: a registered model converted to an ONNX graph that onnxruntime serves.

scikit-learn estimators and pipelines go through skl2onnx, XGBoost and LightGBM models through
onnxmltools (XGBoost's booster, whose feature names it cannot read, without them). A LightGBM
wrapper inside a scikit-learn pipeline goes through skl2onnx with onnxmltools' converter
registered for it; an XGBoost one there is refused, as that converter gives other probabilities
inside a pipeline (found by the parity check, with XGBoost 3.2). The graph takes what the source
took:

- one float32 `[rows, k]` input called `input` when every column is a number and no step picks
  columns by name: the columns in the order of the source's signature;
- else one `[rows, 1]` input per column, named after it (float32, or string for a text
  column), which a ColumnTransformer picking columns by name needs.

Classifiers give their probabilities as one `[rows, classes]` tensor (no ZipMap: a list of
dicts per call costs more than the model). The graph is then saved and loaded by the onnx flavor
exactly as the registry will, so what the caller checks is what will be served.

What cannot be converted is refused with InvalidInput naming the step (a class skl2onnx has no
converter for, a FunctionTransformer running a Python function) and nothing is registered.
"""

from __future__ import annotations

import contextlib
import importlib
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from loopml.adapters.flavors.onnx import OnnxFlavor
from loopml.domain.signature import ColumnSpec, ColumnType
from loopml.errors import InvalidInput
from loopml.ports import LoadedModel

INSTALL = "pip install 'loopml[compile]'"
OPSET = 17
"""The ONNX opset the graphs use (with ai.onnx.ml 3): pinned, so that a newer onnx package
writes the same graph, and old enough for any onnxruntime of the last three years."""
TARGET_OPSETS = {"": OPSET, "ai.onnx.ml": 3}
BOOSTED_OPSET = 15
"""The opset of onnxmltools' XGBoost and LightGBM graphs: the newest its converters support."""
NUMERIC = frozenset({ColumnType.FLOAT, ColumnType.INTEGER, ColumnType.BOOLEAN})
INPUT = "input"
"""The name of the one matrix input."""


class OnnxCompiler:
    """Converts sklearn, xgboost and lightgbm flavor models to ONNX (`loopml[compile]`)."""

    target = "onnx"

    def compile(self, model: LoadedModel, inputs: Sequence[ColumnSpec], name: str) -> LoadedModel:
        for library in ("onnx", "onnxruntime"):
            _library(library)
        raw = model.raw
        module = type(raw).__module__.split(".")[0]
        if module == "xgboost":
            proto = _from_xgboost(raw, len(inputs))
        elif module == "lightgbm":
            proto = _from_lightgbm(raw, len(inputs))
        elif module == "sklearn":
            proto = _from_sklearn(raw, inputs, name)
        else:
            raise InvalidInput(
                f"Cannot compile a {_qualified(raw)} to ONNX: only scikit-learn, XGBoost and "
                "LightGBM models are converted.",
                "Keep serving the original version.",
            )
        proto.graph.name = name
        _rows_symbolic(proto)
        return _load(proto)

    def to_register(self, compiled: LoadedModel, notes: Mapping[str, str]) -> Any:
        onnx = _library("onnx")
        proto = onnx.load_from_string(compiled.raw.model_bytes)
        for key, value in sorted(notes.items()):
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        return proto


def _from_sklearn(raw: Any, inputs: Sequence[ColumnSpec], name: str) -> Any:
    skl2onnx = _library("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    parts = list(_parts(raw, type(raw).__name__))
    libraries = {type(part).__module__.split(".")[0]: step for step, part in parts}
    if "xgboost" in libraries:
        raise InvalidInput(
            f"The pipeline's step {libraries['xgboost']!r} is an XGBoost model, and XGBoost "
            "steps inside a scikit-learn pipeline are not supported: onnxmltools' converter "
            "registered with skl2onnx gives other probabilities there (XGBoost 3).",
            "Keep serving the original version, or register and compile the XGBoost model on "
            "its own (its inputs already transformed).",
        )
    if "lightgbm" in libraries:
        _register_lightgbm_converters()
    _check_convertible(parts)
    if _per_column(inputs, parts):
        initial = [
            (c.name, (FloatTensorType if c.type in NUMERIC else StringTensorType)([None, 1]))
            for c in inputs
        ]
    else:
        initial = [(INPUT, FloatTensorType([None, len(inputs)]))]
    options = {id(part): {"zipmap": False} for _, part in parts if _is_leaf_classifier(part)}
    with _bools_as_ints():
        return _converted(
            lambda: skl2onnx.convert_sklearn(
                raw, initial_types=initial, options=options, target_opset=TARGET_OPSETS, name=name
            ),
            raw,
            "skl2onnx",
        )


def _from_xgboost(raw: Any, width: int) -> Any:
    """The booster converted (onnxmltools reads features as f0, f1, ..., so a copy drops the
    names; the compiled model takes the columns in training order, as the flavor does)."""
    onnxmltools = _library("onnxmltools")
    from onnxmltools.convert.common.data_types import FloatTensorType

    booster = (raw.get_booster() if hasattr(raw, "get_booster") else raw).copy()
    booster.feature_names = None
    initial = [(INPUT, FloatTensorType([None, width]))]
    return _converted(
        lambda: onnxmltools.convert_xgboost(
            booster, initial_types=initial, target_opset=BOOSTED_OPSET
        ),
        raw,
        "onnxmltools",
    )


def _from_lightgbm(raw: Any, width: int) -> Any:
    """A wrapper is converted whole, so a classifier keeps its class labels (its booster
    knows only 0..n-1); a Booster as it is."""
    onnxmltools = _library("onnxmltools")
    from onnxmltools.convert.common.data_types import FloatTensorType

    initial = [(INPUT, FloatTensorType([None, width]))]
    return _converted(
        lambda: onnxmltools.convert_lightgbm(
            raw, initial_types=initial, target_opset=BOOSTED_OPSET, zipmap=False
        ),
        raw,
        "onnxmltools",
    )


def _converted(convert: Any, raw: Any, library: str) -> Any:
    """`convert()`, with any failure of the converter as InvalidInput naming the model."""
    try:
        return convert()
    except InvalidInput:
        raise
    except Exception as error:  # a converter's own errors: RuntimeError, ValueError, ...
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise InvalidInput(
            f"{library} could not convert the {_qualified(raw)}: {first}",
            "Keep serving the original version; nothing was registered.",
        ) from error


def _parts(estimator: Any, name: str) -> Iterator[tuple[str, Any]]:
    """Every estimator in `estimator` with the name of its step: itself, the steps of a
    Pipeline, the transformers of a ColumnTransformer or FeatureUnion ("drop" and
    "passthrough" left out)."""
    yield name, estimator
    children: list[tuple[str, Any]] = []
    if hasattr(estimator, "steps"):
        children = [(step, part) for step, part in estimator.steps]
    elif hasattr(estimator, "transformers_"):
        children = [(step, part) for step, part, _ in estimator.transformers_]
    elif hasattr(estimator, "transformer_list"):
        children = list(estimator.transformer_list)
    for step, part in children:
        if not isinstance(part, str) and part is not None:
            yield from _parts(part, step)


def _check_convertible(parts: list[tuple[str, Any]]) -> None:
    """InvalidInput naming the first step skl2onnx cannot convert."""
    from skl2onnx._supported_operators import sklearn_operator_name_map

    for step, part in parts:
        if type(part) not in sklearn_operator_name_map:
            raise InvalidInput(
                f"skl2onnx has no converter for the step {step!r} ({_dotted(part)}), so the "
                "model cannot be compiled to ONNX.",
                "Keep serving the original version, or replace that step with one skl2onnx "
                "converts.",
            )
        if type(part).__name__ == "FunctionTransformer" and part.func is not None:
            function = getattr(part.func, "__qualname__", repr(part.func))
            raise InvalidInput(
                f"skl2onnx cannot convert the step {step!r} ({_dotted(part)}): it runs the "
                f"Python function {function}, which an ONNX graph cannot hold.",
                "Keep serving the original version, or express that step with converted "
                "transformers.",
            )


def _per_column(inputs: Sequence[ColumnSpec], parts: list[tuple[str, Any]]) -> bool:
    """One input per column: for a text column, or a step picking columns by name."""
    if any(column.type not in NUMERIC for column in inputs):
        return True
    for _, part in parts:
        for _, _, columns in getattr(part, "transformers_", ()):
            picked = columns if isinstance(columns, list | tuple) else [columns]
            if any(isinstance(c, str) for c in picked) and columns not in ("drop", "passthrough"):
                return True
    return False


def _is_leaf_classifier(part: Any) -> bool:
    from sklearn.base import is_classifier

    return is_classifier(part) and not hasattr(part, "steps")


def _register_lightgbm_converters() -> None:
    """Teach skl2onnx LightGBM's wrappers inside a pipeline, with onnxmltools' converters
    (skl2onnx's documented recipe; registering again replaces the same entry)."""
    _library("onnxmltools")
    import lightgbm
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    update_registered_converter(
        lightgbm.LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        convert_lightgbm,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )
    update_registered_converter(
        lightgbm.LGBMRegressor,
        "LightGbmLGBMRegressor",
        calculate_linear_regressor_output_shapes,
        convert_lightgbm,
    )


@contextlib.contextmanager
def _bools_as_ints() -> Iterator[None]:
    """While converting, node attributes holding booleans are given as ints.

    skl2onnx 1.20 (and earlier) writes HistGradientBoosting trees' `missing_go_to_left` into
    the `nodes_missing_value_tracks_true` ints attribute; since scikit-learn 1.8 those are
    numpy booleans, which protobuf refuses ("Expected an int, got a boolean"). 0 and 1 are what
    ONNX means there. Patched only inside this block, and restored after; the parity check that
    follows every compile proves the graph right. Drop it once skl2onnx casts them itself."""
    import numpy as np
    from skl2onnx.common._container import ModelComponentContainer

    original = ModelComponentContainer.add_node

    def add_node(self: Any, *args: Any, **attrs: Any) -> Any:
        for key, value in attrs.items():
            if isinstance(value, list) and any(isinstance(v, bool | np.bool_) for v in value):
                attrs[key] = [int(v) for v in value]
        return original(self, *args, **attrs)

    ModelComponentContainer.add_node = add_node
    try:
        yield
    finally:
        ModelComponentContainer.add_node = original


def _rows_symbolic(proto: Any) -> None:
    """Make the row count of every output symbolic, as the input's is: onnxmltools declares a
    LightGBM classifier's label output as exactly 1 row, which the served metadata would repeat
    (and onnxruntime warns about on every call)."""
    for output in proto.graph.output:
        shape = output.type.tensor_type.shape
        if output.type.HasField("tensor_type") and len(shape.dim) >= 1:
            first = shape.dim[0]
            if first.HasField("dim_value"):
                first.Clear()


def _load(proto: Any) -> LoadedModel:
    """`proto` stored and loaded by the onnx flavor, as the registry will store and load it."""
    flavor = OnnxFlavor()
    with tempfile.TemporaryDirectory(prefix="loopml-compile-") as folder:
        info = flavor.save(proto, Path(folder) / "model")
        return flavor.load(Path(folder) / "model", info, trust_pickle=False)


def _dotted(model: Any) -> str:
    """`sklearn.preprocessing.FunctionTransformer`: the class where its library exports it."""
    kind = type(model)
    return f"{kind.__module__.split('._')[0]}.{kind.__name__}"


def _qualified(model: Any) -> str:
    return f"{type(model).__name__} ({_dotted(model)})"


def _library(module: str) -> Any:
    """`module`, or InvalidInput naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InvalidInput(
            f"Compiling to ONNX needs the {module} package, which is not installed.", INSTALL
        ) from None
