"""Drift of numbers: the Kolmogorov-Smirnov test on the reference's bins, decided with the
Wasserstein distance over the reference's standard deviation (`loopml.domain.drift_statistics`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from loopml.domain import drift_statistics as stats
from loopml.errors import InvalidInput
from loopml.monitoring.column_kinds import NUMERIC
from loopml.monitoring.drift_methods.base import (
    CHART_POINTS,
    Decision,
    Evidence,
    Thresholds,
    is_number,
    is_text,
    significant,
)


class NumericMethod:
    """Drifted when the KS p-value, adjusted, is at most `alpha` and the Wasserstein distance
    is at least `wasserstein` reference standard deviations."""

    kind = NUMERIC

    def claims(self, column: pa.ChunkedArray) -> bool:
        return is_number(column.type)

    def check(self, name: str, column_type: pa.DataType) -> None:
        if is_number(column_type) or pa.types.is_null(column_type):
            return
        raise InvalidInput(
            f"Column {name!r} is numeric in the reference but "
            f"{_describe(column_type)} in the current data.",
            "Convert it to numbers first, or compare it as categorical=[...] on both sides.",
        )

    def summarize(self, column: pa.ChunkedArray) -> stats.NumericSummary:
        return stats.summarize_numeric(_floats(column))

    def read(self, stored: dict[str, Any]) -> stats.NumericSummary:
        return stats.NumericSummary.from_dict(stored)

    def count(
        self, reference: stats.NumericSummary, column: pa.ChunkedArray
    ) -> stats.NumericSummary:
        return stats.count_numeric(reference, _floats(column))

    def merge(
        self, first: stats.NumericSummary, second: stats.NumericSummary
    ) -> stats.NumericSummary:
        return stats.merge_numeric(first, second)

    def test(self, reference: stats.NumericSummary, current: stats.NumericSummary) -> Evidence:
        numeric = stats.numeric_drift(reference, current)
        values = {
            "ks_statistic": numeric.ks_statistic,
            "wasserstein": numeric.wasserstein,
            "psi": numeric.psi,
            "reference_mean": reference.mean,
            "current_mean": current.mean,
            "reference_nulls": reference.nulls,
            "current_nulls": current.nulls,
        }
        return Evidence("ks", numeric.p_value, values)

    def decide(self, evidence: Evidence, q_value: float, limits: Thresholds) -> Decision:
        value = evidence.statistics["wasserstein"]
        drifted = significant(q_value, limits) and value >= limits.wasserstein
        return Decision(bool(drifted), "wasserstein", float(value), float(limits.wasserstein))

    def chart(
        self, reference: stats.NumericSummary, current: stats.NumericSummary
    ) -> dict[str, Any]:
        """Both CDFs at up to `CHART_POINTS` reference quantiles."""
        if reference.rows == 0 or current.rows == 0 or reference.edges.size == 0:
            return {}
        at = np.unique(np.linspace(0, reference.edges.size - 1, CHART_POINTS).round().astype(int))
        ref_cdf = np.cumsum(reference.counts)[:-1][at] / reference.rows
        cur_cdf = np.cumsum(current.counts)[:-1][at] / current.rows
        return {
            "x": reference.edges[at].tolist(),
            "reference_cdf": ref_cdf.tolist(),
            "current_cdf": cur_cdf.tolist(),
        }


def _floats(column: pa.ChunkedArray) -> Any:
    if pa.types.is_decimal(column.type):
        column = column.cast(pa.float64())
    return column.to_numpy().astype(np.float64, copy=False)


def _describe(column_type: pa.DataType) -> str:
    if is_text(column_type):
        return "text"
    if pa.types.is_boolean(column_type):
        return "booleans"
    if pa.types.is_temporal(column_type):
        return "dates or times"
    return str(column_type)
