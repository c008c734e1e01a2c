"""Data profiles of tabular dataset versions, column by column of their schema (inferred in
`loopml.domain.table_schema`): pure, vectorised, JSON-able.

A profile is the drift *reference* a monitor compares live data against, so it keeps what the
statistics need and nothing per row:

- numeric (`integer`, `float`): moments, named quantiles, an equal-width histogram of
  `HISTOGRAM_BINS` bins, and decile bins (reference quantile edges, deduplicated) with their counts,
  for PSI. Null and NaN count as missing; +-inf is counted apart (`infinite`) and left out of every
  other statistic, so histogram and decile counts both sum to `count`, the finite values. `std` is
  the population one (ddof=0). Quantiles are numpy's `method="averaged_inverted_cdf"` (Hyndman-Fan
  type 2; the textbook median): they depend only on the empirical distribution, not on the row
  count, so a table concatenated with itself has the same quantiles and decile edges, and exactly
  twice the counts. (numpy's default 'linear' method would not.)
- `categorical` and `string`: distinct count, the `TOP_CATEGORIES` most frequent values, the rest.
- `boolean`: true and false counts.  `datetime`: min and max, as Arrow formats them as text.
- `text`: a token vocabulary. Values are lowercased and split on runs of `TOKEN_SPLIT_PATTERN`
  (RE2: anything but a Unicode letter, digit or underscore); the `TOP_TOKENS` most frequent stay.

Ties in a top-k list are broken by value, so equal data gives equal profiles. Every stored float is
finite or None, so `to_dict()` survives `json.dumps(..., allow_nan=False)`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from loopml.domain.table_schema import (
    PROFILE_SCHEMA_VERSION,
    STRING_TYPES,
    ColumnSchema,
    LogicalType,
    TableSchema,
    base_logical_type,
    check_version,
    decoded,
    find_column,
)
from loopml.errors import InvalidInput

TOP_CATEGORIES = 50
TOP_TOKENS = 5_000
HISTOGRAM_BINS = 20
QUANTILE_LEVELS: Mapping[str, float] = {
    "p1": 0.01,
    "p5": 0.05,
    "p10": 0.10,
    "p25": 0.25,
    "p50": 0.50,
    "p75": 0.75,
    "p90": 0.90,
    "p95": 0.95,
    "p99": 0.99,
}
DECILE_LEVELS = tuple(i / 10 for i in range(11))
TOKEN_SPLIT_PATTERN = r"[^\p{L}\p{N}_]+"

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class _Stats:
    """Stats of one kind: `to_dict` turns tuples into lists, `from_dict` turns them back."""

    def to_dict(self) -> dict[str, Any]:
        plain = {f.name: _to_json(getattr(self, f.name)) for f in fields(self)}
        return plain | self._derived()

    def _derived(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(**{f.name: _from_json(data[f.name]) for f in fields(cls)})


@dataclass(frozen=True, slots=True)
class NumericStats(_Stats):
    count: int
    """Finite values: the rows that are neither missing (null, NaN) nor infinite."""
    infinite: int
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    quantiles: Mapping[str, float]
    """Keyed by the labels of `QUANTILE_LEVELS` ("p1" ... "p99"); empty when `count` is 0."""
    histogram_edges: tuple[float, ...]
    histogram_counts: tuple[int, ...]
    decile_edges: tuple[float, ...]
    """Reference deciles min, p10 ... p90, max, deduplicated (a constant column gives (v, v))."""
    decile_counts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CategoryStats(_Stats):
    count: int
    """Non-missing values."""
    distinct: int
    top: Mapping[str, int]
    """The most frequent values and their counts, most frequent first, ties by value."""
    other_count: int

    @property
    def other_share(self) -> float | None:
        return None if self.count == 0 else self.other_count / self.count

    def _derived(self) -> dict[str, Any]:
        return {"other_share": self.other_share}


@dataclass(frozen=True, slots=True)
class BooleanStats(_Stats):
    true_count: int
    false_count: int


@dataclass(frozen=True, slots=True)
class TextStats(_Stats):
    count: int
    """Non-missing values."""
    total_tokens: int
    distinct_tokens: int
    vocabulary: Mapping[str, int]
    """The `TOP_TOKENS` most frequent tokens with their counts, most frequent first."""

    @property
    def mean_tokens_per_row(self) -> float | None:
        return None if self.count == 0 else self.total_tokens / self.count

    def _derived(self) -> dict[str, Any]:
        return {"mean_tokens_per_row": self.mean_tokens_per_row}


@dataclass(frozen=True, slots=True)
class DatetimeStats(_Stats):
    min: str | None
    max: str | None


ColumnStats = NumericStats | CategoryStats | BooleanStats | TextStats | DatetimeStats

_STATS_TYPES: Mapping[LogicalType, type[ColumnStats]] = {
    LogicalType.INTEGER: NumericStats,
    LogicalType.FLOAT: NumericStats,
    LogicalType.BOOLEAN: BooleanStats,
    LogicalType.STRING: CategoryStats,
    LogicalType.CATEGORICAL: CategoryStats,
    LogicalType.TEXT: TextStats,
    LogicalType.DATETIME: DatetimeStats,
}


@dataclass(frozen=True, slots=True)
class ColumnProfile:
    name: str
    logical_type: LogicalType
    missing: int
    """Null values, plus NaN in float columns."""
    stats: ColumnStats | None
    """The kind that fits `logical_type` (see `_STATS_TYPES`); None for `other`."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "logical_type": str(self.logical_type),
            "missing": self.missing,
            "stats": None if self.stats is None else self.stats.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnProfile:
        logical_type = LogicalType(data["logical_type"])
        kind = _STATS_TYPES.get(logical_type)
        stats = data.get("stats")
        return cls(
            name=str(data["name"]),
            logical_type=logical_type,
            missing=int(data["missing"]),
            stats=None if kind is None or stats is None else kind.from_dict(stats),
        )


