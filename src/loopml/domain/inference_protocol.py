"""The Open Inference Protocol (KServe "Predict Protocol Version 2") REST codec, as pure functions:
requests and metadata here, responses in `loopml.domain.inference_responses`.

A request `{"id"?, "parameters"?, "inputs": [{"name", "shape", "datatype", "parameters"?, "data"}],
"outputs"?: [{"name", ...}]}` is decoded into one 1-D numpy column per model input. Two layouts
are accepted:

- one tensor per column, named after it, of shape `[n]` or `[n, 1]` (tensors the model does not
  take are kept, after the model's columns);
- a single 2-D tensor of shape `[n, k]`, not named after a column, whose `k` columns follow the
  signature's order.

`data` is flat (row-major) or nested to match `shape`; its elements are checked against the
datatype by `loopml.domain.tensor_data` (the rules of `loopml.domain.column_values`: a boolean is
not a number, integers fit their datatype, BYTES are strings, `null` is a missing value in FP and
BYTES tensors only). A request whose structure is wrong raises `InvalidInput` (HTTP 400); a
well-formed request holding an element the model cannot take decodes to a `RefusedValue` naming
the row and the field (HTTP 422).

A tensor's datatype must feed its column's loopml type (`FEEDS`): BYTES into a float column is
refused, integers into a float column are fine. Columns keep the tensor's dtype (INT32 -> int32,
BYTES -> object array of str); datetime columns arrive as BYTES strings, left for the caller to
parse. `declared_rows` reads the row count a request declares before any data is decoded, so a
server can refuse an oversized request first.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from loopml.domain.binary_tensors import BinaryData, decode_binary
from loopml.domain.column_values import refusal
from loopml.domain.signature import ColumnType
from loopml.domain.tensor_data import (
    DATATYPES,
    FLOAT_DATATYPES,
    INTEGER_DATATYPES,
    BadElement,
    decode_data,
)
from loopml.errors import InvalidInput

Array = npt.NDArray[Any]

FEEDS: dict[ColumnType, frozenset[str]] = {
    ColumnType.INTEGER: INTEGER_DATATYPES,
    ColumnType.FLOAT: INTEGER_DATATYPES | FLOAT_DATATYPES,
    ColumnType.BOOLEAN: frozenset({"BOOL"}),
    ColumnType.STRING: frozenset({"BYTES"}),
    ColumnType.CATEGORY: frozenset({"BYTES"}),
    ColumnType.DATETIME: frozenset({"BYTES"}),
    ColumnType.OBJECT: DATATYPES,
}
"""For each loopml column type, the V2 datatypes that may feed it."""

DATATYPE_BY_COLUMN_TYPE: dict[ColumnType, str] = dict.fromkeys(ColumnType, "BYTES") | {
    ColumnType.INTEGER: "INT64",
    ColumnType.FLOAT: "FP64",
    ColumnType.BOOLEAN: "BOOL",
}
"""The V2 datatype model metadata advertises for each loopml column type."""

_TENSOR_KEYS = ("name", "shape", "datatype", "data")
_TENSOR_HINT = 'Write each input as {"name": ..., "shape": [...], "datatype": ..., "data": [...]}.'


@dataclass(frozen=True)
class DecodedRequest:
    """An inference request as named 1-D columns of `rows` values each."""

    id: str | None
    columns: Mapping[str, Array]
    rows: int
    requested_outputs: list[str] | None
    parameters: dict[str, Any]
    matrix: Array | None = None
    """The [rows, columns] matrix the columns are views of, when the request sent one tensor
    for all of them (in signature order)."""


@dataclass(frozen=True)
class RefusedValue:
    """A well-formed request holding an element the model cannot take."""

    row: int
    field: str
    message: str
    """`Row 3: field 'tenure' is true, a boolean; the model takes an integer. ...`"""


@dataclass(frozen=True)
class _Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    values: Array
    """Flat, row-major, in the datatype's numpy dtype."""
    bad: BadElement | None = None
    """The first element the datatype does not take (then `values` is not to be used)."""


