"""Drift of data too large to hold, read in batches: the counts of the parts, folded, are the
counts of the whole, and the report is the one of the whole table."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.domain import drift_statistics as stats
from loopml.domain import text_drift
from loopml.errors import InvalidInput
from loopml.monitoring import compare, compare_batches, summarize

numbers = st.lists(
    st.one_of(st.floats(-1e6, 1e6), st.just(math.nan), st.just(math.inf)), max_size=60
)
words = st.lists(st.sampled_from(["a", "b", "c", "é", "", "ab", "b c"]), max_size=40)


def _close(first: float, second: float) -> bool:
    return (math.isnan(first) and math.isnan(second)) or math.isclose(
        first, second, rel_tol=1e-9, abs_tol=1e-6
    )


@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=80), numbers, numbers)
def test_numeric_counts_of_two_parts_fold_into_the_count_of_both(
    reference: list[float], first: list[float], second: list[float]
) -> None:
    edges = stats.summarize_numeric(np.array(reference))
    whole = stats.count_numeric(edges, np.array(first + second))
    folded = stats.merge_numeric(
        stats.count_numeric(edges, np.array(first)), stats.count_numeric(edges, np.array(second))
    )
    assert folded.counts.tolist() == whole.counts.tolist()
    assert (folded.rows, folded.nulls) == (whole.rows, whole.nulls)
    for name in ("mean", "std", "minimum", "maximum", "below", "above"):
        assert _close(getattr(folded, name), getattr(whole, name)), name


@given(words, words)
def test_category_and_token_counts_of_two_parts_fold_into_the_count_of_both(
    first: list[str], second: list[str]
) -> None:
    def categories(values: list[str]) -> stats.CategorySummary:
        found, counts = np.unique(np.array(values, dtype=object).astype(str), return_counts=True)
        return stats.summarize_categories(found, counts, nulls=1)

    def tokens(values: list[str]) -> text_drift.TokenSummary:
        split = [t for v in values for t in v.split()]
        found, counts = np.unique(np.array(split, dtype=object).astype(str), return_counts=True)
        return text_drift.summarize_tokens(found, counts, len(values))

    whole, folded = (
        categories(first + second),
        stats.merge_categories(categories(first), categories(second)),
    )
    assert whole.to_dict() == {**folded.to_dict(), "nulls": whole.nulls}
    assert folded.nulls == 2  # each part's nulls counted
    assert (
        tokens(first + second).to_dict()
        == text_drift.merge_tokens(tokens(first), tokens(second)).to_dict()
    )


def test_counts_over_other_bins_are_refused() -> None:
    one = stats.summarize_numeric(np.arange(100.0))
    other = stats.summarize_numeric(np.arange(100.0) * 2)
    with pytest.raises(ValueError, match="different bins"):
        stats.merge_numeric(one, other)


def _frame(rows: int, seed: int, shift: float) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "tenure": rng.normal(shift, 1.0, rows),
            "plan": rng.choice(["basic", "pro", "team"], rows, p=[0.5, 0.3, 0.2]),
            "note": rng.choice(["slow app", "great support", "billing price", "outage"], rows),
        }
    )


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 5_000), st.sampled_from([0.0, 0.3]))
def test_a_window_in_batches_reports_what_the_whole_window_reports(
    batch_rows: int, shift: float
) -> None:
    reference = summarize(_frame(4_000, 1, 0.0), text=["note"])
    current = _frame(6_000, 2, shift)
    whole = compare(reference, current).to_dict()
    batched = compare_batches(reference, current.to_batches(max_chunksize=batch_rows)).to_dict()
    assert batched["drifted_features"] == whole["drifted_features"]
    assert batched["current_rows"] == whole["current_rows"] == 6_000
    mine_by_name = {f["name"]: f for f in batched["features"]}
    for feature in whole["features"]:
        mine = mine_by_name[feature["name"]]
        assert mine["drifted"] == feature["drifted"]
        assert _close(mine["p_value"] or math.nan, feature["p_value"] or math.nan)
        assert mine["chart"] == feature["chart"]


def test_batches_without_rows_or_without_a_summarised_reference_are_refused() -> None:
    reference = summarize(_frame(1_000, 1, 0.0))
    with pytest.raises(InvalidInput, match="no rows"):
        compare_batches(reference, [_frame(0, 2, 0.0)])
    with pytest.raises(InvalidInput, match="takes a Reference"):
        compare_batches(_frame(1_000, 1, 0.0), [_frame(10, 2, 0.0)])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="lacks the reference's columns"):
        compare_batches(reference, [_frame(10, 2, 0.0).drop_columns(["plan"])])
