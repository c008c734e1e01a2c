"""Request bodies of `/predict`: their rows, checked for shape, size and the presence of every
field the model takes, and the event times they give (`loopml.serving.frames` checks and
converts the values, per batch).

A body is `{"rows": [{...}, ...]}` or pandas split `{"columns": [...], "data": [[...]]}`, either
with an optional event time (`"event_time"` for every row, or `"event_times"`, one per row;
`loopml.domain.event_time` says what a time may be). A wrong shape or a missing field is a
`RequestError` (422) naming the row and the field.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from loopml.domain.event_time import SPELLING, NotATime, event_time_us, event_times_us
from loopml.serving.frames import MAX_ROWS, RequestError, field_values


class SplitRows(Sequence[dict[str, Any]]):
    """The rows of a split body, each made a dict only when asked for: a batch of the model's
    signature takes the values straight from `data` (`split_values`)."""

    def __init__(self, columns: list[str], data: list[list[Any]]) -> None:
        self.columns, self.data = columns, data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [dict(zip(self.columns, row, strict=True)) for row in self.data[index]]
        return dict(zip(self.columns, self.data[index], strict=True))


def _split_rows(body: Mapping[str, Any]) -> SplitRows:
    columns, data = body.get("columns"), body.get("data")
    if not isinstance(columns, list) or not isinstance(data, list):
        raise RequestError(422, "Give 'rows' (a list of objects) or 'columns' and 'data'.")
    if not all(isinstance(name, str) for name in columns):
        raise RequestError(422, "'columns' must be a list of column names (strings).")
    if len(set(columns)) < len(columns):
        raise RequestError(422, "'columns' names a column twice; name each column once.")
    if not (set(map(type, data)) <= {list} and set(map(len, data)) <= {len(columns)}):
        for index, row in enumerate(data):  # one C-level pass above; this one names the row
            if not isinstance(row, list) or len(row) != len(columns):
                raise RequestError(
                    422, f"Row {index} of 'data' does not have {len(columns)} values."
                )
    return SplitRows(columns, data)


def split_values(rows: SplitRows, names: Sequence[str]) -> Sequence[Sequence[Any]]:
    """Per row of a split body, the values of the fields `names` in that order: `data` itself
    when its columns are those; a 422 names a field the body does not have."""
    if rows.columns == list(names):
        return rows.data
    where = {name: index for index, name in enumerate(rows.columns)}
    missing = [name for name in names if name not in where]
    if missing:
        raise RequestError(422, f"Row 0 has no field {missing[0]!r}.")
    return field_values(rows.data, [where[name] for name in names])


def _rows_of(body: Any) -> Sequence[dict[str, Any]]:
    if not isinstance(body, Mapping):
        raise RequestError(422, "The body must be a JSON object with 'rows' or 'columns'+'data'.")
    if "rows" not in body:
        return _split_rows(body)
    rows = body["rows"]
    if not isinstance(rows, list):
        raise RequestError(422, "'rows' must be a list of objects, one per row.")
    if set(map(type, rows)) <= {dict}:  # what a JSON parser makes: one C-level pass
        return rows
    if not all(isinstance(r, Mapping) for r in rows):
        raise RequestError(422, "'rows' must be a list of objects, one per row.")
    return rows


def request_rows(
    body: Any, signature: Sequence[tuple[str, str]], max_rows: int = MAX_ROWS
) -> tuple[Sequence[dict[str, Any]], Sequence[Sequence[Any]]]:
    """The request's rows, checked for shape, size and presence of every field (cheap checks,
    done per request), and per row its fields' values in signature order; the values are
    checked and converted per batch by `batch_frame`."""
    rows = _rows_of(body)
    if not rows:
        raise RequestError(422, "The request has no rows.")
    if len(rows) > max_rows:
        raise RequestError(
            413, f"The request has {len(rows)} rows; at most {max_rows} are served per request."
        )
    names = [name for name, _ in signature]
    if isinstance(rows, SplitRows):
        return rows, split_values(rows, names)
    return rows, field_values(rows, names)


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
