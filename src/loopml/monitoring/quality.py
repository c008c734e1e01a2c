"""Data quality of a window against the reference, vectorised over Arrow columns.

Checked, with the defaults in `QualityLimits`:
- columns the reference has and the window lacks, and columns the reference never had;
- type violations: values a column cannot read as its kind (a boolean or a word in a numeric
  column, an object in a categorical one, NaN or infinity anywhere: see
  `loopml.monitoring.column_kinds`); each is counted by column and kind with a few example
  request ids, then compared as missing
  (`null_rate` counts them; `invalid_share` is their share, `missing_share` that of the values
  that came as null); rows that are not a JSON object at all are `unreadable_rows`;
- missing values: a column's null share rising by `null_rate_rise` (5 points) over the
  reference's;
- values outside the reference's range: a share of at least `out_of_range` (1%) of a numeric
  column's values below its minimum or above its maximum;
- duplicate rows: at least `duplicates` (5%) of the window's rows repeat another row exactly;
- volume: rows in the window below half or above twice the median of the monitor's previous
  windows (from `min_history` windows on).
Each problem is an issue such as `null_rate:tenure`; `issue_count` is what alert rules read
(`quality_issues > 0`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.domain.uniques import distinct
from loopml.monitoring.column_kinds import ROW
from loopml.monitoring.drift import Reference
from loopml.monitoring.json_columns import conform
from loopml.monitoring.row_hashes import row_hashes


@dataclass(frozen=True)
class QualityLimits:
    null_rate_rise: float = 0.05
    out_of_range: float = 0.01
    duplicates: float = 0.05
    volume_low: float = 0.5
    volume_high: float = 2.0
    min_history: int = 3


def coerce(table: pa.Table, reference: Reference) -> tuple[pa.Table, dict[str, int]]:
    """`table` with each reference column in the reference's kind (numbers as float64, the rest
    as text; columns the reference lacks as text); returns the count of values per column that
    could not be read so (now null)."""
    parsed = conform(table, reference.kinds)
    violations = {name: 0 for name in table.column_names if reference.kinds.get(name) == "numeric"}
    return parsed.table, {**violations, **parsed.counts()}


def check(
    table: pa.Table,
    reference: Reference,
    violations: dict[str, int],
    history_rows: Sequence[int] = (),
    *,
    limits: QualityLimits | None = None,
    unreadable: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The quality section of a report for `table` (already `coerce`d); `unreadable` lists the
    values that could not be read ({column, kind, count, examples}), kept as they are."""
    counts = QualityCounts(reference)
    counts.add(table, violations)
    return counts.report(history_rows, limits=limits, unreadable=unreadable)


@dataclass
class ColumnCounts:
    """One reference column's counts over the pieces of a window."""

    rows: int = 0
    nulls: int = 0
    invalid: int = 0
    values: int = 0
    """Values present (numeric columns: those the range check looked at)."""
    outside: int = 0
    """Values below the reference's minimum or above its maximum."""


_COUNTS = ("rows", "nulls", "invalid", "values", "outside")


