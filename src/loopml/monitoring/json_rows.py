"""The slow path of reading the prediction log's JSON: rows parsed one by one (orjson, then the
standard library, which also reads NaN, Infinity and 1e999), for the blocks of a window Arrow
refused. Each column's values are grouped by JSON type and each group is read by the same
vectorised code as Arrow's columns (`loopml.monitoring.column_kinds`), so a value reads the same
whichever path it took."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from loopml.monitoring.column_kinds import (
    BOOLEAN,
    CATEGORICAL,
    NUMERIC,
    ROW,
    TARGETS,
    VECTOR,
    Mask,
    Parsed,
    Problems,
    Rows,
    empty_table,
    found_in,
    read_column,
)


def parse_rows(lines: pa.Array) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """Each row parsed on its own: the objects ({} for a row that is none), and the rows that
    are not one JSON object, with why."""
    import orjson

    objects: list[dict[str, Any]] = []
    broken: dict[int, str] = {}
    for index, raw in enumerate(lines.cast(pa.binary()).to_pylist()):
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            value = _lenient(raw)
            if value is _INVALID:
                broken[index] = "invalid_json"
                value = {}
        if not isinstance(value, dict):
            broken[index] = "not_an_object"
            value = {}
        objects.append(value)
    return objects, broken


_INVALID = object()


def _lenient(raw: bytes) -> Any:
    """JSON orjson refuses that the standard library reads (NaN, Infinity, 1e999), if its text
    is valid UTF-8 all through; else `_INVALID`."""
    try:
        value = json.loads(raw)
        json.dumps(value, ensure_ascii=False).encode()  # lone surrogates cannot be stored
    except (ValueError, RecursionError):  # UnicodeError is a ValueError
        return _INVALID
    return value


def majority_kinds(objects: list[dict[str, Any]]) -> dict[str, str]:
    """Per column, the kind most of its values have: numbers, booleans, else text."""
    tallies: dict[str, list[int]] = {}
    for obj in objects:
        for name, value in obj.items():
            tally = tallies.setdefault(name, [0, 0, 0])
            if isinstance(value, bool):
                tally[1] += 1
            elif isinstance(value, int | float):
                tally[0] += 1
            elif isinstance(value, str):
                tally[2] += 1
    kinds = {}
    for name, (numbers, booleans, strings) in tallies.items():
        if numbers and numbers >= max(booleans, strings):
            kinds[name] = NUMERIC
        elif booleans > strings:
            kinds[name] = BOOLEAN
        else:
            kinds[name] = CATEGORICAL
    return kinds


def read_rows(
    objects: list[dict[str, Any]],
    broken: dict[int, str],
    kinds: Mapping[str, str],
    counted: Mapping[str, str] | None,
) -> Parsed:
    """Parsed rows as a table; values are grouped by JSON type and each group is read by the
    same vectorised code as Arrow's columns, so both paths agree."""
    why = sorted({*broken.values()})
    found = found_in(ROW, [(k, _rows_mask(broken, k, len(objects))) for k in why])
    names = list(dict.fromkeys(itertools.chain.from_iterable(objects)))
    columns: dict[str, pa.Array] = {}
    for name in names:
        kind = kinds.get(name, CATEGORICAL)
        values = np.fromiter(map(dict.get, objects, itertools.repeat(name)), object, len(objects))
        columns[name], problems = _conform_values(values, kind)
        if counted is None or name in counted:
            found += found_in(name, problems)
    return Parsed(pa.table(columns) if columns else empty_table(len(objects)), tuple(found))


def _rows_mask(broken: dict[int, str], kind: str, rows: int) -> Mask:
    mask = np.zeros(rows, dtype=bool)
    mask[[i for i, k in broken.items() if k == kind]] = True
    return mask


_MISSING = 0
_CODES: dict[type, int] = {
    type(None): _MISSING,
    bool: 1,
    int: 2,
    float: 2,
    str: 3,
    list: 4,
    dict: 5,
}
"""The JSON type of a parsed value, as a code (int and float are both numbers)."""
_NAMES = {1: "boolean", 2: "number", 3: "text", 4: "list", 5: "object"}


def _conform_values(values: NDArray[Any], kind: str) -> tuple[pa.Array, Problems]:
    """Python values of one column (None where missing) read as `kind`."""
    rows = len(values)
    codes = np.fromiter(map(_CODES.__getitem__, map(type, values)), np.int8, rows)
    target = TARGETS[kind]
    parts: list[pa.Array] = []
    order: list[Rows] = []
    problems: Problems = []
    for code in np.unique(codes):
        indices = np.flatnonzero(codes == code)
        order.append(indices)
        if code == _MISSING:
            parts.append(pa.nulls(indices.size, target))
            continue
        array, found = _group_array(_NAMES[int(code)], values[indices].tolist(), kind)
        conformed, group_problems = read_column(array, kind)
        parts.append(conformed.cast(target))
        problems += [
            (what, _spread(mask, indices, rows)) for what, mask in (*found, *group_problems)
        ]
    inverse = np.empty(rows, dtype=np.int64)
    inverse[np.concatenate(order)] = np.arange(rows)
    return pa.concat_arrays(parts).take(pa.array(inverse)), problems


def _spread(mask: Mask, indices: Rows, rows: int) -> Mask:
    full = np.zeros(rows, dtype=bool)
    full[indices[mask]] = True
    return full


def _group_array(json_type: str, values: list[Any], kind: str) -> tuple[pa.Array, Problems]:
    """Values of one JSON type as one Arrow array (numbers as float64; a number beyond float64
    is null and `non_finite`); lists of numbers as list<float64> for a vector."""
    if json_type == "number":
        floats, overflow = _floats(values)
        return pa.array(floats, pa.float64(), mask=overflow), [("non_finite", overflow)]
    if json_type == "text":
        return pa.array(values, pa.string()), []
    if json_type == "boolean":
        return pa.array(values, pa.bool_()), []
    if json_type == "list" and kind == VECTOR:
        return _vectors(values)
    typed = pa.struct([]) if json_type == "object" else pa.list_(pa.null())
    return pa.nulls(len(values), typed).fill_null(_placeholder(typed)), []


def _placeholder(typed: pa.DataType) -> pa.Scalar:
    return pa.scalar({} if pa.types.is_struct(typed) else [], typed)


def _floats(values: list[Any]) -> tuple[NDArray[np.float64], Mask]:
    try:
        return np.array(values, dtype=np.float64), np.zeros(len(values), dtype=bool)
    except OverflowError:  # an integer beyond float64: find it
        pass
    floats = np.empty(len(values), dtype=np.float64)
    overflow = np.zeros(len(values), dtype=bool)
    for i, value in enumerate(values):
        try:
            floats[i] = float(value)
        except OverflowError:  # an integer beyond float64
            floats[i], overflow[i] = 0.0, True
    return floats, overflow


def _is_json_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _vectors(values: list[Any]) -> tuple[pa.Array, Problems]:
    bad = np.array([not all(map(_is_json_number, row)) for row in values], dtype=bool)
    rows = []
    for row, wrong in zip(values, bad, strict=True):
        try:
            rows.append(None if wrong else [float(v) for v in row])
        except OverflowError:
            rows.append([float("inf")])  # read as non-finite below
    return pa.array(rows, pa.list_(pa.float64())), [("not_numbers", bad)]
