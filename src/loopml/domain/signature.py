"""Model signatures: the named, typed columns a model takes in and gives back.

`infer_signature` reads an example without importing pandas: a data frame is anything with
`.columns` and `.dtypes` (and `frame[name]` for object columns), besides a dict of lists and a
numpy array.
Unnamed array columns are called "0".."n-1"; a one-dimensional output is the column "prediction".
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from loopml.errors import InvalidInput

SIGNATURE_SCHEMA_VERSION = 1
PREDICTION_COLUMN = "prediction"


class ColumnType(StrEnum):
    """The logical type of a column, independent of the library that holds it."""

    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    STRING = "string"
    DATETIME = "datetime"
    CATEGORY = "category"
    OBJECT = "object"


ACCEPTS: dict[ColumnType, frozenset[ColumnType]] = {
    ColumnType.INTEGER: frozenset({ColumnType.INTEGER}),
    ColumnType.FLOAT: frozenset({ColumnType.FLOAT, ColumnType.INTEGER}),
    ColumnType.BOOLEAN: frozenset({ColumnType.BOOLEAN}),
    ColumnType.STRING: frozenset({ColumnType.STRING, ColumnType.CATEGORY}),
    ColumnType.CATEGORY: frozenset({ColumnType.CATEGORY, ColumnType.STRING}),
    ColumnType.DATETIME: frozenset({ColumnType.DATETIME}),
    ColumnType.OBJECT: frozenset(ColumnType),
}
"""For each type a model expects, the types of incoming columns it takes without a problem."""

_TYPE_BY_DTYPE_KIND = {
    "i": ColumnType.INTEGER,
    "u": ColumnType.INTEGER,
    "f": ColumnType.FLOAT,
    "b": ColumnType.BOOLEAN,
    "M": ColumnType.DATETIME,
    "U": ColumnType.STRING,
    "S": ColumnType.STRING,
}


@dataclass(frozen=True)
class ColumnSpec:
    """One named column and its logical type."""

    name: str
    type: ColumnType

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "type": self.type.value}


@dataclass(frozen=True)
class Signature:
    """The columns a model takes (`inputs`) and gives back (`outputs`, empty when unknown)."""

    inputs: tuple[ColumnSpec, ...]
    outputs: tuple[ColumnSpec, ...] = ()

    def __post_init__(self) -> None:
        for side, columns in (("inputs", self.inputs), ("outputs", self.outputs)):
            _require_unique([column.name for column in columns], side)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SIGNATURE_SCHEMA_VERSION,
            "inputs": [column.to_dict() for column in self.inputs],
            "outputs": [column.to_dict() for column in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        version = data.get("schema_version")
        if version != SIGNATURE_SCHEMA_VERSION:
            raise InvalidInput(
                f"Signature has schema_version {version!r}; this loopml reads version "
                f"{SIGNATURE_SCHEMA_VERSION}.",
                "Upgrade loopml, or register the model again to write a current signature.",
            )
        return cls(
            inputs=_columns_from_list(data.get("inputs", []), "inputs"),
            outputs=_columns_from_list(data.get("outputs", []), "outputs"),
        )


def infer_signature(input_example: object, output_example: object = None) -> Signature:
    """The signature of a model that takes `input_example` and returns `output_example`.

    Examples are a data frame (duck-typed), a dict of lists or arrays, or a numpy array.
    """
    outputs = () if output_example is None else _output_columns(output_example)
    return Signature(inputs=_table_columns(input_example, "input"), outputs=outputs)


def check_input(signature: Signature, frame_columns_and_types: Mapping[str, str]) -> list[str]:
    """Problems that keep a frame with these column types from reaching the model; empty if none.

    Columns the model does not use are not a problem. Integers are fine for a float column, and
    strings and categories stand in for each other.
    """
    problems: list[str] = []
    for column in signature.inputs:
        if column.name not in frame_columns_and_types:
            problems.append(f"missing column {column.name!r}")
            continue
        given = frame_columns_and_types[column.name]
        if given not in ACCEPTS[column.type]:
            problems.append(
                f"column {column.name!r} is {given}, the model expects {column.type.value}"
            )
    return problems


def tensor_signature(tensors: Mapping[str, Any], example: Signature | None) -> Signature:
    """The signature of a model whose graph declares its tensors (ONNX), `example`'s columns
    (when one was given) fitted to them: the graph is the truth for the types.

    `tensors` is {"inputs": [...], "outputs": [...]}, each {"name", "dtype" (a numpy dtype name),
    "shape" (None for a varying size)}. One `[rows, k]` input is k columns, named as the
    example's are ("0".."k-1" without one); `[rows]` or `[rows, 1]` inputs are a column each,
    named after the input. The first output is the `prediction` column, unless the example
    named its outputs. Other inputs (an image batch) keep the example's columns.
    """
    given = example.inputs if example is not None else ()
    inputs = [
        (str(t["name"]), t.get("shape"), _tensor_type(t.get("dtype"))) for t in tensors["inputs"]
    ]
    columns = given
    only = inputs[0][1] if len(inputs) == 1 else None
    if only is not None and len(only) == 2 and only[1] != 1:  # one [rows, k] input
        name, _, column_type = inputs[0]
        width = only[1]
        if given and width is not None and len(given) != width:
            raise InvalidInput(
                f"The input example has {len(given)} columns; the model's input {name!r} takes "
                f"{width}.",
                f"Pass an example of exactly the model's {width} feature columns, in order.",
            )
        names = [c.name for c in given] or [str(i) for i in range(width or 0)]
        columns = tuple(ColumnSpec(n, column_type) for n in names)
    elif all(shape is None or len(shape) == 1 or shape[1:] == [1] for _, shape, _ in inputs):
        columns = tuple(ColumnSpec(name, column_type) for name, _, column_type in inputs)
    outputs = example.outputs if example is not None else ()
    if not outputs and tensors.get("outputs"):
        first = tensors["outputs"][0]
        outputs = (ColumnSpec(PREDICTION_COLUMN, _tensor_type(first.get("dtype"))),)
    return Signature(inputs=columns, outputs=outputs)


def _tensor_type(dtype: object) -> ColumnType:
    """The column type of a tensor's element type: numpy's name for it, `object` for strings."""
    try:
        return _dtype_type(np.dtype(str(dtype))) or ColumnType.STRING
    except TypeError:  # a type numpy lacks (bfloat16)
        return ColumnType.OBJECT


def _table_columns(example: object, side: str) -> tuple[ColumnSpec, ...]:
    if isinstance(example, Mapping):
        return _mapping_columns(example)
    if hasattr(example, "columns") and hasattr(example, "dtypes"):
        return _frame_columns(example)
    if isinstance(example, np.ndarray):
        return _array_columns(example)
    raise InvalidInput(
        f"Cannot infer a signature from an {side} example of type {type(example).__name__}.",
        "Pass a data frame, a dict of column name -> list of values, or a 2-D numpy array.",
    )


def _output_columns(example: object) -> tuple[ColumnSpec, ...]:
    """One "prediction" column for a 1-D example or a single-column array, else named columns."""
    if isinstance(example, np.ndarray) and example.dtype.names is None and example.ndim == 2:
        if example.shape[1] == 1:
            return (ColumnSpec(PREDICTION_COLUMN, _column_type(example[:, 0])),)
        return _array_columns(example)
    one_dimensional = getattr(example, "ndim", None) == 1 and hasattr(example, "dtype")
    if isinstance(example, list | tuple) or (one_dimensional and not _is_structured(example)):
        return (ColumnSpec(PREDICTION_COLUMN, _column_type(example)),)
    return _table_columns(example, "output")


def _is_structured(example: object) -> bool:
    return isinstance(example, np.ndarray) and example.dtype.names is not None


def _frame_columns(frame: Any) -> tuple[ColumnSpec, ...]:
    _require_unique([str(name) for name in frame.columns], "input")
    columns = []
    for name, dtype in zip(frame.columns, frame.dtypes, strict=True):
        column_type = _dtype_type(dtype)
        if column_type is None:
            column_type = _values_type(frame[name])
        columns.append(ColumnSpec(str(name), column_type))
    return tuple(columns)


def _mapping_columns(mapping: Mapping[Any, Any]) -> tuple[ColumnSpec, ...]:
    columns = [ColumnSpec(str(name), _column_type(values)) for name, values in mapping.items()]
    _require_unique([column.name for column in columns], "input")
    return tuple(columns)


def _array_columns(array: np.ndarray[Any, Any]) -> tuple[ColumnSpec, ...]:
    if array.dtype.names is not None:
        return tuple(ColumnSpec(name, _column_type(array[name])) for name in array.dtype.names)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2:
        raise InvalidInput(
            f"Cannot infer a signature from a {array.ndim}-D array; columns need 1-D or 2-D.",
            "Reshape the example to (rows, columns), or pass a data frame.",
        )
    return tuple(ColumnSpec(str(i), _column_type(array[:, i])) for i in range(array.shape[1]))


def _column_type(values: Any) -> ColumnType:
    """The type of one column: an array or series by its dtype, anything else by its values."""
    dtype = getattr(values, "dtype", None)
    column_type = None if dtype is None else _dtype_type(dtype)
    return _values_type(values) if column_type is None else column_type


def _dtype_type(dtype: Any) -> ColumnType | None:
    """The type a numpy or pandas dtype stands for; None for object dtype (ask the values)."""
    name = str(dtype)
    if name == "category":
        return ColumnType.CATEGORY
    if name in ("str", "string") or name.startswith("string["):
        return ColumnType.STRING
    kind = getattr(dtype, "kind", "O")
    if kind == "O":
        return None
    return _TYPE_BY_DTYPE_KIND.get(kind, ColumnType.OBJECT)


def _values_type(values: Iterable[object]) -> ColumnType:
    """The one type all present values share (ints with floats make float), else object."""
    kinds: set[ColumnType] = set()
    saw_nan = False
    for value in values:
        if _is_missing(value):
            saw_nan = saw_nan or isinstance(value, float)
            continue
        kinds.add(_value_type(value))
    if saw_nan and kinds <= {ColumnType.INTEGER, ColumnType.FLOAT}:
        kinds.add(ColumnType.FLOAT)
    if kinds == {ColumnType.INTEGER, ColumnType.FLOAT}:
        return ColumnType.FLOAT
    return kinds.pop() if len(kinds) == 1 else ColumnType.OBJECT


def _value_type(value: object) -> ColumnType:
    if isinstance(value, bool | np.bool_):
        return ColumnType.BOOLEAN
    if isinstance(value, int | np.integer):
        return ColumnType.INTEGER
    if isinstance(value, float | np.floating):
        return ColumnType.FLOAT
    if isinstance(value, str):
        return ColumnType.STRING
    if isinstance(value, dt.date | np.datetime64):
        return ColumnType.DATETIME
    return ColumnType.OBJECT


def _is_missing(value: object) -> bool:
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def _columns_from_list(items: object, side: str) -> tuple[ColumnSpec, ...]:
    if not isinstance(items, list):
        raise InvalidInput(
            f"Signature {side} must be a list of columns, got {type(items).__name__}.",
            'Write each column as {"name": ..., "type": ...}.',
        )
    return tuple(_column_from_dict(item, side) for item in items)


def _column_from_dict(item: object, side: str) -> ColumnSpec:
    allowed = ", ".join(t.value for t in ColumnType)
    if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
        raise InvalidInput(
            f"Signature {side} holds {item!r}, which is not a column.",
            'Write each column as {"name": ..., "type": ...} with a string name.',
        )
    try:
        column_type = ColumnType(str(item.get("type")))
    except ValueError:
        raise InvalidInput(
            f"Signature column {item['name']!r} has type {item.get('type')!r}.",
            f"Use one of: {allowed}.",
        ) from None
    return ColumnSpec(item["name"], column_type)


def _require_unique(names: list[str], side: str) -> None:
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise InvalidInput(
            f"The {side} columns repeat the names {duplicates}.",
            "Give every column its own name.",
        )
