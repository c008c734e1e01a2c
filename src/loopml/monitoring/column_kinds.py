"""What a column of each kind reads, vectorised over Arrow arrays: the rules the prediction log's
JSON is read by (`loopml.monitoring.json_columns`), and the result of reading a window.

Anything a column cannot read becomes null and an `Unreadable` of that kind:
- `numeric`: numbers, and strings that spell a finite number, as float64. Unreadable: `boolean`,
  `object`, `list`, `text` (a string that is no number) and `non_finite` (NaN, Infinity, "inf",
  a number beyond float64).
- `categorical` and `text`: strings, and numbers and booleans as their text (`1.0` reads "1",
  `true` reads "true", see `number_text`). Unreadable: `object`, `list`, `non_finite`.
- `vector`: lists of finite numbers, as list<float64> (class probabilities); else `not_numbers`.
- `boolean`: booleans; anything else is unreadable (`number`, `text`, ...).
- no kind (None): scalars keep their type, floats must be finite, nested values are unreadable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

NUMERIC, CATEGORICAL, TEXT, VECTOR, BOOLEAN = "numeric", "categorical", "text", "vector", "boolean"
ROW = "(row)"
"""The column of a finding about a whole row (it is not one JSON object)."""
_NAN_SPELLINGS = frozenset({"nan", "+nan", "-nan"})

Mask = NDArray[np.bool_]
Rows = NDArray[np.int64]
Problems: TypeAlias = list[tuple[str, Mask]]
"""Per kind of problem, a mask of the rows that have it."""


@dataclass(frozen=True)
class Unreadable:
    """Values of `column` that could not be read as its kind, all of one `kind` of problem."""

    column: str
    kind: str
    rows: Rows = field(repr=False)
    """Positions of the rows, ascending."""

    @property
    def count(self) -> int:
        return int(self.rows.size)


@dataclass(frozen=True)
class Parsed:
    """A window's table and what in it could not be read (those values are null in it)."""

    table: pa.Table
    unreadable: tuple[Unreadable, ...] = ()

    @property
    def count(self) -> int:
        """Unreadable values (a whole unreadable row counts once)."""
        return sum(u.count for u in self.unreadable)

    def bad_rows(self) -> Mask:
        """A mask of the rows holding at least one unreadable value."""
        mask = np.zeros(self.table.num_rows, dtype=bool)
        for found in self.unreadable:
            mask[found.rows] = True
        return mask

    def counts(self) -> dict[str, int]:
        """Unreadable values per column."""
        totals: dict[str, int] = {}
        for found in self.unreadable:
            totals[found.column] = totals.get(found.column, 0) + found.count
        return totals


def empty_table(rows: int) -> pa.Table:
    """A table of `rows` rows and no column."""
    return pa.table({"_": pa.nulls(rows)}).drop_columns(["_"])


def found_in(column: str, problems: Problems) -> list[Unreadable]:
    """The findings of `column`: one per kind of problem some row has."""
    return [
        Unreadable(column, kind, np.flatnonzero(mask).astype(np.int64))
        for kind, mask in problems
        if mask.any()
    ]


def merge(found: Iterable[Unreadable]) -> tuple[Unreadable, ...]:
    """One finding per (column, kind), rows ascending."""
    grouped: dict[tuple[str, str], list[Rows]] = {}
    for item in found:
        grouped.setdefault((item.column, item.kind), []).append(item.rows)
    return tuple(
        Unreadable(column, kind, np.sort(np.concatenate(rows)))
        for (column, kind), rows in grouped.items()
    )


# -- one column -------------------------------------------------------------------------------

TARGETS: dict[str | None, pa.DataType] = {
    NUMERIC: pa.float64(),
    CATEGORICAL: pa.string(),
    TEXT: pa.string(),
    VECTOR: pa.list_(pa.float64()),
    BOOLEAN: pa.bool_(),
}


def read_column(array: pa.Array, kind: str | None) -> tuple[pa.Array, Problems]:
    """`array` read as `kind`: the values and, per kind of problem, a mask of the rows."""
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_large_string(array.type):
        array = array.cast(pa.string())
    reader = _READERS.get(kind, _as_inferred)
    return reader(array)


def _as_numbers(array: pa.Array) -> tuple[pa.Array, Problems]:
    kind = array.type
    if pa.types.is_null(kind):
        return array.cast(pa.float64()), []
    if _is_number(kind):
        return _finite(array.cast(pa.float64(), safe=False))
    if pa.types.is_string(kind):
        return _numbers_in_text(array)
    return _unreadable(array, pa.float64())


def _as_text(array: pa.Array) -> tuple[pa.Array, Problems]:
    kind = array.type
    if pa.types.is_string(kind):
        return array, []
    if pa.types.is_null(kind) or pa.types.is_boolean(kind) or pa.types.is_temporal(kind):
        return array.cast(pa.string()), []
    if pa.types.is_integer(kind):
        return number_text(array), []
    if _is_number(kind):
        floats, problems = _finite(array.cast(pa.float64(), safe=False))
        return number_text(floats), problems
    return _unreadable(array, pa.string())


