"""Request bodies to model-ready frames, checked against the model's signature.

Accepted bodies: `{"rows": [{...}, ...]}` or pandas split `{"columns": [...], "data": [[...]]}`,
either with an optional event time (`"event_time"` for every row, or `"event_times"`, one per
row; `loopml.domain.event_time` says what a time may be), logged beside the serving time.
A wrong shape, a missing field or a value its column does not take (the rules of
`loopml.domain.column_values`) is a `RequestError` (422) naming the row and the field; a null is
served and flagged. Fields the model does not take are ignored: only the signature's columns
reach the model and the log, as the typed values the model got.

The checks cost little: an all-numeric signature (the common case) is one list of the batch's
values, one pass collecting their Python types, and one numpy conversion; other signatures are
checked column by column the same way (`loopml.serving.door`).
"""

from __future__ import annotations

import itertools
import math
import operator
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from loopml.domain.event_time import SPELLING, NotATime, event_time_us, event_times_us
from loopml.domain.signature import ColumnType
from loopml.ports.prediction_log import INPUT_PREFIX
from loopml.serving.door import NONE_TYPE, typed_column

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


def _split_rows(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    columns, data = body.get("columns"), body.get("data")
    if not isinstance(columns, list) or not isinstance(data, list):
        raise RequestError(422, "Give 'rows' (a list of objects) or 'columns' and 'data'.")
    if not all(isinstance(name, str) for name in columns):
        raise RequestError(422, "'columns' must be a list of column names (strings).")
    if len(set(columns)) < len(columns):
        raise RequestError(422, "'columns' names a column twice; name each column once.")
    for index, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise RequestError(422, f"Row {index} of 'data' does not have {len(columns)} values.")
    return [dict(zip(columns, row, strict=True)) for row in data]


def _rows_of(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, Mapping):
        raise RequestError(422, "The body must be a JSON object with 'rows' or 'columns'+'data'.")
    if "rows" not in body:
        return _split_rows(body)
    rows = body["rows"]
    if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
        raise RequestError(422, "'rows' must be a list of objects, one per row.")
    return rows


def _check_present(rows: list[dict[str, Any]], names: Sequence[str]) -> None:
    if all(map(set(names).issubset, rows)):  # one C-level pass over the rows
        return
    for index, row in enumerate(rows):
        missing = sorted(set(names) - row.keys())
        if missing:
            raise RequestError(422, f"Row {index} has no field {missing[0]!r}.")


def request_rows(
    body: Any, signature: Sequence[tuple[str, str]], max_rows: int = MAX_ROWS
) -> list[dict[str, Any]]:
    """The request's rows, checked for shape, size and presence of every field (cheap checks,
    done per request); values are checked and converted per batch by `batch_frame`."""
    rows = _rows_of(body)
    if not rows:
        raise RequestError(422, "The request has no rows.")
    if len(rows) > max_rows:
        raise RequestError(
            413, f"The request has {len(rows)} rows; at most {max_rows} are served per request."
        )
    _check_present(rows, [name for name, _ in signature])
    return rows


def now_us() -> int:
    """Epoch microseconds, UTC (the serving time event times are checked against)."""
    return time.time_ns() // 1000


def request_event_times(body: Any, rows: int, prefix: str = "") -> list[int] | None:
    """Per row, the event time `body` gives: its `event_time` (one for every row) or its
    `event_times` (one per row); None when it gives neither. A 422 names the field and the fix
    when a value is not a time, lies before 1970 or more than a day ahead, or the list does not
    have one time per row. `prefix` names where the fields sit (`parameters.` for V2)."""
    if not isinstance(body, Mapping):
        return None
    one, many = body.get("event_time"), body.get("event_times")
    if one is None and many is None:
        return None
    if one is not None and many is not None:
        raise RequestError(
            422,
            f"The request gives both '{prefix}event_time' and '{prefix}event_times'; give "
            "one time for the whole request or one per row, not both.",
        )
    now = now_us()
    try:
        if one is not None:
            return [event_time_us(one, now)] * rows
        if not isinstance(many, list) or len(many) != rows:
            given = f"{len(many)} values" if isinstance(many, list) else repr(many)[:40]
            raise RequestError(
                422,
                f"'{prefix}event_times' is {given} for {rows} rows; give a list of one event "
                f"time per row, or one '{prefix}event_time' for the whole request.",
            )
        return event_times_us(many, now)
    except NotATime as exc:
        field = f"{prefix}event_time" if one is not None else f"{prefix}event_times"
        raise RequestError(
            422, f"'{field}' is refused: {exc}. Give {SPELLING}, at most a day ahead."
        ) from None


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


_NUMERIC = frozenset({ColumnType.INTEGER, ColumnType.FLOAT})
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
_NONE = np.array(None, dtype=object)
_NUMBERS = frozenset({int, float, NONE_TYPE})
_EXACT_IN_FLOAT = 2.0**53
"""Integers below this in magnitude are exact in a float64."""


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


def _typed_already(
    rows: Sequence[Mapping[str, Any]], names: list[str], integer: list[int], kinds: set[type]
) -> bool:
    """Every integer column holds ints and every float column floats (or nulls)."""
    if not integer:
        return kinds <= {float, NONE_TYPE}
    if len(integer) == len(names):
        return kinds <= {int, NONE_TYPE}
    ints = set(integer)
    for j, name in enumerate(names):  # one pass per column: types differ by column here
        wanted = {int, NONE_TYPE} if j in ints else {float, NONE_TYPE}
        if not set(map(type, map(operator.itemgetter(name), rows))) <= wanted:
            return False
    return True


def _numeric_values(
    rows: Sequence[Mapping[str, Any]], names: list[str]
) -> tuple[Any, Any, set[type]] | None:
    """The batch as one float64 matrix, its null mask and the Python types of its values; None
    when some value is not a JSON number or null (the column-wise checks name it)."""
    if len(names) > 1:  # one C-level pass per row: about twice as fast as a comprehension
        flat = list(itertools.chain.from_iterable(map(operator.itemgetter(*names), rows)))
    else:
        flat = [row[names[0]] for row in rows]
    kinds = set(map(type, flat))
    if not kinds <= _NUMBERS:
        return None
    try:
        values = np.array(flat, dtype=np.float64).reshape(len(rows), len(names))
    except OverflowError:
        return None
    nulls = np.isnan(values)
    if NONE_TYPE in kinds:
        given = np.fromiter(flat, dtype=object, count=len(flat)).reshape(values.shape)
        fine = np.array_equal(nulls, np.equal(given, _NONE))  # no NaN that is not a null
    else:
        fine = not nulls.any()
    return (values, nulls, kinds) if fine and not np.isinf(values).any() else None


def _numeric_batch(
    rows: Sequence[Mapping[str, Any]], names: list[str], types: list[ColumnType]
) -> BatchFrame | None:
    """All-numeric signatures: one conversion for the whole batch; None when some value needs
    the column-wise checks (a refusal to name, or an integer beyond float64's exact range)."""
    converted = _numeric_values(rows, names)
    if converted is None:
        return None
    values, nulls, kinds = converted
    integer = [j for j, kind in enumerate(types) if kind is ColumnType.INTEGER]
    if integer:
        whole = values[:, integer]
        fine = (whole == np.trunc(whole)) & (np.abs(whole) < _EXACT_IN_FLOAT)
        if not np.all(fine | nulls[:, integer]):
            return None
    exact = _typed_already(rows, names, integer, kinds) and _as_given(rows, len(names))
    logged = rows if exact else partial(_numeric_logged, values, nulls, names, integer)
    kept = np.ones(len(rows), dtype=bool)
    flags = _flags(names, nulls, kept, None, {})
    columns = [(name, kind, values[:, j], nulls[:, j]) for j, (name, kind) in
               enumerate(zip(names, types, strict=True))]  # fmt: skip
    return BatchFrame(kept, {}, flags, names, logged, columns, values=values, null_matrix=nulls)


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
) -> BatchFrame:
    """The batch's rows checked and converted to the signature's types; rows that cannot be
    are set aside with the reason, so one bad request does not fail the others."""
    names = [name for name, _ in signature]
    types = [_TYPES.get(kind) or ColumnType(kind) for _, kind in signature]
    if names and all(kind in _NUMERIC for kind in types):
        numeric = _numeric_batch(rows, names, types)
        if numeric is not None:
            return numeric
    values = [[row[name] for row in rows] for name in names]
    return columns_frame(values, signature, categories, rows)


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