def decode_infer_request(
    body: Mapping[str, Any], signature_inputs: Sequence[tuple[str, str]]
) -> DecodedRequest | RefusedValue:
    """The columns of a V2 inference request for a model taking `signature_inputs`.

    `signature_inputs` is the model's (column name, loopml type) list, in signature order.
    Raises `InvalidInput` naming the input and the problem when the request is malformed;
    returns a `RefusedValue` when it is well-formed but holds a value the model cannot take.
    """
    if not isinstance(body, Mapping) or "inputs" not in body:
        raise InvalidInput(
            'The inference request has no "inputs".',
            'Send {"inputs": [{"name": ..., "shape": [...], "datatype": ..., "data": [...]}]}.',
        )
    request_id, parameters = _request_id(body), _parameters(body)
    requested_outputs = _requested_outputs(body)
    signature, positions = _typed_signature(tuple(signature_inputs))
    tensors = _parse_tensors(body["inputs"])
    matrix = None
    columns: Mapping[str, Array]
    if _is_matrix_layout(tensors, signature):
        matrix = _matrix(tensors[0], signature)
        rows = len(matrix)
        columns = _MatrixColumns(matrix, positions)
    else:
        columns, rows = _columns_by_name(tensors, signature)
    refused = _refused(tensors, signature, matrix is not None)
    if refused is not None:
        return refused
    return DecodedRequest(request_id, columns, rows, requested_outputs, parameters, matrix)


def declared_rows(body: object) -> int:
    """The most rows any input of the request declares in its shape (0 if none can be read):
    a bound on the rows it holds, known before its data is decoded."""
    inputs = body.get("inputs") if isinstance(body, Mapping) else None
    rows = 0
    for item in inputs if isinstance(inputs, list) else []:
        shape = item.get("shape") if isinstance(item, Mapping) else None
        first = shape[0] if isinstance(shape, list) and shape else None
        if isinstance(first, int) and not isinstance(first, bool):
            rows = max(rows, first)
    return rows


_TAKES_LABEL = (
    dict.fromkeys(INTEGER_DATATYPES, "integers within its range")
    | dict.fromkeys(FLOAT_DATATYPES, "numbers within its range, or null for a missing value")
    | {"BOOL": "true or false", "BYTES": "strings, or null for a missing value"}
)


def _refused(
    tensors: list[_Tensor], signature: Sequence[tuple[str, ColumnType]], matrix: bool
) -> RefusedValue | None:
    """The first element (by row, then signature order) the model cannot take, or None."""
    if all(tensor.bad is None for tensor in tensors):
        return None
    types = dict(signature)
    found: list[RefusedValue] = []
    for tensor in tensors:
        if tensor.bad is None:
            continue
        width = max(1, math.prod(tensor.shape[1:]))
        row, column = divmod(tensor.bad.index, width)
        field = signature[column][0] if matrix else tensor.name
        if types.get(field, ColumnType.OBJECT) is not ColumnType.OBJECT:
            message = f"Row {row}: {refusal(field, tensor.bad.found, types[field])}"
        else:  # the datatype, not the column, is what refuses it
            message = (
                f"Row {row}: field {field!r} is {tensor.bad.found}; the {tensor.datatype} "
                f"tensor takes {_TAKES_LABEL[tensor.datatype]}."
            )
        found.append(RefusedValue(row, field, message))
    order = {name: index for index, (name, _) in enumerate(signature)}
    return min(found, key=lambda r: (r.row, order.get(r.field, len(order))), default=None)


def server_metadata(name: str, version: str) -> dict[str, Any]:
    """The V2 server metadata body, with the protocol extensions loopml implements."""
    return {"name": name, "version": version, "extensions": ["binary_tensor_data"]}