@dataclass(frozen=True, slots=True)
class TableProfile:
    rows: int
    columns: tuple[ColumnProfile, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnProfile:
        return find_column(self.columns, name)

    def missing_rate(self, name: str) -> float | None:
        """Share of rows missing in column `name`; None for an empty table."""
        return None if self.rows == 0 else self.column(name).missing / self.rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": PROFILE_SCHEMA_VERSION,
            "rows": self.rows,
            "columns": [c.to_dict() for c in self.columns],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableProfile:
        check_version(data, "table profile")
        columns = tuple(ColumnProfile.from_dict(c) for c in data["columns"])
        return cls(rows=int(data["rows"]), columns=columns)


def profile_table(table: pa.Table, schema: TableSchema) -> TableProfile:
    """The profile of every column of `schema`, read from `table`."""
    columns = tuple(_profile_column(table, column) for column in schema.columns)
    return TableProfile(rows=table.num_rows, columns=columns)


def bin_counts(values: FloatArray, edges: tuple[float, ...]) -> tuple[int, ...]:
    """Counts of `values` (finite) in the bins of `edges`, as the profile counts its reference.

    Bin i holds edges[i] <= x < edges[i+1]; the last bin also holds its right edge, and values
    outside the edges fall into the first or last bin, so live data is binned like the reference.
    """
    if len(edges) < 2:
        return ()
    interior = np.asarray(edges[1:-1], dtype=np.float64)
    index = np.searchsorted(interior, values, side="right")
    return tuple(int(c) for c in np.bincount(index, minlength=len(edges) - 1))


def _profile_column(table: pa.Table, column: ColumnSchema) -> ColumnProfile:
    values = decoded(_checked_column(table, column))
    profiler = _PROFILERS.get(column.logical_type)
    stats = None if profiler is None else profiler(pc.drop_null(values))
    missing = values.null_count
    if isinstance(stats, NumericStats):
        missing = len(values) - stats.count - stats.infinite
    return ColumnProfile(column.name, column.logical_type, missing, stats)


def _checked_column(table: pa.Table, column: ColumnSchema) -> pa.ChunkedArray:
    if column.name not in table.column_names:
        raise InvalidInput(
            f"The schema names column {column.name!r}, which the table does not have.",
            f"Profile the table with its own schema; its columns are {table.column_names}.",
        )
    values = table.column(column.name)
    actual = base_logical_type(values.type)
    expected = LogicalType.STRING if column.logical_type in STRING_TYPES else column.logical_type
    if actual is not expected:
        raise InvalidInput(
            f"Column {column.name!r} holds {values.type}, but its schema says "
            f"{column.logical_type}.",
            "Infer the schema again from this table with infer_schema().",
        )
    return values


def _numeric_stats(values: pa.ChunkedArray) -> NumericStats:
    raw = pc.cast(values, pa.float64(), safe=False).to_numpy()
    finite_mask = np.isfinite(raw)
    finite = raw[finite_mask]
    finite.sort()
    infinite = int(np.count_nonzero(np.isinf(raw)))
    return _stats_of_sorted(finite, infinite)


def _stats_of_sorted(finite: FloatArray, infinite: int) -> NumericStats:
    if finite.size == 0:
        return NumericStats(0, infinite, None, None, None, None, {}, (), (), (), ())
    low, high = float(finite[0]), float(finite[-1])
    quantiles = _sorted_quantiles(finite, tuple(QUANTILE_LEVELS.values()))
    histogram_edges = _histogram_edges(low, high)
    decile_edges = np.unique(_sorted_quantiles(finite, DECILE_LEVELS))
    if decile_edges.size == 1:
        decile_edges = np.repeat(decile_edges, 2)
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = np.mean(finite), np.std(finite)
    return NumericStats(
        count=int(finite.size),
        infinite=infinite,
        min=low,
        max=high,
        mean=_finite_or_none(mean),
        std=_finite_or_none(std),
        quantiles={label: float(q) for label, q in zip(QUANTILE_LEVELS, quantiles, strict=True)},
        histogram_edges=tuple(float(e) for e in histogram_edges),
        histogram_counts=_sorted_bin_counts(finite, histogram_edges),
        decile_edges=tuple(float(e) for e in decile_edges),
        decile_counts=_sorted_bin_counts(finite, decile_edges),
    )


def _sorted_quantiles(ascending: FloatArray, levels: tuple[float, ...]) -> FloatArray:
    """Quantiles of sorted values by numpy's 'averaged_inverted_cdf' method (Hyndman-Fan type 2)."""
    last = ascending.size - 1
    position = np.asarray(levels, dtype=np.float64) * ascending.size
    at_or_below = np.floor(position)
    upper = np.clip(at_or_below, 0, last).astype(np.int64)
    lower = np.clip(at_or_below - 1, 0, last).astype(np.int64)
    a, b = ascending[lower], ascending[upper]
    return np.where(position == at_or_below, np.fmin(np.fmax(a / 2 + b / 2, a), b), b)


def _histogram_edges(low: float, high: float) -> FloatArray:
    if low == high:
        low, high = low - 0.5, high + 0.5
    with np.errstate(over="ignore"):
        span = high - low
    if np.isfinite(span):
        return np.linspace(low, high, HISTOGRAM_BINS + 1)
    share = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)  # the span overflows: blend the ends instead
    edges = np.clip(low * (1 - share) + high * share, low, high)
    edges[0], edges[-1] = low, high
    return edges


