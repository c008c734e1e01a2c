"""Drift of categories: the chi-square homogeneity test (Fisher's exact test for two levels),
decided with the Jensen-Shannon distance above its noise floor
(`loopml.domain.drift_statistics`); the categories the reference never had are a finding from
`new_category_share` of the rows."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from loopml.domain import drift_statistics as stats
from loopml.monitoring.column_kinds import CATEGORICAL
from loopml.monitoring.drift_methods.base import (
    Decision,
    Evidence,
    Thresholds,
    is_text,
    shares_chart,
    significant,
)


class CategoricalMethod:
    """Drifted when the homogeneity p-value, adjusted, is at most `alpha` and the
    Jensen-Shannon distance is at least `jensen_shannon` and its noise floor. Claims short
    text, booleans and dictionary-encoded columns (text not claimed first as `text`)."""

    kind = CATEGORICAL

    def claims(self, column: pa.ChunkedArray) -> bool:
        column_type = column.type
        return bool(
            is_text(column_type)
            or pa.types.is_boolean(column_type)
            or pa.types.is_dictionary(column_type)
        )

    def check(self, name: str, column_type: pa.DataType) -> None:
        return None  # any value reads as its text

    def summarize(self, column: pa.ChunkedArray) -> stats.CategorySummary:
        return _category_counts(column)

    def read(self, stored: dict[str, Any]) -> stats.CategorySummary:
        return stats.CategorySummary.from_dict(stored)

    def count(
        self, reference: stats.CategorySummary, column: pa.ChunkedArray
    ) -> stats.CategorySummary:
        return _category_counts(column)

    def merge(
        self, first: stats.CategorySummary, second: stats.CategorySummary
    ) -> stats.CategorySummary:
        return stats.merge_categories(first, second)

    def test(self, reference: stats.CategorySummary, current: stats.CategorySummary) -> Evidence:
        category = stats.category_drift(reference, current)
        values = {
            "chi2": category.chi2,
            "degrees_of_freedom": category.degrees_of_freedom,
            "jensen_shannon": category.js_distance,
            "jensen_shannon_noise_floor": category.js_noise_floor,
            "psi": category.psi,
            "new_categories": category.new_categories,
            "reference_nulls": reference.nulls,
            "current_nulls": current.nulls,
        }
        return Evidence(category.test, category.p_value, values)

    def decide(self, evidence: Evidence, q_value: float, limits: Thresholds) -> Decision:
        value = evidence.statistics["jensen_shannon"]
        threshold = max(limits.jensen_shannon, evidence.statistics["jensen_shannon_noise_floor"])
        drifted = significant(q_value, limits) and value >= threshold
        new = evidence.statistics["new_categories"]
        common = [k for k, v in new.items() if v >= limits.new_category_share]
        findings = ["new_categories:" + ",".join(common)] if common else []
        return Decision(bool(drifted), "jensen_shannon", float(value), float(threshold), findings)

    def chart(
        self, reference: stats.CategorySummary, current: stats.CategorySummary
    ) -> dict[str, Any]:
        """The shares of the most frequent categories on either side."""
        return shares_chart(*stats.aligned_counts(reference, current))


def _category_counts(column: pa.ChunkedArray) -> stats.CategorySummary:
    nulls = column.null_count
    values = column.drop_null()
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if not is_text(values.type):
        values = values.cast(pa.string())
    counted = pc.value_counts(values)
    labels = counted.field("values").to_numpy(zero_copy_only=False)
    counts = counted.field("counts").to_numpy()
    return stats.summarize_categories(labels, counts, nulls)