def _as_vectors(array: pa.Array) -> tuple[pa.Array, Problems]:
    kind = array.type
    target = pa.list_(pa.float64())
    if pa.types.is_null(kind):
        return array.cast(target), []
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)):
        return _unreadable(array, target)
    items = kind.value_type
    if not (_is_number(items) or pa.types.is_null(items)):
        return pa.nulls(len(array), target), [("not_numbers", mask_of(array.is_valid()))]
    vectors = array.cast(target, safe=False)
    flat = pc.list_flatten(vectors)
    parents = np.asarray(pc.list_parent_indices(vectors))
    infinite, holes = np.zeros(len(array), dtype=bool), np.zeros(len(array), dtype=bool)
    infinite[parents[mask_of(pc.invert(pc.fill_null(pc.is_finite(flat), True)))]] = True
    holes[parents[mask_of(flat.is_null())]] = True
    return _null_where(vectors, infinite | holes), [
        ("non_finite", infinite),
        ("not_numbers", holes),
    ]


def _as_booleans(array: pa.Array) -> tuple[pa.Array, Problems]:
    if pa.types.is_boolean(array.type) or pa.types.is_null(array.type):
        return array.cast(pa.bool_()), []
    return _unreadable(array, pa.bool_())


def _as_inferred(array: pa.Array) -> tuple[pa.Array, Problems]:
    """No kind given: scalars keep their type; floats must be finite; nested values are out."""
    kind = array.type
    if pa.types.is_floating(kind):
        return _finite(array)
    if pa.types.is_nested(kind):
        return _unreadable(array, pa.null())
    return array, []


_READERS: dict[str | None, Callable[[pa.Array], tuple[pa.Array, Problems]]] = {
    NUMERIC: _as_numbers,
    CATEGORICAL: _as_text,
    TEXT: _as_text,
    VECTOR: _as_vectors,
    BOOLEAN: _as_booleans,
}


def _is_number(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
    )


def _finite(floats: pa.Array) -> tuple[pa.Array, Problems]:
    if floats.null_count == len(floats):
        return floats, []
    bad = mask_of(pc.invert(pc.is_finite(floats)))
    return _null_where(floats, bad), [("non_finite", bad)]


def _numbers_in_text(strings: pa.Array) -> tuple[pa.Array, Problems]:
    """Strings that spell a finite number, as float64; `text` and `non_finite` for the rest."""
    import pandas as pd

    text = strings.to_pandas()
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    present = mask_of(strings.is_valid())
    finite = np.isfinite(numbers)
    spelled = np.isin(text.str.strip().str.lower().to_numpy(dtype=object), list(_NAN_SPELLINGS))
    non_finite = present & (np.isinf(numbers) | spelled)
    words = present & ~finite & ~non_finite
    values = pa.array(np.where(finite, numbers, 0.0), pa.float64(), mask=~finite)
    return values, [("text", words), ("non_finite", non_finite)]


def _unreadable(array: pa.Array, target: pa.DataType) -> tuple[pa.Array, Problems]:
    """Every value of `array` is of a type `target` cannot hold: nulls, reported by type."""
    kind = array.type
    if pa.types.is_boolean(kind):
        what = "boolean"
    elif _is_number(kind):
        what = "number"
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        what = "list"
    elif pa.types.is_struct(kind) or pa.types.is_map(kind):
        what = "object"
    else:
        what = "text"
    return pa.nulls(len(array), target), [(what, mask_of(array.is_valid()))]


def mask_of(array: pa.Array | pa.ChunkedArray) -> Mask:
    """A boolean Arrow array as a numpy mask, null as False."""
    filled = pc.fill_null(array, False)
    if isinstance(filled, pa.ChunkedArray):
        filled = filled.combine_chunks()
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=bool)


def _null_where(array: pa.Array, mask: Mask) -> pa.Array:
    if not mask.any():
        return array
    return pc.if_else(pa.array(mask), pa.scalar(None, array.type), array)


def number_text(numbers: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Numbers as category text, one way whatever their JSON spelling: the value as a float64,
    written as its digits when it is integral and within int64 (1.0 and 1 read "1"), else as
    Arrow writes a float64."""
    if isinstance(numbers, pa.ChunkedArray):
        numbers = numbers.combine_chunks()
    if pa.types.is_integer(numbers.type) and _exact_as_float(numbers):
        return numbers.cast(pa.string())  # the same text, without the round trip
    floats = numbers.cast(pa.float64(), safe=False)
    integral = pc.and_(
        pc.equal(pc.floor(floats), floats), pc.less(pc.abs(floats), pa.scalar(2.0**63))
    )
    whole = pc.cast(pc.if_else(integral, floats, 0.0), pa.int64())
    return pc.if_else(integral, whole.cast(pa.string()), floats.cast(pa.string()))


def _exact_as_float(integers: pa.Array) -> bool:
    """Whether every value is within ±2**53, where float64 holds integers exactly."""
    bounds = pc.min_max(integers).as_py()
    low, high = bounds["min"], bounds["max"]
    return low is None or (low > -(2**53) and high < 2**53)
