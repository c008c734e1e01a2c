"""An ONNX model loaded in onnxruntime, called like a scikit-learn model.

`predict(frame)` and `predict_proba(frame)` take a data frame (or a 2-D array, which the model
server passes for numeric inputs) and feed the session's inputs, as the flavor recorded them:

- one 2-D input `[rows, k]` (skl2onnx's default, a PyTorch or Keras export): the frame's `k`
  columns in their order (the signature's order when the server calls), cast to its element type;
- one input per column, each `[rows]` or `[rows, 1]` (skl2onnx with per-column inputs): each
  column by its name, cast to that input's element type (strings for a string input).

Outputs: for a classifier (a label output and a probabilities output) `predict` gives the labels
and `predict_proba` the probabilities as `[rows, classes]` in the order of `classes_` (a ZipMap's
list of {class: probability} dicts is turned into that array); any other model's `predict` gives
its first output, with a trailing dimension of 1 squeezed away.

`run(feeds)` is the raw tensor access: named arrays in, every (or the named) output out, as
onnxruntime gives them, for graphs a table does not map to (an image batch, several tensors).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loopml.errors import InvalidInput


@dataclass(frozen=True)
class Tensor:
    """One graph input or output as the flavor records it."""

    name: str
    dtype: str | None
    """The element type as a numpy dtype name (`object` for strings); None if not a tensor."""
    shape: tuple[int | None, ...] | None
    """Sizes, None for a symbolic one (the rows); None when the rank is unknown."""
    kind: str = "tensor"
    """`tensor`, `map_sequence` (a ZipMap: one {class: probability} dict per row) or `other`."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tensor:
        shape = data.get("shape")
        return cls(
            str(data["name"]),
            data.get("dtype"),
            None if shape is None else tuple(shape),
            str(data.get("kind", "tensor")),
        )

    def to_dict(self) -> dict[str, Any]:
        shape = None if self.shape is None else list(self.shape)
        return {"name": self.name, "dtype": self.dtype, "shape": shape, "kind": self.kind}


class OnnxModel:
    """A loaded ONNX model that predicts; `session` is its onnxruntime InferenceSession."""

    def __init__(
        self,
        session: Any,
        model_bytes: bytes,
        inputs: Sequence[Tensor],
        predict_output: str,
    ) -> None:
        self.session = session
        self.model_bytes = model_bytes
        """The model file's bytes: `onnx.load_from_string(model.model_bytes)` gives the proto."""
        self.inputs = tuple(inputs)
        self.predict_output = predict_output
        self._layout = _layout(self.inputs)

    def predict(self, frame: Any) -> Any:
        """The model's prediction per row: labels for a classifier, else its first output."""
        (values,) = self.session.run([self.predict_output], self._feeds(frame))
        return _predictions(values)

    def run(self, feeds: Mapping[str, Any], outputs: Sequence[str] | None = None) -> dict[str, Any]:
        """Raw tensors: `feeds` by input name, the named `outputs` (all when None) by name."""
        names = list(outputs) if outputs is not None else [o.name for o in self._outputs()]
        return dict(zip(names, self.session.run(names, dict(feeds)), strict=True))

    def _outputs(self) -> list[Any]:
        return list(self.session.get_outputs())

    def _feeds(self, frame: Any) -> dict[str, Any]:
        if self._layout == "matrix":
            return {self.inputs[0].name: _matrix(self.inputs[0], frame)}
        if self._layout == "columns":
            return _columns(self.inputs, frame)
        shapes = ", ".join(f"{t.name} {list(t.shape or ())}" for t in self.inputs)
        raise InvalidInput(
            f"This ONNX model takes tensors a table's columns do not map to ({shapes}).",
            "Call model.raw.run({input name: array, ...}) with arrays of those shapes.",
        )


class OnnxClassifier(OnnxModel):
    """An ONNX classifier: `predict` gives labels, `predict_proba` class probabilities."""

    def __init__(
        self,
        session: Any,
        model_bytes: bytes,
        inputs: Sequence[Tensor],
        predict_output: str,
        *,
        proba: Tensor,
        classes: Sequence[Any],
    ) -> None:
        super().__init__(session, model_bytes, inputs, predict_output)
        self.proba_output = proba
        self.classes_ = np.asarray(classes)

    def predict_proba(self, frame: Any) -> Any:
        """`[rows, classes]` probabilities, columns in the order of `classes_`."""
        (values,) = self.session.run([self.proba_output.name], self._feeds(frame))
        return self._probabilities(values)

    def predict_with_proba(self, frame: Any) -> tuple[Any, Any]:
        """`predict` and `predict_proba` from one run of the graph, which computes both."""
        outputs = [self.predict_output, self.proba_output.name]
        labels, values = self.session.run(outputs, self._feeds(frame))
        return _predictions(labels), self._probabilities(values)

    def _probabilities(self, values: Any) -> Any:
        if self.proba_output.kind == "map_sequence":
            return _from_zipmap(values, self.classes_.tolist())
        return np.asarray(values)


