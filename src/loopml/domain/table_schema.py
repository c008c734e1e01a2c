"""Schema inference of tabular dataset versions: each column's logical type (integer, float,
boolean, string, categorical, text, datetime, other), Arrow type, nullability and, for a
categorical column, its sorted categories. Pure and vectorised; JSON-able.

A string column is `categorical` when it holds at most `MAX_CATEGORIES` distinct values and at
most `MAX_CATEGORY_RATIO` of them per non-null value (probed first on `CATEGORY_PROBE_ROWS`
values, to reject id-like columns fast); otherwise it is `text` when its values average
`TEXT_MIN_MEAN_TOKENS` whitespace tokens (over at most `TEXT_SAMPLE_ROWS` evenly spaced values),
and `string` if not. Null and NaN make a column nullable. The profile of a schema's columns is
`loopml.domain.profile`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.errors import InvalidInput, NotFound

PROFILE_SCHEMA_VERSION = 1
"""`schema_version` of the dicts of `TableSchema` and `TableProfile`."""
MAX_CATEGORIES = 50
"""A string column with at most this many distinct values..."""
MAX_CATEGORY_RATIO = 0.5
"""...and at most this many distinct values per non-null value is `categorical`."""
CATEGORY_PROBE_ROWS = 10_000
"""Distinct values are first counted on this many leading values, to reject id-like columns fast."""
TEXT_MIN_MEAN_TOKENS = 3.0
"""A high-cardinality string column whose values average this many whitespace tokens is `text`."""
TEXT_SAMPLE_ROWS = 10_000
"""The token average is taken over at most this many evenly spaced values."""


class LogicalType(StrEnum):
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    STRING = "string"
    CATEGORICAL = "categorical"
    TEXT = "text"
    DATETIME = "datetime"
    OTHER = "other"


NUMERIC_TYPES = frozenset({LogicalType.INTEGER, LogicalType.FLOAT})
STRING_TYPES = frozenset({LogicalType.STRING, LogicalType.CATEGORICAL, LogicalType.TEXT})

_ARROW_KINDS: tuple[tuple[Callable[[pa.DataType], bool], LogicalType], ...] = (
    (pa.types.is_boolean, LogicalType.BOOLEAN),
    (pa.types.is_integer, LogicalType.INTEGER),
    (pa.types.is_floating, LogicalType.FLOAT),
    (pa.types.is_decimal, LogicalType.FLOAT),
    (pa.types.is_string, LogicalType.STRING),
    (pa.types.is_large_string, LogicalType.STRING),
    (pa.types.is_string_view, LogicalType.STRING),
    (pa.types.is_timestamp, LogicalType.DATETIME),
    (pa.types.is_date, LogicalType.DATETIME),
)


@dataclass(frozen=True, slots=True)
class ColumnSchema:
    name: str
    logical_type: LogicalType
    arrow_type: str
    nullable: bool
    categories: tuple[str, ...] | None = None
    """Sorted distinct values of a `categorical` column; None for every other type."""

    def to_dict(self) -> dict[str, Any]:
        categories = None if self.categories is None else list(self.categories)
        return {
            "name": self.name,
            "logical_type": str(self.logical_type),
            "arrow_type": self.arrow_type,
            "nullable": self.nullable,
            "categories": categories,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSchema:
        categories = data.get("categories")
        return cls(
            name=str(data["name"]),
            logical_type=LogicalType(data["logical_type"]),
            arrow_type=str(data["arrow_type"]),
            nullable=bool(data["nullable"]),
            categories=None if categories is None else tuple(str(c) for c in categories),
        )


@dataclass(frozen=True, slots=True)
class TableSchema:
    columns: tuple[ColumnSchema, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnSchema:
        return find_column(self.columns, name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": PROFILE_SCHEMA_VERSION,
            "columns": [c.to_dict() for c in self.columns],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableSchema:
        check_version(data, "table schema")
        return cls(tuple(ColumnSchema.from_dict(c) for c in data["columns"]))


def infer_schema(table: pa.Table) -> TableSchema:
    """The logical type, Arrow type, nullability and categories of every column of `table`."""
    return TableSchema(tuple(_infer_column(f, table.column(f.name)) for f in table.schema))


def _infer_column(field: pa.Field, column: pa.ChunkedArray) -> ColumnSchema:
    logical_type = base_logical_type(field.type)
    nullable = column.null_count > 0
    if logical_type is LogicalType.FLOAT and pa.types.is_floating(field.type):
        nullable = nullable or bool(pc.any(pc.is_nan(column)).as_py())
    categories = None
    if logical_type is LogicalType.STRING:
        values = pc.drop_null(decoded(column))
        categories = _categories(values)
        if categories is not None:
            logical_type = LogicalType.CATEGORICAL
        elif _looks_like_text(values):
            logical_type = LogicalType.TEXT
    return ColumnSchema(field.name, logical_type, str(field.type), nullable, categories)


def base_logical_type(arrow_type: pa.DataType) -> LogicalType:
    """The logical type Arrow's type says, before a string column is told categorical or text."""
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    for matches, logical_type in _ARROW_KINDS:
        if matches(arrow_type):
            return logical_type
    return LogicalType.OTHER


def decoded(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """`column` with dictionary encoding undone and string views as plain strings."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_string_view(column.type):
        column = column.cast(pa.large_string())
    return column


def _categories(values: pa.ChunkedArray) -> tuple[str, ...] | None:
    if len(values) == 0:
        return None
    head = values.slice(0, CATEGORY_PROBE_ROWS)
    if pc.count_distinct(head).as_py() > MAX_CATEGORIES:
        return None
    distinct = pc.unique(values)
    if len(distinct) > MAX_CATEGORIES or len(distinct) / len(values) > MAX_CATEGORY_RATIO:
        return None
    return tuple(sorted(distinct.to_pylist()))


def _looks_like_text(values: pa.ChunkedArray) -> bool:
    if len(values) == 0:
        return False
    sample = values
    if len(values) > TEXT_SAMPLE_ROWS:
        sample = values.take(np.linspace(0, len(values) - 1, TEXT_SAMPLE_ROWS).astype(np.int64))
    tokens = pc.list_value_length(pc.utf8_split_whitespace(sample))
    return bool(pc.mean(tokens).as_py() >= TEXT_MIN_MEAN_TOKENS)


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_Column = TypeVar("_Column", bound=_Named)


def find_column(columns: tuple[_Column, ...], name: str) -> _Column:
    """The column called `name`; NotFound listing the columns there are."""
    for column in columns:
        if column.name == name:
            return column
    raise NotFound(
        f"No column {name!r}.",
        f"The columns are: {', '.join(c.name for c in columns) or '(none)'}.",
    )


def check_version(data: Mapping[str, Any], what: str) -> None:
    """InvalidInput unless the stored schema or profile `data` is in `PROFILE_SCHEMA_VERSION`."""
    version = data.get("schema_version")
    if version != PROFILE_SCHEMA_VERSION:
        raise InvalidInput(
            f"The stored {what} has schema_version {version!r}; this loopml reads "
            f"{PROFILE_SCHEMA_VERSION}.",
            "Upgrade loopml, or profile the dataset version again.",
        )
