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

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.monitoring.column_kinds import ROW
from loopml.monitoring.drift import Reference
from loopml.monitoring.json_columns import conform


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
    limits = limits or QualityLimits()
    rows = table.num_rows
    issues: list[str] = []
    missing = [name for name in reference.kinds if name not in table.column_names]
    unexpected = [name for name in table.column_names if name not in reference.kinds]
    issues += [f"unexpected_column:{name}" for name in unexpected]
    columns: dict[str, dict[str, Any]] = {}
    for name in table.column_names:
        if name not in reference.kinds:
            continue
        summary = reference.summaries[name]
        column = table[name]
        null_rate = column.null_count / rows if rows else 0.0
        ref_total = summary.rows + getattr(summary, "nulls", 0)
        ref_null_rate = getattr(summary, "nulls", 0) / ref_total if ref_total else 0.0
        invalid = violations.get(name, 0)
        entry: dict[str, Any] = {
            "null_rate": null_rate,
            "reference_null_rate": ref_null_rate,
            "type_violations": invalid,
            "invalid_share": invalid / rows if rows else 0.0,
            "missing_share": (column.null_count - invalid) / rows if rows else 0.0,
        }
        if null_rate - ref_null_rate >= limits.null_rate_rise:
            issues.append(f"null_rate:{name}")
        if entry["type_violations"]:
            issues.append(f"type_violations:{name}")
        if reference.kinds[name] == "numeric" and rows:
            share = _out_of_range(column, summary.minimum, summary.maximum)
            entry["out_of_range_share"] = share
            if share >= limits.out_of_range:
                issues.append(f"out_of_range:{name}")
        columns[name] = entry
    duplicates = _duplicate_rows(table)
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
        "volume": volume,
        "unreadable": [dict(u) for u in unreadable],
        "unreadable_values": sum(int(u["count"]) for u in unreadable),
        "unreadable_rows": lost_rows,
        "issues": issues,
        "issue_count": len(issues),
    }


def _out_of_range(column: pa.ChunkedArray, low: float, high: float) -> float:
    values = column.drop_null()
    if len(values) == 0 or not np.isfinite(low) or not np.isfinite(high):
        return 0.0
    outside = pc.or_(pc.less(values, low), pc.greater(values, high))
    return float(pc.sum(outside).as_py() or 0) / len(values)


def _duplicate_rows(table: pa.Table) -> int:
    """Rows that repeat an earlier row exactly (all columns)."""
    if table.num_rows < 2 or table.num_columns == 0:
        return 0
    counted = table.group_by(table.column_names, use_threads=False).aggregate([])
    return int(table.num_rows - counted.num_rows)


def _volume(rows: int, history: Sequence[int], limits: QualityLimits) -> dict[str, Any]:
    if len(history) < limits.min_history:
        return {"rows": rows, "expected": None, "anomaly": False}
    expected = statistics.median(history)
    anomaly = rows < limits.volume_low * expected or rows > limits.volume_high * expected
    return {"rows": rows, "expected": expected, "anomaly": bool(anomaly)}