def _predictions(values: Any) -> Any:
    """An output as `predict` gives it: a trailing dimension of 1 squeezed away."""
    values = np.asarray(values)
    return values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values


def _from_zipmap(rows: list[dict[Any, float]], classes: list[Any]) -> Any:
    """One {class: probability} dict per row (a ZipMap's output) as a `[rows, classes]` array.

    onnxruntime builds these dicts in Python already, so one more pass over them costs little
    next to it; a model exported without ZipMap gives the array directly."""
    if not rows:
        return np.zeros((0, len(classes)), dtype=np.float32)
    order = classes or list(rows[0])
    return np.array([[row[c] for c in order] for row in rows], dtype=np.float32)


def _layout(inputs: tuple[Tensor, ...]) -> str:
    """`matrix` (one [rows, k] input), `columns` (one [rows] or [rows, 1] input per column), or
    `tensors` (neither: only `run` feeds it)."""
    shape = inputs[0].shape if len(inputs) == 1 else None
    if shape is not None and len(shape) == 2 and shape[1] != 1:
        return "matrix"
    if all(t.shape is None or len(t.shape) == 1 or tuple(t.shape[1:]) == (1,) for t in inputs):
        return "columns"
    return "tensors"


def _numpy_values(frame: Any) -> Any:
    to_numpy = getattr(frame, "to_numpy", None)
    return to_numpy() if callable(to_numpy) else np.asarray(frame)


def _cast(values: Any, dtype: str | None, what: str) -> Any:
    if dtype == "object":  # an ONNX string tensor: Python str, missing values as ""
        values = np.asarray(values, dtype=object)
        missing = np.asarray([_missing(v) for v in values.reshape(-1)]).reshape(values.shape)
        return np.where(missing, "", values.astype(str)).astype(object)
    try:
        return np.asarray(values).astype(dtype or "float32")
    except (TypeError, ValueError) as error:
        raise InvalidInput(
            f"The ONNX model takes {dtype} for {what}, and the values given do not convert: "
            f"{error}.",
            f"Send {what} as numbers.",
        ) from None


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _matrix(tensor: Tensor, frame: Any) -> Any:
    values = _numpy_values(frame)
    if values.ndim == 1:
        values = values.reshape(-1, 1)
    width = tensor.shape[1] if tensor.shape else None
    if values.ndim != 2 or (width is not None and values.shape[1] != width):
        raise InvalidInput(
            f"The ONNX model's input {tensor.name!r} takes {width} columns; the frame has "
            f"{values.shape[1] if values.ndim == 2 else values.shape}.",
            f"Pass a frame of exactly the model's {width} feature columns, in training order.",
        )
    return _cast(values, tensor.dtype, f"input {tensor.name!r}")


def _columns(inputs: tuple[Tensor, ...], frame: Any) -> dict[str, Any]:
    """Each input from the frame's column of its name (or, when the frame names none of them and
    has as many columns, from the column in its position)."""
    names = [str(c) for c in getattr(frame, "columns", [])]
    by_name = all(t.name in names for t in inputs)
    if not by_name and (names and any(t.name in names for t in inputs)):
        missing = [t.name for t in inputs if t.name not in names]
        raise InvalidInput(
            f"The ONNX model takes the columns {missing}, which the frame lacks.",
            "Pass a frame with a column named after each of the model's inputs.",
        )
    values = _numpy_values(frame)
    if not by_name and (values.ndim != 2 or values.shape[1] != len(inputs)):
        raise InvalidInput(
            f"The ONNX model takes {len(inputs)} columns ({', '.join(t.name for t in inputs)}); "
            f"the frame has {values.shape[1] if values.ndim == 2 else 1}.",
            "Pass a frame with a column named after each of the model's inputs.",
        )
    feeds = {}
    for position, tensor in enumerate(inputs):
        column = _numpy_values(frame[tensor.name]) if by_name else values[:, position]
        rank_one = tensor.shape is not None and len(tensor.shape) == 1
        shaped = column.reshape(-1) if rank_one else column.reshape(-1, 1)
        feeds[tensor.name] = _cast(shaped, tensor.dtype, f"column {tensor.name!r}")
    return feeds