def model_metadata(
    name: str,
    versions: Sequence[str],
    platform: str,
    inputs: Sequence[tuple[str, str]],
    outputs: Sequence[tuple[str, str]],
) -> dict[str, Any]:
    """The V2 model metadata body; every tensor has shape [-1] (any number of rows)."""
    return {
        "name": name,
        "versions": list(versions),
        "platform": platform,
        "inputs": _tensor_metadata(inputs),
        "outputs": _tensor_metadata(outputs),
    }


def _tensor_metadata(columns: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "datatype": DATATYPE_BY_COLUMN_TYPE[_column_type(name, type_)],
            "shape": [-1],
        }
        for name, type_ in columns
    ]


def _column_type(name: str, type_: str) -> ColumnType:
    try:
        return ColumnType(type_)
    except ValueError:
        allowed = ", ".join(t.value for t in ColumnType)
        raise InvalidInput(
            f"Signature column {name!r} has type {type_!r}.", f"Use one of: {allowed}."
        ) from None


def _request_id(body: Mapping[str, Any]) -> str | None:
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput(
            f'The request "id" is {request_id!r}, not a string.', "Send the id as a string."
        )
    return request_id


def _parameters(body: Mapping[str, Any]) -> dict[str, Any]:
    parameters = body.get("parameters", {})
    if not isinstance(parameters, Mapping):
        raise InvalidInput(
            f'The request "parameters" is {parameters!r}, not an object.',
            'Send "parameters" as a JSON object, or leave it out.',
        )
    return dict(parameters)


def _requested_outputs(body: Mapping[str, Any]) -> list[str] | None:
    outputs = body.get("outputs")
    if outputs is None:
        return None
    items = outputs if isinstance(outputs, list) else [None]
    names = [item.get("name") if isinstance(item, Mapping) else None for item in items]
    if not all(isinstance(name, str) for name in names):
        raise InvalidInput(
            f'The request "outputs" is {outputs!r}; each requested output needs a "name".',
            'Send "outputs": [{"name": "prediction"}], or leave it out for all outputs.',
        )
    return [name for name in names if isinstance(name, str)]


def _parse_tensors(inputs: object) -> list[_Tensor]:
    if not isinstance(inputs, list):
        raise InvalidInput(
            f'The request "inputs" is {type(inputs).__name__}, not a list.',
            'Send "inputs" as a list of tensors.',
        )
    tensors = [_parse_tensor(item, index) for index, item in enumerate(inputs)]
    names = [tensor.name for tensor in tensors]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidInput(f"The inputs repeat the names {repeated}.", "Send each input once.")
    return tensors


def _parse_tensor(item: object, index: int) -> _Tensor:
    label = f"inputs[{index}]"
    if not isinstance(item, Mapping):
        raise InvalidInput(f"Input {label} is {item!r}, not an object.", _TENSOR_HINT)
    if isinstance(item.get("name"), str):
        label = repr(item["name"])
    missing = ", ".join(repr(key) for key in _TENSOR_KEYS if key not in item)
    if missing or not isinstance(item["name"], str):
        raise InvalidInput(f"Input {label} lacks {missing or 'a string name'}.", _TENSOR_HINT)
    datatype = item["datatype"]
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise InvalidInput(
            f"Input {label} has datatype {datatype!r}.",
            f"Use one of: {', '.join(sorted(DATATYPES))}.",
        )
    shape = _shape(label, item["shape"])
    data = item["data"]
    if isinstance(data, BinaryData):
        values, bad = decode_binary(label, datatype, shape, data.raw)
    else:
        values, bad = decode_data(label, datatype, shape, data)
    return _Tensor(item["name"], datatype, shape, values, bad)


def _shape(label: str, shape: object) -> tuple[int, ...]:
    if not isinstance(shape, list) or not all(
        isinstance(size, int) and not isinstance(size, bool) and size >= 0 for size in shape
    ):
        raise InvalidInput(
            f"Input {label} has shape {shape!r}.", "Give the shape as a list of sizes >= 0."
        )
    return tuple(shape)


