"""Request bodies to model-ready frames, checked against the model's signature.

Accepted bodies: `{"rows": [{...}, ...]}` or pandas split `{"columns": [...], "data": [[...]]}`.
A missing column, a value that cannot be converted, or a wrong shape is a `RequestError` (422)
naming the row and the field; a null is served and flagged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_ROWS = 10_000
"""Rows per request; more is refused with 413."""


class RequestError(Exception):
    """A request the server refuses, with the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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


@dataclass(frozen=True)
class Batch:
    frame: Any
    """A pandas DataFrame with the signature's columns, in order."""
    rows: list[dict[str, Any]]
    """The rows as received (for the prediction log)."""
    flags: list[str]
    """Per row: comma-separated notes such as `null:tenure`."""


def _rows_of(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, Mapping):
        raise RequestError(422, "The body must be a JSON object with 'rows' or 'columns'+'data'.")
    if "rows" in body:
        rows = body["rows"]
        if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
            raise RequestError(422, "'rows' must be a list of objects, one per row.")
        return rows
    columns, data = body.get("columns"), body.get("data")
    if not isinstance(columns, list) or not isinstance(data, list):
        raise RequestError(422, "Give 'rows' (a list of objects) or 'columns' and 'data'.")
    for index, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise RequestError(422, f"Row {index} of 'data' does not have {len(columns)} values.")
    return [dict(zip(columns, row, strict=True)) for row in data]


def _check_present(rows: list[dict[str, Any]], names: Sequence[str]) -> None:
    required = set(names)
    for index, row in enumerate(rows):
        if not required <= row.keys():
            missing = sorted(required - row.keys())[0]
            raise RequestError(422, f"Row {index} has no field {missing!r}.")


def _convert(frame: Any, name: str, kind: str) -> Any:
    import pandas as pd

    column = frame[name]
    if kind in ("integer", "float"):
        converted = pd.to_numeric(column, errors="coerce")
    elif kind == "boolean":
        converted = column.map({True: True, False: False, "true": True, "false": False})
        converted = converted.astype("object")
    elif kind == "datetime":
        converted = pd.to_datetime(column, errors="coerce", utc=True)
    else:
        return column.where(column.isna(), column.astype(str))
    bad = converted.isna() & column.notna()
    if bad.any():
        index = int(bad.to_numpy().nonzero()[0][0])
        raise RequestError(
            422,
            f"Row {index} field {name!r} is {column.iloc[index]!r}, "
            f"which is not {'an' if kind == 'integer' else 'a'} {kind}.",
        )
    return converted


def build_batch(body: Any, signature: Sequence[tuple[str, str]], max_rows: int = MAX_ROWS) -> Batch:
    """The request's rows as a frame with the signature's columns and types."""
    import pandas as pd

    rows = _rows_of(body)
    if not rows:
        raise RequestError(422, "The request has no rows.")
    if len(rows) > max_rows:
        raise RequestError(
            413, f"The request has {len(rows)} rows; at most {max_rows} are served per request."
        )
    names = [name for name, _ in signature]
    _check_present(rows, names)
    frame = pd.DataFrame.from_records(rows, columns=names) if names else pd.DataFrame(rows)
    for name, kind in signature:
        frame[name] = _convert(frame, name, kind)
    nulls = frame.isna()
    flags = [""] * len(rows)
    if nulls.to_numpy().any():
        for index in nulls.any(axis=1).to_numpy().nonzero()[0]:
            flags[int(index)] = ",".join(f"null:{c}" for c in nulls.columns[nulls.iloc[index]])
    return Batch(frame, rows, flags)