def _sorted_bin_counts(ascending: FloatArray, edges: FloatArray) -> tuple[int, ...]:
    """`bin_counts` for sorted values, by binary search instead of a pass over the values."""
    cuts = np.searchsorted(ascending, edges[1:-1], side="left")
    bounds = np.concatenate(([0], cuts, [ascending.size]))
    return tuple(int(c) for c in np.diff(bounds))


def _category_stats(values: pa.ChunkedArray) -> CategoryStats:
    counts = pc.value_counts(values)
    top = _top_counts(counts, TOP_CATEGORIES)
    other = len(values) - sum(top.values())
    return CategoryStats(len(values), len(counts), top, other)


def _boolean_stats(values: pa.ChunkedArray) -> BooleanStats:
    true_count = int(pc.sum(values).as_py() or 0)
    return BooleanStats(true_count, len(values) - true_count)


def _text_stats(values: pa.ChunkedArray) -> TextStats:
    pieces = pc.split_pattern_regex(pc.utf8_lower(values), pattern=TOKEN_SPLIT_PATTERN)
    tokens = pc.list_flatten(pieces)
    tokens = pc.filter(tokens, pc.not_equal(tokens, ""))
    counts = pc.value_counts(tokens)
    return TextStats(len(values), len(tokens), len(counts), _top_counts(counts, TOP_TOKENS))


def _datetime_stats(values: pa.ChunkedArray) -> DatetimeStats:
    if len(values) == 0:
        return DatetimeStats(None, None)
    extremes = pc.min_max(values)
    return DatetimeStats(
        str(extremes["min"].cast(pa.string()).as_py()),
        str(extremes["max"].cast(pa.string()).as_py()),
    )


_PROFILERS: Mapping[LogicalType, Callable[[pa.ChunkedArray], ColumnStats]] = {
    LogicalType.INTEGER: _numeric_stats,
    LogicalType.FLOAT: _numeric_stats,
    LogicalType.BOOLEAN: _boolean_stats,
    LogicalType.STRING: _category_stats,
    LogicalType.CATEGORICAL: _category_stats,
    LogicalType.TEXT: _text_stats,
    LogicalType.DATETIME: _datetime_stats,
}


def _top_counts(counts: pa.StructArray, k: int) -> dict[str, int]:
    """The `k` largest of a `value_counts` result, most frequent first, ties by value."""
    if len(counts) == 0:
        return {}
    batch = pa.RecordBatch.from_struct_array(counts)
    keys = [("counts", "descending"), ("values", "ascending")]
    top = batch.take(pc.select_k_unstable(batch, k=min(k, len(batch)), sort_keys=keys))
    values, counts = top.column("values").to_pylist(), top.column("counts").to_pylist()
    return dict(zip(values, counts, strict=True))


def _to_json(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return dict(value) if isinstance(value, Mapping) else value


def _from_json(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    return dict(value) if isinstance(value, Mapping) else value


def _finite_or_none(value: Any) -> float | None:
    number = float(value)
    return number if np.isfinite(number) else None
