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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loopml.domain.event_time import SPELLING, NotATime, event_time_us, event_times_us
from loopml.domain.signature import ColumnType
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
    request_ids: Sequence[str]
    latency_us: int
    flags: Sequence[str]
    shadow: bool = False
    probabilities: Sequence[Any] | None = None
    client_ids: Sequence[str | None] | None = None
    """Per row, the id the client gave its request (V2's `id`), if any."""
    event_times_us: Sequence[int | None] | None = None
    """Per row, the event time the request gave, if any (epoch microseconds)."""


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
    logged: Sequence[Mapping[str, Any]]
    """Per input row, the signature's fields as the model got them (what the log keeps)."""
    values: Any = None
    """All-numeric signatures: the kept rows as one float64 matrix (columns in `names` order);
    the data frame is built from it only when something asks for `frame`."""
    _frame: Any = None

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
    logged = rows if exact else _numeric_logged(values, nulls, names, integer)
    kept = np.ones(len(rows), dtype=bool)
    flags = _flags(names, nulls, kept, None, {})
    return BatchFrame(kept, {}, flags, names, logged, values=values)


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
    logged: Sequence[Mapping[str, Any]] | None = rows
    if rows is None or not (all(c.as_given for c in columns) and _as_given(rows, len(names))):
        typed_rows = zip(*(c.logged for c in columns), strict=True)
        logged = [dict(zip(names, row, strict=True)) for row in typed_rows] or [{}] * count
    flags = _flags(names, nulls, kept, frame, categories or {})
    return BatchFrame(kept, errors, flags, names, logged or [], _frame=frame)


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
