"""Request bodies to model-ready frames, checked against the model's signature.

Accepted bodies: `{"rows": [{...}, ...]}` or pandas split `{"columns": [...], "data": [[...]]}`,
either with an optional event time (`"event_time"` for every row, or `"event_times"`, one per
row; `loopml.domain.event_time` says what a time may be), logged beside the serving time.
A wrong shape, a missing field or a value its column does not take (the rules of
`loopml.domain.column_values`) is a `RequestError` (422) naming the row and the field; a null is
served and flagged. Fields the model does not take are ignored: only the signature's columns
reach the model and the log, as the typed values the model got.

The checks cost little: an all-numeric signature (the common case) is one list of the batch's
values, one pass collecting their Python types and one Arrow conversion (nulls kept apart from
NaN); a value that is no number sends the batch to the column-wise checks, which name it. Other
signatures are checked column by column (`loopml.serving.door`). The request's rows come from
`loopml.serving.bodies`.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from loopml.domain.signature import ColumnType
from loopml.ports.prediction_log import INPUT_PREFIX
from loopml.serving.door import typed_column

MAX_ROWS = 10_000
"""Rows per request; more is refused with 413."""


class RequestError(Exception):
    """A request the server refuses, with the HTTP status to answer."""

    def __init__(self, status: int, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s
        """Sent as `Retry-After` (a 503 the client may retry)."""


@dataclass(frozen=True)
class ServedRows:
    """Rows one model version answered, as the prediction log records them."""

    deployment: str
    model: str
    model_version: int
    rows: Sequence[Mapping[str, Any]]
    outputs: Sequence[Any]
    """One per row: a numpy array the log keeps as a typed column, or values it keeps as JSON."""
    request_ids: Sequence[str]
    latency_us: int
    flags: Sequence[str]
    shadow: bool = False
    probabilities: Sequence[Any] | None = None
    """A row of class probabilities per row (a float matrix is kept typed), or None."""
    client_ids: Sequence[str | None] | None = None
    """Per row, the id the client gave its request (V2's `id`), if any."""
    event_times_us: Sequence[int | None] | None = None
    """Per row, the event time the request gave, if any (epoch microseconds)."""
    inputs: Any = None
    """The rows' inputs as typed columns (an Arrow table of `input.<name>` columns); when
    given, `rows` is empty and the log keeps these."""


@dataclass
class BatchFrame:
    kept: Any
    """numpy bool mask over the input rows: True where the row is in `frame`."""
    errors: dict[int, str]
    """Input row -> why it could not be served (`field 'x' is ...`)."""
    flags: list[str]
    names: list[str]
    _logged: Sequence[Mapping[str, Any]] | Callable[[], Sequence[Mapping[str, Any]]]
    """Per input row, the signature's fields as the model got them, or how to make them."""
    columns: Sequence[tuple[str, ColumnType, Any, Any]] = ()
    """Per signature column: name, type, values over the input rows (numpy) and null mask."""
    values: Any = None
    """All-numeric signatures: the kept rows as one float64 matrix (columns in `names` order);
    the data frame is built from it only when something asks for `frame`."""
    null_matrix: Any = None
    """With `values`: where a value is null."""
    _frame: Any = None

    @property
    def logged(self) -> Sequence[Mapping[str, Any]]:
        """Per input row, the signature's fields as Python values (made when first asked: the
        log takes the typed columns, `inputs`, and needs these only for what Arrow cannot
        type)."""
        if callable(self._logged):
            self._logged = self._logged()
        return self._logged

    def typed(self, spans: Sequence[range]) -> TypedInputs | None:
        """The input rows of `spans` as the model got them, column by column (numpy views when
        the spans are contiguous), for the log's typed columns; None when a column is of the
        `object` type (any JSON value: logged as JSON text)."""
        kinds = tuple(kind for _, kind, _, _ in self.columns)
        if not kinds or any(kind not in _ARROW_TYPES for kind in kinds):
            return None
        contiguous = all(a.stop == b.start for a, b in itertools.pairwise(spans))
        rows: Any = slice(spans[0].start, spans[-1].stop) if spans else slice(0, 0)
        if not contiguous:  # a refused request between served ones
            rows = np.concatenate([np.arange(span.start, span.stop) for span in spans])
        names = tuple(name for name, _, _, _ in self.columns)
        if self.values is not None and self.null_matrix is not None:  # all numeric: 2 views
            return TypedInputs(names, kinds, self.values[rows], self.null_matrix[rows])
        values = tuple(values[rows] for _, _, values, _ in self.columns)
        nulls = tuple(nulls[rows] for _, _, _, nulls in self.columns)
        return TypedInputs(names, kinds, values, nulls)

    @property
    def frame(self) -> Any:
        """Rows that converted cleanly, as a data frame with the signature's columns."""
        if self._frame is None:
            import pandas as pd

            self._frame = pd.DataFrame(self.values, columns=self.names)
        return self._frame

    @property
    def rows(self) -> int:
        """How many rows converted cleanly."""
        return len(self.values) if self.values is not None else len(self._frame)


NUMERIC = frozenset({ColumnType.INTEGER, ColumnType.FLOAT})
_ARROW_TYPES: dict[ColumnType, Callable[[], Any]] = {
    ColumnType.INTEGER: lambda: _pa().int64(),
    ColumnType.FLOAT: lambda: _pa().float64(),
    ColumnType.BOOLEAN: lambda: _pa().bool_(),
    ColumnType.STRING: lambda: _pa().string(),
    ColumnType.CATEGORY: lambda: _pa().string(),
    ColumnType.DATETIME: lambda: _pa().timestamp("us"),
}
"""What each signature type is logged as (Arrow is imported only when a row is logged)."""


def _pa() -> Any:
    import pyarrow as pa

    return pa


_TYPES = {kind.value: kind for kind in ColumnType}
"""A dict lookup: `ColumnType(text)` costs about 0.7 us, paid per column of every batch."""
_NUMBERS = frozenset({int, float, type(None)})
_EXACT_IN_FLOAT = 2.0**53
"""Integers below this in magnitude are exact in a float64."""


def column_types(signature: Sequence[tuple[str, str]]) -> list[ColumnType]:
    """The signature's column types, in its order."""
    return [_TYPES.get(kind) or ColumnType(kind) for _, kind in signature]


def _as_given(rows: Sequence[Mapping[str, Any]], width: int) -> bool:
    """Every row holds exactly the signature's fields (presence is checked already)."""
    return set(map(len, rows)) <= {width}


def _numeric_logged(
    values: Any, nulls: Any, names: list[str], integer: list[int]
) -> list[dict[str, Any]]:
    columns = values.T.tolist()
    for j in integer:
        columns[j] = [None if math.isnan(v) else int(v) for v in columns[j]]
    for i, j in np.argwhere(nulls).tolist():
        columns[j][i] = None
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def field_values(rows: Sequence[Any], names: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Per row, the values of the fields `names` (keys of dict rows, or positions of list
    rows), in that order (one C-level pass over the rows); a 422 names the first row that
    lacks one."""
    try:
        if len(names) > 1:
            return list(map(operator.itemgetter(*names), rows))
        return list(zip(map(operator.itemgetter(*names), rows))) if names else [()] * len(rows)
    except KeyError:
        for index, row in enumerate(rows):
            missing = sorted(set(names) - row.keys())
            if missing:
                raise RequestError(422, f"Row {index} has no field {missing[0]!r}.") from None
        raise


def _numeric_values(values: Sequence[Sequence[Any]], width: int) -> tuple[Any, Any] | None:
    """The batch as one float64 matrix and its null mask; None when some value is not a JSON
    number or null, or is an integer a float64 cannot hold exactly (the column-wise checks
    then name it, or take it)."""
    pa = _pa()
    flat = list(itertools.chain.from_iterable(values))
    if not set(map(type, flat)) <= _NUMBERS:  # a boolean is no number here, nor a text
        return None
    try:  # one C-level conversion, nulls kept apart from NaN
        array = pa.array(flat, pa.float64())
    except (pa.ArrowInvalid, OverflowError):  # an integer a float64 cannot hold exactly
        return None
    matrix = array.to_numpy(zero_copy_only=False, writable=True).reshape(len(values), width)
    if array.null_count:
        nulls = array.is_null().to_numpy(zero_copy_only=False).reshape(matrix.shape)
    else:
        nulls = np.zeros(matrix.shape, dtype=bool)
    if np.count_nonzero(np.isnan(matrix)) != array.null_count or np.isinf(matrix).any():
        return None  # a NaN that is not a null, or an infinity: named by the column checks
    return matrix, nulls


def _numeric_batch(
    values: Sequence[Sequence[Any]], names: list[str], types: list[ColumnType]
) -> BatchFrame | None:
    """All-numeric signatures: one conversion for the whole batch; None when some value needs
    the column-wise checks (a refusal to name, or an integer beyond float64's exact range)."""
    converted = _numeric_values(values, len(names))
    if converted is None:
        return None
    matrix, nulls = converted
    if not exact_integers(matrix, nulls, types):
        return None
    return matrix_frame(matrix, nulls, names, types)


def exact_integers(matrix: Any, nulls: Any, types: Sequence[ColumnType]) -> bool:
    """Whether every value of an integer column of `matrix` is a whole number a float64 holds
    exactly (or null)."""
    integer = [j for j, kind in enumerate(types) if kind is ColumnType.INTEGER]
    if not integer:
        return True
    whole = matrix[:, integer]
    fine = (whole == np.trunc(whole)) & (np.abs(whole) < _EXACT_IN_FLOAT)
    return bool(np.all(fine | nulls[:, integer]))


def matrix_frame(
    matrix: Any, nulls: Any, names: list[str], types: Sequence[ColumnType]
) -> BatchFrame:
    """An all-numeric batch already checked and converted: its float64 matrix (columns in
    `names` order, `exact_integers`) and null mask, every row kept."""
    integer = [j for j, kind in enumerate(types) if kind is ColumnType.INTEGER]
    logged = partial(_numeric_logged, matrix, nulls, names, integer)
    kept = np.ones(len(matrix), dtype=bool)
    flags = _flags(names, nulls, kept, None, {})
    columns = [(name, kind, matrix[:, j], nulls[:, j]) for j, (name, kind) in
               enumerate(zip(names, types, strict=True))]  # fmt: skip
    return BatchFrame(kept, {}, flags, names, logged, columns, values=matrix, null_matrix=nulls)


def columns_frame(
    values: Sequence[Sequence[Any]],
    signature: Sequence[tuple[str, str]],
    categories: Mapping[str, frozenset[str]] | None = None,
    rows: Sequence[Mapping[str, Any]] | None = None,
) -> BatchFrame:
    """Like `batch_frame`, from the values of each column (in signature order); `rows`, when
    the values came from them, are logged as they are if they already hold typed values only."""
    import pandas as pd

    names = [name for name, _ in signature]
    count = len(values[0]) if values else len(rows or [])
    columns = [
        typed_column(column, _TYPES.get(kind) or ColumnType(kind), name)
        for column, (name, kind) in zip(values, signature, strict=True)
    ]
    errors: dict[int, str] = {}
    for column in columns:
        for index, message in column.problems.items():
            errors.setdefault(index, message)  # the first field in signature order
    kept = np.ones(count, dtype=bool)
    if errors:
        kept[list(errors)] = False
    served = int(kept.sum())
    frame = pd.DataFrame(
        {
            name: c.array[kept] if errors else c.array
            for name, c in zip(names, columns, strict=True)
        },
        columns=names,
        index=pd.RangeIndex(served),
    )
    nulls = np.column_stack([c.nulls[kept] for c in columns]) if columns else None
    if nulls is None:
        nulls = np.zeros((served, 0), dtype=bool)
    logged: Sequence[Mapping[str, Any]] | Callable[[], Sequence[Mapping[str, Any]]] = rows or []
    if rows is None or not (all(c.as_given for c in columns) and _as_given(rows, len(names))):
        logged = partial(_typed_rows, names, [c.logged for c in columns], count)
    flags = _flags(names, nulls, kept, frame, categories or {})
    typed = [
        (name, _TYPES.get(kind) or ColumnType(kind), c.array, c.nulls)
        for (name, kind), c in zip(signature, columns, strict=True)
    ]
    return BatchFrame(kept, errors, flags, names, logged, typed, _frame=frame)


def _typed_rows(names: list[str], columns: list[Sequence[Any]], count: int) -> list[dict[str, Any]]:
    typed_rows = zip(*columns, strict=True)
    return [dict(zip(names, row, strict=True)) for row in typed_rows] or [{}] * count


def batch_frame(
    rows: Sequence[Mapping[str, Any]],
    signature: Sequence[tuple[str, str]],
    categories: Mapping[str, frozenset[str]] | None = None,
    values: Sequence[Sequence[Any]] | None = None,
) -> BatchFrame:
    """The batch's rows checked and converted to the signature's types; rows that cannot be
    are set aside with the reason, so one bad request does not fail the others. `values`, per
    row its fields in signature order, when `request_rows` gave them already."""
    names = [name for name, _ in signature]
    types = column_types(signature)
    if values is None:
        values = field_values(rows, names)
    if names and all(kind in NUMERIC for kind in types):
        numeric = _numeric_batch(values, names, types)
        if numeric is not None:
            return numeric
    columns = list(zip(*values, strict=True)) if values else [() for _ in names]
    return columns_frame(columns, signature, categories, rows or None)


def logged_inputs(prepared: BatchFrame, spans: Sequence[range]) -> tuple[list[Any], Any]:
    """The served rows' inputs for the log: (no rows, their typed columns), or (their values
    row by row, None) when a column is of the `object` type."""
    typed = prepared.typed(spans)
    if typed is not None:
        return [], typed
    return [row for span in spans for row in prepared.logged[span.start : span.stop]], None


@dataclass(frozen=True)
class TypedInputs:
    """Served rows' inputs as the model got them, column by column: one float64 matrix (all
    numeric signatures) or one numpy array per column, with their null masks. The log sink
    makes Arrow of many requests' inputs at once (`arrow_inputs`): building Arrow columns
    costs microseconds per column, which a one-row request must not pay on its own."""

    names: tuple[str, ...]
    kinds: tuple[ColumnType, ...]
    values: Any
    """A 2-D matrix (columns in `names` order), or a tuple of 1-D arrays."""
    nulls: Any

    @property
    def key(self) -> tuple[tuple[str, ...], tuple[ColumnType, ...]]:
        """Requests with the same key make one table."""
        return self.names, self.kinds

    @property
    def rows(self) -> int:
        return len(self.values) if isinstance(self.values, np.ndarray) else len(self.values[0])

    def column(self, j: int) -> tuple[Any, Any]:
        if isinstance(self.values, np.ndarray):
            return self.values[:, j], self.nulls[:, j]
        return self.values[j], self.nulls[j]

    def records(self) -> list[dict[str, Any]]:
        """The rows as Python values (None where null), for JSON text."""
        columns = []
        for j in range(len(self.names)):
            values, nulls = self.column(j)
            listed = values.tolist()
            for i in np.flatnonzero(nulls).tolist():
                listed[i] = None
            columns.append(listed)
        return [dict(zip(self.names, row, strict=True)) for row in zip(*columns, strict=True)]


def arrow_inputs(parts: Sequence[TypedInputs]) -> Any:
    """The typed inputs of several requests of one signature (`key`) as one Arrow table of
    `input.<name>` columns, or None when a column's values have no Arrow type."""
    import pyarrow as pa

    first = parts[0]
    if len(parts) > 1 and all(isinstance(part.values, np.ndarray) for part in parts):
        matrix = np.concatenate([part.values for part in parts])  # one copy, not one per column
        first = TypedInputs(first.names, first.kinds, matrix,
                            np.concatenate([part.nulls for part in parts]))  # fmt: skip
        parts = [first]
    arrays = {}
    for j, (name, kind) in enumerate(zip(first.names, first.kinds, strict=True)):
        pieces = [part.column(j) for part in parts]
        values = np.concatenate([v for v, _ in pieces]) if len(pieces) > 1 else pieces[0][0]
        nulls = np.concatenate([n for _, n in pieces]) if len(pieces) > 1 else pieces[0][1]
        try:
            array = pa.array(values, mask=np.asarray(nulls, dtype=bool))
            arrays[f"{INPUT_PREFIX}{name}"] = array.cast(_ARROW_TYPES[kind](), safe=False)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            return None
    return pa.table(arrays)


def _flags(
    names: list[str],
    nulls: Any,
    kept: Any,
    frame: Any,
    categories: Mapping[str, frozenset[str]],
) -> list[str]:
    """Per input row: `null:col` for a missing value, `unseen_category:col` for a value the
    training data never had. Computed as one boolean matrix (kept rows x marks); only flagged
    rows are visited in Python."""
    labels = [f"null:{c}" for c in names]
    masks = [nulls]
    for column, known in categories.items():
        if column in names:
            values = frame[column]
            labels.append(f"unseen_category:{column}")
            masks.append((values.notna() & ~values.isin(list(known))).to_numpy()[:, None])
    flags = [""] * len(kept)
    table: Any = np.hstack(masks) if len(masks) > 1 else masks[0]
    flagged = np.flatnonzero(table.any(axis=1))
    if not flagged.size:
        return flags
    positions = kept.nonzero()[0]
    marks = np.array(labels, dtype=object)
    for index in flagged:
        flags[int(positions[index])] = ",".join(marks[table[index]])
    return flags
