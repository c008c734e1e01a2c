"""The `data` of one Open Inference Protocol (V2) tensor, checked and decoded to a flat array.

`data` is flat (row-major) or nested to match the tensor's shape. Its elements are checked
against the datatype by the set of their Python types (one pass, no Python call per element)
and by numpy range checks, the rules of `loopml.domain.column_values` for the column types
each datatype feeds:

- BOOL takes true/false; INT and UINT take JSON integers (never booleans) within the datatype's
  range; FP takes JSON numbers (never booleans) within the datatype's range; BYTES takes strings
  of at most `MAX_TEXT_CHARS` characters;
- `null` is a missing value in FP (read as NaN) and BYTES (None) tensors; an INT or BOOL tensor
  cannot carry one (send such a column as FP64).

A malformed `data` (not a list, ragged, not matching the shape) raises `InvalidInput`. An
element the datatype does not take is not a malformed request: it comes back as a `BadElement`
(its row-major index and what it is), so the caller can name the row and the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from loopml.domain.column_values import MAX_TEXT_CHARS, describe
from loopml.errors import InvalidInput

Array = npt.NDArray[Any]

INTEGER_DATATYPES = frozenset(
    {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
)
FLOAT_DATATYPES = frozenset({"FP16", "FP32", "FP64"})
DATATYPES = INTEGER_DATATYPES | FLOAT_DATATYPES | {"BOOL", "BYTES"}
"""Every V2 datatype this codec reads and writes."""

NUMPY_DTYPE = {name: np.dtype(name.lower()) for name in INTEGER_DATATYPES} | {
    f"FP{bits}": np.dtype(f"float{bits}") for bits in (16, 32, 64)
}
NUMPY_DTYPE |= {"BOOL": np.dtype(np.bool_), "BYTES": np.dtype(object)}

_NONE_TYPE = type(None)
_INTEGERS: frozenset[type] = frozenset({int})
_FLOATS: frozenset[type] = frozenset({int, float, _NONE_TYPE})
_TAKES: dict[str, frozenset[type]] = (
    dict.fromkeys(INTEGER_DATATYPES, _INTEGERS)
    | dict.fromkeys(FLOAT_DATATYPES, _FLOATS)
    | {"BOOL": frozenset({bool}), "BYTES": frozenset({str, _NONE_TYPE})}
)
_NONE = np.array(None, dtype=object)
"""Compared against an object array, elementwise: where it holds None."""


@dataclass(frozen=True)
class BadElement:
    """An element of `data` its datatype does not take."""

    index: int
    """Its position in row-major order."""
    found: str
    """What it is: `true, a boolean`, `300, beyond UINT8 [0, 255]`."""


def decode_data(
    label: str, datatype: str, shape: tuple[int, ...], data: object
) -> tuple[Array, BadElement | None]:
    """The data as a flat array of the datatype's dtype, and the first element the datatype does
    not take (the array is then not to be used)."""
    if not isinstance(data, list):
        raise InvalidInput(f"Input {label} has data {data!r}, not a list.", "Send data as a list.")
    try:
        values = np.asarray(data)
    except ValueError:
        raise InvalidInput(
            f"Input {label} has nested data of uneven lengths.", "Nest the data to match its shape."
        ) from None
    _check_shape(label, values, shape)
    elements = np.asarray(data, dtype=object).reshape(-1)  # the JSON values, types intact
    kinds = set(map(type, elements.tolist()))
    if not kinds <= _TAKES[datatype]:
        return elements, _first_refused(datatype, elements)
    if datatype == "BYTES":
        return elements, _too_long(elements)
    if datatype in INTEGER_DATATYPES:
        return _integers(datatype, elements)
    if datatype == "BOOL":
        return values.reshape(-1).astype(np.bool_), None
    nulls = np.equal(elements, _NONE) if _NONE_TYPE in kinds else None
    flat = values.reshape(-1) if nulls is None else np.asarray(elements[~nulls].tolist())
    return _floats(datatype, flat, nulls)


def _check_shape(label: str, values: Array, shape: tuple[int, ...]) -> None:
    if values.ndim > 1 and values.shape != shape:
        raise InvalidInput(
            f"Input {label} has data nested as {list(values.shape)}, but shape {list(shape)}.",
            "Nest the data to match the shape, or send it flat in row-major order.",
        )
    if values.size != math.prod(shape):
        raise InvalidInput(
            f"Input {label} has shape {list(shape)} ({math.prod(shape)} elements) "
            f"but {values.size} data elements.",
            "Send as many data elements as the shape's sizes multiply to.",
        )


def _first_refused(datatype: str, elements: Array) -> BadElement:
    takes = _TAKES[datatype]
    index = next(i for i, value in enumerate(elements.tolist()) if type(value) not in takes)
    value = elements[index]
    if value is None:
        return BadElement(index, f"null, which a {datatype} tensor cannot carry")
    return BadElement(index, describe(value))


def _too_long(elements: Array) -> BadElement | None:
    lengths = np.fromiter(map(len, filter(None, elements.tolist())), dtype=np.int64)
    if not lengths.size or lengths.max() <= MAX_TEXT_CHARS:
        return None
    for index, value in enumerate(elements.tolist()):
        if value is not None and len(value) > MAX_TEXT_CHARS:
            return BadElement(index, f"{describe(value)} longer than {MAX_TEXT_CHARS:,} characters")
    return None  # pragma: no cover - the lengths said one is too long


def _integers(datatype: str, elements: Array) -> tuple[Array, BadElement | None]:
    """Python ints checked against the datatype's range, then converted exactly."""
    info = np.iinfo(NUMPY_DTYPE[datatype])
    if elements.size:
        outside = np.flatnonzero((elements < info.min) | (elements > info.max))
        if outside.size:
            index = int(outside[0])
            found = f"{elements[index]}, beyond {datatype} [{info.min}, {info.max}]"
            return elements, BadElement(index, found)
    return elements.astype(NUMPY_DTYPE[datatype]), None


def _floats(datatype: str, flat: Array, nulls: Array | None) -> tuple[Array, BadElement | None]:
    dtype = NUMPY_DTYPE[datatype]
    with np.errstate(over="ignore"):
        converted = flat.astype(dtype)
    overflow = np.flatnonzero(np.isinf(converted) & np.isfinite(flat.astype(np.float64)))
    if overflow.size:
        present = int(overflow[0])
        index = present if nulls is None else int(np.flatnonzero(~nulls)[present])
        return flat, BadElement(index, f"{float(flat[present])!r}, beyond the range of {datatype}")
    if nulls is None:
        return converted, None
    result = np.full(nulls.shape, np.nan, dtype=dtype)
    result[~nulls] = converted
    return result, None
