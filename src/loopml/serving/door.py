"""Served values checked against the model's column types, a whole column at a time.

The rules are `loopml.domain.column_values`'; this module applies them fast. A column is read
once to collect the Python types of its values (`set(map(type, values))`, no Python frame per
value); when every type is one the column takes, the remaining checks (integral, in range,
finite, short enough) are numpy operations. Only a column holding a value of a refused type or
out of range is walked value by value, to name the first row each refusal falls on.

Every column comes back three ways: the array the model gets, its null mask, and the values as
the prediction log keeps them (Python values of the column's type; the very list given when it
already is).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loopml.domain.column_values import (
    INT64_MIN,
    MAX_TEXT_CHARS,
    TAKES,
    parse_datetime,
    problem,
    refusal,
)
from loopml.domain.signature import ColumnType

NONE_TYPE = type(None)
_NONE = np.array(None, dtype=object)


@dataclass
class TypedColumn:
    array: Any
    """What the model gets: int64, float64 (NaN where null), bool, object or datetime64."""
    nulls: Any
    """numpy bool mask: where the value is null."""
    logged: Sequence[Any]
    """Python values of the column's type (None where null), as the prediction log keeps them."""
    as_given: bool
    """`logged` is the very values given: each already was of the column's type."""
    problems: dict[int, str]
    """Row -> the refusal of its value (the row is not served)."""


def _objects(values: Sequence[Any]) -> Any:
    """A 1-D object array of `values` (lists inside stay elements, never a second axis)."""
    return np.fromiter(values, dtype=object, count=len(values))


def _null_mask(values: Sequence[Any], kinds: set[type]) -> Any:
    if NONE_TYPE not in kinds:
        return np.zeros(len(values), dtype=bool)
    return np.equal(_objects(values), _NONE)


def _problems(values: Sequence[Any], column_type: ColumnType, name: str) -> dict[int, str]:
    """Each refused value of the column by row: the slow path, walked only when needed."""
    found = {}
    for index, value in enumerate(values):
        why = problem(value, column_type)
        if why is not None:
            found[index] = refusal(name, why, column_type)
    return found


def _without(values: Sequence[Any], rows: dict[int, str]) -> list[Any]:
    clean = list(values)
    for index in rows:
        clean[index] = None
    return clean


def _integers(values: Sequence[Any], kinds: set[type]) -> TypedColumn | None:
    nulls = _null_mask(values, kinds)
    logged: Sequence[Any] = values
    if float in kinds:  # 3.0 is taken as 3; 3.5 and 1e30 are refused
        present = np.asarray(values, dtype=np.float64)[~nulls]  # None -> NaN, left out
        integral = present == np.trunc(present)
        if not np.all(integral & (present >= INT64_MIN) & (present < 2.0**63)):
            return None
        logged = [None if v is None else int(v) for v in values]
    try:  # from Python ints, exactly; OverflowError beyond int64
        exact = np.asarray(_objects(logged)[~nulls] if nulls.any() else logged, dtype=np.int64)
    except OverflowError:
        return None
    if not nulls.any():
        return TypedColumn(exact, nulls, logged, logged is values, {})
    array = np.full(len(values), np.nan)  # a null makes the column float64, as pandas has it
    array[~nulls] = exact
    return TypedColumn(array, nulls, logged, logged is values, {})


def _floats(values: Sequence[Any], kinds: set[type]) -> TypedColumn | None:
    try:
        array = np.asarray(values, dtype=np.float64)  # None -> NaN
    except OverflowError:
        return None
    nulls = _null_mask(values, kinds)
    if not np.all(np.isfinite(array) | nulls):
        return None  # a Python caller's nan or inf
    if kinds <= {float, NONE_TYPE}:
        return TypedColumn(array, nulls, values, True, {})
    logged = array.tolist()
    for index in np.flatnonzero(nulls).tolist():
        logged[index] = None
    return TypedColumn(array, nulls, logged, False, {})


def _texts(values: Sequence[Any], kinds: set[type]) -> TypedColumn | None:
    if max(map(len, filter(None, values)), default=0) > MAX_TEXT_CHARS:
        return None
    return TypedColumn(_objects(values), _null_mask(values, kinds), values, True, {})


def _datetimes(values: Sequence[Any], kinds: set[type]) -> TypedColumn | None:
    import pandas as pd

    parsed = [None if v is None or len(v) > MAX_TEXT_CHARS else parse_datetime(v) for v in values]
    nulls = _null_mask(values, kinds)
    if sum(p is None for p in parsed) != int(nulls.sum()):
        return None
    array = pd.to_datetime(pd.Series(parsed, dtype=object), utc=True).array
    logged = [None if p is None else p.isoformat() for p in parsed]
    return TypedColumn(array, nulls, logged, False, {})


def _booleans(values: Sequence[Any], kinds: set[type]) -> TypedColumn:
    nulls = _null_mask(values, kinds)
    array = _objects(values) if nulls.any() else np.asarray(values, dtype=bool)
    return TypedColumn(array, nulls, values, True, {})


def _anything(values: Sequence[Any], kinds: set[type]) -> TypedColumn:
    return TypedColumn(_objects(values), _null_mask(values, kinds), values, True, {})


_CONVERT = {
    ColumnType.INTEGER: _integers,
    ColumnType.FLOAT: _floats,
    ColumnType.BOOLEAN: _booleans,
    ColumnType.STRING: _texts,
    ColumnType.CATEGORY: _texts,
    ColumnType.DATETIME: _datetimes,
    ColumnType.OBJECT: _anything,
}


def typed_column(values: Sequence[Any], column_type: ColumnType, name: str) -> TypedColumn:
    """`values` (one per row) checked and converted for a column of `column_type`; refused
    rows are named in `problems` and hold null in the other fields."""
    kinds = set(map(type, values))
    allowed = TAKES.get(column_type)
    if allowed is None or kinds - {NONE_TYPE} <= allowed:
        converted = _CONVERT[column_type](values, kinds)
        if converted is not None:
            return converted
    problems = _problems(values, column_type, name)
    clean = _without(values, problems)
    converted = _CONVERT[column_type](clean, set(map(type, clean)))
    if converted is None:  # the fast checks and `problem` disagree: a bug, said plainly
        raise RuntimeError(f"column {name!r}: values the rules accept did not convert")
    converted.problems = problems
    converted.as_given = False
    return converted