class QualityCounts:
    """What the quality check needs of a window, counted piece by piece (`add`), so a window of
    any length is checked holding one piece: counts per column, and the rows' hashes for the
    duplicates (`DistinctRows`)."""

    def __init__(self, reference: Reference) -> None:
        self.reference = reference
        self.rows = 0
        self.columns: dict[str, ColumnCounts] = {}
        self.seen: dict[str, None] = {}
        """Every column some piece had, in the order they came."""
        self.distinct = DistinctRows()

    def add(self, table: pa.Table, violations: Mapping[str, int]) -> None:
        """Count one piece (coerced); a reference column it lacks counts as null in it."""
        rows = table.num_rows
        self.rows += rows
        self.seen.update(dict.fromkeys(table.column_names))
        for name, kind in self.reference.kinds.items():
            counts = self.columns.setdefault(name, ColumnCounts())
            counts.rows += rows
            if name not in table.column_names:
                counts.nulls += rows
                continue
            column = table[name]
            counts.nulls += column.null_count
            counts.invalid += violations.get(name, 0)
            if kind == "numeric" and rows:
                summary = self.reference.summaries[name]
                present, outside = _out_of_range(column, summary.minimum, summary.maximum)
                counts.values += present
                counts.outside += outside
        self.distinct.add(table)

    def merge(self, other: QualityCounts) -> None:
        """Another part's counts (on the same reference) into these."""
        self.rows += other.rows
        self.seen.update(other.seen)
        for name, theirs in other.columns.items():
            mine = self.columns.setdefault(name, ColumnCounts())
            for field in _COUNTS:
                setattr(mine, field, getattr(mine, field) + getattr(theirs, field))
        self.distinct.merge(other.distinct)

    def state(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "seen": list(self.seen),
            "columns": {name: [getattr(c, f) for f in _COUNTS] for name, c in self.columns.items()},
            "distinct": self.distinct.state(),
        }

    @classmethod
    def from_state(cls, reference: Reference, state: Mapping[str, Any]) -> QualityCounts:
        made = cls(reference)
        made.rows = int(state["rows"])
        made.seen = dict.fromkeys(str(name) for name in state["seen"])
        made.columns = {
            str(name): ColumnCounts(*(int(n) for n in counts))
            for name, counts in state["columns"].items()
        }
        made.distinct = DistinctRows.from_state(state["distinct"])
        return made

    def report(
        self,
        history_rows: Sequence[int] = (),
        *,
        limits: QualityLimits | None = None,
        unreadable: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """The quality section for every piece counted."""
        limits = limits or QualityLimits()
        rows = self.rows
        issues: list[str] = []
        missing = [name for name in self.reference.kinds if name not in self.seen]
        unexpected = [name for name in self.seen if name not in self.reference.kinds]
        issues += [f"unexpected_column:{name}" for name in unexpected]
        columns: dict[str, dict[str, Any]] = {}
        for name in self.seen:
            if name not in self.reference.kinds:
                continue
            summary, counts = self.reference.summaries[name], self.columns[name]
            null_rate = counts.nulls / rows if rows else 0.0
            ref_total = summary.rows + getattr(summary, "nulls", 0)
            ref_null_rate = getattr(summary, "nulls", 0) / ref_total if ref_total else 0.0
            entry: dict[str, Any] = {
                "null_rate": null_rate,
                "reference_null_rate": ref_null_rate,
                "type_violations": counts.invalid,
                "invalid_share": counts.invalid / rows if rows else 0.0,
                "missing_share": (counts.nulls - counts.invalid) / rows if rows else 0.0,
            }
            if null_rate - ref_null_rate >= limits.null_rate_rise:
                issues.append(f"null_rate:{name}")
            if counts.invalid:
                issues.append(f"type_violations:{name}")
            if self.reference.kinds[name] == "numeric" and rows:
                share = counts.outside / counts.values if counts.values else 0.0
                entry["out_of_range_share"] = share
                if share >= limits.out_of_range:
                    issues.append(f"out_of_range:{name}")
            columns[name] = entry
        duplicates = rows - self.distinct.count() if rows >= 2 and self.seen else 0
        duplicate_share = duplicates / rows if rows else 0.0
        if duplicate_share >= limits.duplicates:
            issues.append("duplicate_rows")
        volume = _volume(rows, history_rows, limits)
        if volume["anomaly"]:
            issues.append("volume")
        lost_rows = sum(int(u["count"]) for u in unreadable if u["column"] == ROW)
        if lost_rows:
            issues.append("unreadable_rows")
        return {
            "missing_columns": missing,
            "unexpected_columns": unexpected,
            "columns": columns,
            "duplicate_rows": duplicates,
            "duplicate_share": duplicate_share,
            **({"duplicates_estimated": True} if self.distinct.estimated else {}),
            "volume": volume,
            "unreadable": [dict(u) for u in unreadable],
            "unreadable_values": sum(int(u["count"]) for u in unreadable),
            "unreadable_rows": lost_rows,
            "issues": issues,
            "issue_count": len(issues),
        }


def _out_of_range(column: pa.ChunkedArray, low: float, high: float) -> tuple[int, int]:
    """(values present, values outside `[low, high]`); (0, 0) when the bounds are not finite."""
    values = column.drop_null()
    if len(values) == 0 or not np.isfinite(low) or not np.isfinite(high):
        return 0, 0
    outside = pc.or_(pc.less(values, low), pc.greater(values, high))
    return len(values), int(pc.sum(outside).as_py() or 0)


EXACT_ROWS = 4_000_000
"""Distinct rows whose hashes are kept (32 MB; up to twice as many rows between merges) before
the count becomes an estimate."""
KEPT_HASHES = 1_000_000
"""Distinct rows whose hashes a kept summary of part of a window holds (8 MB); past it, the
sketch (16 KB), and a window counted from such parts is an estimate."""
SKETCH_BITS = 14
"""HyperLogLog registers: 2**14 of them, a relative error of about 0.8%."""


class DistinctRows:
    """How many distinct rows the pieces of a window hold (a row repeating another exactly,
    every column alike, is a duplicate): each row's 64-bit hash (`row_hashes`) is kept, so
    the count is exact up to `EXACT_ROWS` distinct rows (at least); when twice that many
    hashes are kept they are merged, and past `EXACT_ROWS` distinct ones they go into a
    HyperLogLog sketch and the count is an estimate (`estimated`), so memory stays flat."""

    def __init__(self) -> None:
        self._hashes: list[Any] = []
        self._kept = 0
        self._registers: Any = None

    @property
    def estimated(self) -> bool:
        return self._registers is not None

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0 or table.num_columns == 0:
            return
        self._take(row_hashes(table))

    def merge(self, other: DistinctRows) -> None:
        """Another part's rows into these: hashes while both count exactly, else the sketch."""
        if other._registers is None:
            self._take(other._merged())
            return
        if self._registers is None:
            self._registers = np.zeros(1 << SKETCH_BITS, np.uint8)
            self._sketch(self._merged())
            self._hashes, self._kept = [], 0
        np.maximum(self._registers, other._registers, out=self._registers)

    def state(self) -> dict[str, Any]:
        """The hashes (distinct) while they number at most `KEPT_HASHES`, else the sketch."""
        if self._registers is not None:
            return {"registers": self._registers}
        merged = self._merged()
        if merged.size <= KEPT_HASHES:
            return {"hashes": merged}
        sketch = DistinctRows()
        sketch._registers = np.zeros(1 << SKETCH_BITS, np.uint8)
        sketch._sketch(merged)
        return {"registers": sketch._registers}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> DistinctRows:
        made = cls()
        if "registers" in state:
            registers = np.asarray(state["registers"], np.uint8)
            if registers.shape != (1 << SKETCH_BITS,):
                raise ValueError("a sketch of another size")
            made._registers = registers.copy()
        else:
            made._take(np.asarray(state["hashes"], np.uint64))
        return made

    def _take(self, hashes: Any) -> None:
        if self._registers is not None:
            self._sketch(hashes)
            return
        self._hashes.append(hashes)
        self._kept += hashes.size
        if self._kept > 2 * EXACT_ROWS:  # at least EXACT_ROWS new rows between two merges
            merged = self._merged()
            self._hashes, self._kept = [merged], merged.size
            if merged.size > EXACT_ROWS:
                self._registers = np.zeros(1 << SKETCH_BITS, np.uint8)
                self._sketch(merged)
                self._hashes, self._kept = [], 0

    def count(self) -> int:
        if self._registers is None:
            return int(self._merged().size)
        registers = self._registers.astype(np.float64)
        size = int(registers.size)
        alpha = 0.7213 / (1 + 1.079 / size)
        estimate: float = alpha * size * size / float(np.sum(2.0**-registers))
        empty = int(np.count_nonzero(self._registers == 0))
        if estimate <= 2.5 * size and empty:
            estimate = size * math.log(size / empty)
        return round(estimate)

    def _merged(self) -> Any:
        return distinct(np.concatenate(self._hashes)) if self._hashes else np.empty(0, np.uint64)

    def _sketch(self, hashes: Any) -> None:
        for start in range(0, hashes.size, 1 << 20):  # a few MB of temporaries at a time
            part = hashes[start : start + (1 << 20)]
            index = (part >> np.uint64(64 - SKETCH_BITS)).astype(np.intp)
            rest = (part << np.uint64(SKETCH_BITS)) | np.uint64(1 << (SKETCH_BITS - 1))
            rank = (64 - np.floor(np.log2(rest.astype(np.float64)))).astype(np.uint8)
            np.maximum.at(self._registers, index, rank)


def _volume(rows: int, history: Sequence[int], limits: QualityLimits) -> dict[str, Any]:
    if len(history) < limits.min_history:
        return {"rows": rows, "expected": None, "anomaly": False}
    expected = statistics.median(history)
    anomaly = rows < limits.volume_low * expected or rows > limits.volume_high * expected
    return {"rows": rows, "expected": expected, "anomaly": bool(anomaly)}
