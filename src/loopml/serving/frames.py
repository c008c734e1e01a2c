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
    shadow: bool = False


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


def request_rows(
    body: Any, signature: Sequence[tuple[str, str]], max_rows: int = MAX_ROWS
) -> list[dict[str, Any]]:
    """The request's rows, checked for shape, size and presence of every field (cheap checks,
    done per request); values are converted per batch by `batch_frame`."""
    rows = _rows_of(body)
    if not rows:
        raise RequestError(422, "The request has no rows.")
    if len(rows) > max_rows:
        raise RequestError(
            413, f"The request has {len(rows)} rows; at most {max_rows} are served per request."
        )
    _check_present(rows, [name for name, _ in signature])
    return rows


@dataclass(frozen=True)
class BatchFrame:
    frame: Any
    """Rows that converted cleanly, as the model expects them."""
    kept: Any
    """numpy bool mask over the input rows: True where the row is in `frame`."""
    errors: dict[int, str]
    """Input row -> why it could not be converted."""
    flags: list[str]


_NUMERIC = frozenset({"integer", "float"})


def _numeric_frame(rows: Sequence[Mapping[str, Any]], names: list[str]) -> Any:
    """All-numeric signatures: one numpy conversion for the whole batch (None becomes NaN)."""
    import numpy as np
    import pandas as pd

    values = np.array([[row[name] for name in names] for row in rows], dtype=np.float64)
    return pd.DataFrame(values, columns=names)


def _first_bad(converted: Any, column: Any) -> Any:
    return (converted.isna() & column.notna()).to_numpy()


def _converted_frame(
    rows: Sequence[Mapping[str, Any]], signature: Sequence[tuple[str, str]]
) -> tuple[Any, dict[int, str]]:
    import pandas as pd

    names = [name for name, _ in signature]
    frame = pd.DataFrame.from_records(list(rows), columns=names)
    errors: dict[int, str] = {}
    for name, kind in signature:
        column = frame[name]
        converted = _convert_lenient(column, kind)
        for index in _first_bad(converted, column).nonzero()[0]:
            article = "an" if kind == "integer" else "a"
            errors.setdefault(
                int(index),
                f"field {name!r} is {column.iloc[index]!r}, which is not {article} {kind}",
            )
        frame[name] = converted
    return frame, errors


def _convert_lenient(column: Any, kind: str) -> Any:
    import pandas as pd

    if kind in _NUMERIC:
        return pd.to_numeric(column, errors="coerce")
    if kind == "boolean":
        mapped = column.map({True: True, False: False, "true": True, "false": False})
        return mapped.astype("object")
    if kind == "datetime":
        return pd.to_datetime(column, errors="coerce", utc=True)
    return column.where(column.isna(), column.astype(str))


def batch_frame(
    rows: Sequence[Mapping[str, Any]],
    signature: Sequence[tuple[str, str]],
    categories: Mapping[str, frozenset[str]] | None = None,
) -> BatchFrame:
    """The batch's rows converted to the signature's types; rows that cannot be are set aside
    with the reason, so one bad request does not fail the others."""
    import numpy as np

    names = [name for name, _ in signature]
    errors: dict[int, str] = {}
    frame = None
    if names and all(kind in _NUMERIC for _, kind in signature):
        try:
            frame = _numeric_frame(rows, names)
        except (TypeError, ValueError):
            frame = None
    if frame is None:
        frame, errors = _converted_frame(rows, signature)
    kept = np.ones(len(rows), dtype=bool)
    if errors:
        kept[list(errors)] = False
        frame = frame[kept].reset_index(drop=True)
    return BatchFrame(frame, kept, errors, _flags(frame, kept, len(rows), categories or {}))


def _flags(
    frame: Any, kept: Any, count: int, categories: Mapping[str, frozenset[str]]
) -> list[str]:
    """Per input row: `null:col` for a missing value, `unseen_category:col` for a value the
    training data never had; computed column-wise, then joined for the flagged rows only."""
    import numpy as np

    marks: list[tuple[str, Any]] = [
        (f"null:{c}", frame[c].isna().to_numpy()) for c in frame.columns
    ]
    marks += [
        (f"unseen_category:{c}", (frame[c].notna() & ~frame[c].isin(list(known))).to_numpy())
        for c, known in categories.items()
        if c in frame.columns
    ]
    flags = [""] * count
    if not marks:
        return flags
    table: Any = np.column_stack([mask for _, mask in marks])
    positions = kept.nonzero()[0]
    for index in np.flatnonzero(table.any(axis=1)):
        flags[int(positions[index])] = ",".join(
            label for (label, _), hit in zip(marks, table[index], strict=True) if hit
        )
    return flags
