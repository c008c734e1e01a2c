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
    probabilities: Sequence[Any] | None = None


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


@dataclass
class BatchFrame:
    kept: Any
    """numpy bool mask over the input rows: True where the row is in `frame`."""
    errors: dict[int, str]
    """Input row -> why it could not be converted."""
    flags: list[str]
    names: list[str]
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


_NUMERIC = frozenset({"integer", "float"})


def _numeric_values(rows: Sequence[Mapping[str, Any]], names: list[str]) -> Any:
    """All-numeric signatures: one numpy conversion for the whole batch (None becomes NaN)."""
    import numpy as np

    return np.array([[row[name] for name in names] for row in rows], dtype=np.float64)


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
    kept = np.ones(len(rows), dtype=bool)
    if names and all(kind in _NUMERIC for _, kind in signature):
        try:
            values = _numeric_values(rows, names)
        except (TypeError, ValueError):
            pass  # some value is not a number: the column-wise path names it
        else:
            nulls = np.isnan(values)
            flags = _flags(names, nulls, kept, None, {})
            return BatchFrame(kept, {}, flags, names, values=values)
    frame, errors = _converted_frame(rows, signature)
    if errors:
        kept[list(errors)] = False
        frame = frame[kept].reset_index(drop=True)
    flags = _flags(names, frame.isna().to_numpy(), kept, frame, categories or {})
    return BatchFrame(kept, errors, flags, names, _frame=frame)


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
    import numpy as np

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