def _is_matrix_layout(tensors: list[_Tensor], signature: Sequence[tuple[str, ColumnType]]) -> bool:
    if len(tensors) != 1 or len(tensors[0].shape) != 2:
        return False
    return all(name != tensors[0].name for name, _ in signature)


@functools.lru_cache(maxsize=64)
def _typed_signature(
    inputs: tuple[tuple[str, str], ...],
) -> tuple[tuple[tuple[str, ColumnType], ...], dict[str, int]]:
    """A served signature's columns with their types, and each column's position (a server
    decodes every request against the same few signatures)."""
    signature = tuple((name, _column_type(name, type_)) for name, type_ in inputs)
    return signature, {name: index for index, (name, _) in enumerate(signature)}


class _MatrixColumns(Mapping[str, Array]):
    """The columns of a [rows, columns] matrix by name, each a view taken when asked for."""

    def __init__(self, matrix: Array, positions: Mapping[str, int]) -> None:
        self._matrix, self._positions = matrix, positions

    def __getitem__(self, name: str) -> Array:
        return self._matrix[:, self._positions[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._positions)

    def __len__(self) -> int:
        return len(self._positions)


def _matrix(tensor: _Tensor, signature: Sequence[tuple[str, ColumnType]]) -> Array:
    """The one tensor's values as a [rows, columns] matrix, once its width and its datatype
    are checked against every column it feeds."""
    rows, width = tensor.shape
    if width != len(signature):
        raise InvalidInput(
            f"Input {tensor.name!r} has shape {list(tensor.shape)}: {width} columns, but the "
            f"model takes {len(signature)} ({', '.join(name for name, _ in signature)}).",
            "Send one column per model input, in signature order, or one tensor per column.",
        )
    checked: set[ColumnType] = set()
    for name, column_type in signature:  # once per type: the first column it cannot feed
        if column_type not in checked:
            checked.add(column_type)
            _check_feeds(tensor, name, column_type)
    return tensor.values.reshape(rows, width)


def _columns_by_name(
    tensors: list[_Tensor], signature: Sequence[tuple[str, ColumnType]]
) -> tuple[dict[str, Array], int]:
    by_name = {tensor.name: tensor for tensor in tensors}
    missing = [name for name, _ in signature if name not in by_name]
    if missing:
        raise InvalidInput(
            f"The request lacks the model inputs {missing}; it has {sorted(by_name)}.",
            "Send one tensor per model input, named after the column, or one [n, k] tensor.",
        )
    for tensor in tensors:
        if len(tensor.shape) not in (1, 2) or tensor.shape[1:] not in ((), (1,)):
            raise InvalidInput(
                f"Input {tensor.name!r} has shape {list(tensor.shape)}; a column is [n] or [n, 1].",
                "Send one tensor per column, or a single [n, k] tensor for all columns.",
            )
    for name, column_type in signature:
        _check_feeds(by_name[name], name, column_type)
    ordered = [name for name, _ in signature] + [n for n in by_name if n not in dict(signature)]
    return {name: by_name[name].values for name in ordered}, _row_count(tensors)


def _row_count(tensors: list[_Tensor]) -> int:
    rows = {tensor.name: tensor.shape[0] for tensor in tensors}
    if len(set(rows.values())) > 1:
        raise InvalidInput(
            f"The inputs have different row counts: {rows}.",
            "Send the same number of rows in every input.",
        )
    return next(iter(rows.values()), 0)


def _check_feeds(tensor: _Tensor, column: str, column_type: ColumnType) -> None:
    if tensor.datatype not in FEEDS[column_type]:
        allowed = ", ".join(sorted(FEEDS[column_type]))
        raise InvalidInput(
            f"Input {tensor.name!r} is {tensor.datatype}, which cannot feed the "
            f"{column_type.value} column {column!r}.",
            f"Send {column!r} as one of: {allowed}.",
        )
