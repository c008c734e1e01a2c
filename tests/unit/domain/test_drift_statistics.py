"""Drift statistics on counts: merging, agreement with the textbook tests, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from loopml.domain import drift_statistics as drift
from loopml.domain import text_drift

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@given(
    arrays(np.float64, st.integers(1, 400), elements=finite),
    arrays(np.float64, st.integers(0, 300), elements=finite),
    arrays(np.float64, st.integers(0, 300), elements=finite),
)
def test_window_counts_merge_exactly(reference: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    summary = drift.summarize_numeric(reference, bins=50)
    whole = drift.count_numeric(summary, np.concatenate([a, b]))
    parts = drift.count_numeric(summary, a).counts + drift.count_numeric(summary, b).counts
    assert np.array_equal(whole.counts, parts)
    assert whole.counts.sum() == a.size + b.size


def test_nulls_and_infinities_are_counted_apart() -> None:
    summary = drift.summarize_numeric(np.array([1.0, np.nan, 2.0, np.inf, 3.0]))
    assert (summary.rows, summary.nulls) == (3, 2)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.0, 0.5))
def test_binned_ks_never_exceeds_scipy_and_is_close(seed: int, shift: float) -> None:
    from scipy import stats

    rng = np.random.default_rng(seed)
    reference, current = rng.normal(0, 1, 3_000), rng.normal(shift, 1, 2_000)
    result = drift.numeric_drift(
        drift.summarize_numeric(reference),
        drift.count_numeric(drift.summarize_numeric(reference), current),
    )
    exact = stats.ks_2samp(reference, current, method="asymp")
    assert result.ks_statistic <= exact.statistic + 1e-12
    assert result.ks_statistic >= exact.statistic - 1.5 / 1000 - 1e-9  # one bin's share
    assert result.p_value >= exact.pvalue - 1e-9  # conservative


@pytest.mark.parametrize("shift", [0.0, 0.1, 0.5, 2.0])
def test_wasserstein_is_the_shift_in_reference_spreads(shift: float) -> None:
    from scipy import stats

    rng = np.random.default_rng(0)
    reference, current = rng.normal(5, 3, 50_000), rng.normal(5 + 3 * shift, 3, 50_000)
    summary = drift.summarize_numeric(reference)
    result = drift.numeric_drift(summary, drift.count_numeric(summary, current))
    exact = stats.wasserstein_distance(reference, current) / reference.std()
    assert result.wasserstein == pytest.approx(exact, abs=0.01)


def test_psi_is_zero_for_identical_counts_and_grows_with_the_shift() -> None:
    assert drift.psi(np.array([10, 20, 30]), np.array([10, 20, 30])) == pytest.approx(0.0)
    assert drift.psi(np.array([10, 20, 30]), np.array([30, 20, 10])) > 0.5


def test_chi2_matches_scipy_when_no_cell_is_pooled() -> None:
    from scipy import stats

    ref, cur = np.array([120, 80, 60, 40]), np.array([100, 90, 70, 30])
    statistic, p_value, dof = drift.chi2_homogeneity(ref, cur)
    expected = stats.chi2_contingency(np.vstack([ref, cur]), correction=False)
    assert statistic == pytest.approx(expected.statistic)
    assert p_value == pytest.approx(expected.pvalue)
    assert dof == 3


def test_an_unseen_category_is_a_finite_cell() -> None:
    ref = drift.summarize_categories(np.array(["a", "b"]), np.array([500, 500]), 0)
    cur = drift.summarize_categories(np.array(["a", "b", "z"]), np.array([450, 450, 100]), 3)
    result = drift.category_drift(ref, cur)
    assert math.isfinite(result.chi2)
    assert result.p_value < 1e-6
    assert result.new_categories == {"z": pytest.approx(0.1)}
    assert math.isfinite(result.psi)


@given(
    arrays(np.int64, 6, elements=st.integers(0, 1_000)),
    arrays(np.int64, 6, elements=st.integers(0, 1_000)),
)
def test_js_distance_is_between_0_and_1_and_symmetric(a: np.ndarray, b: np.ndarray) -> None:
    if a.sum() == 0 or b.sum() == 0:
        return
    distance = drift.js_distance(a, b)
    assert 0.0 <= distance <= 1.0 + 1e-12
    assert distance == pytest.approx(drift.js_distance(b, a))


def test_disjoint_samples_are_at_js_distance_1() -> None:
    assert drift.js_distance(np.array([5, 0]), np.array([0, 7])) == pytest.approx(1.0)


@given(arrays(np.float64, st.integers(1, 40), elements=st.floats(0.0, 1.0)))
def test_benjamini_hochberg_q_values_are_monotone_and_at_least_p(p: np.ndarray) -> None:
    q = drift.benjamini_hochberg(p)
    assert np.all(q >= p - 1e-12)
    assert np.all(q <= 1.0)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(q[order]) >= -1e-12)


def test_benjamini_hochberg_known_values_and_nan() -> None:
    q = drift.benjamini_hochberg(np.array([0.01, 0.04, np.nan, 0.03]))
    assert q[2] != q[2]  # NaN stays NaN
    assert q[[0, 1, 3]] == pytest.approx([0.03, 0.04, 0.04])


def test_a_summary_survives_json() -> None:
    summary = drift.summarize_numeric(np.random.default_rng(0).normal(size=1_000))
    back = drift.NumericSummary.from_dict(summary.to_dict())
    assert np.array_equal(back.edges, summary.edges)
    assert np.array_equal(back.counts, summary.counts)


@pytest.mark.parametrize("kind", ["normal", "heavy-tailed", "integers", "edges-and-beyond"])
def test_the_grid_lookup_agrees_with_binary_search(kind: str) -> None:
    rng = np.random.default_rng(3)
    reference = {
        "normal": rng.normal(size=200_000),
        "heavy-tailed": np.exp(rng.normal(0, 2, 200_000)),
        "integers": rng.integers(0, 40, 200_000).astype(float),
        "edges-and-beyond": rng.uniform(-1, 1, 200_000),
    }[kind]
    edges = drift.summarize_numeric(reference).edges
    values = np.concatenate(
        [reference[::-1] * 1.01, edges, np.nextafter(edges, np.inf), [-1e9, 1e9, edges[0] - 1e-12]]
    )
    assert np.array_equal(
        drift.bin_index(edges, values), np.searchsorted(edges, values, side="left")
    )


def _two_level_size(rows: int, share: float) -> float:
    """The exact chance that the two-level test rejects at 5% when both samples of `rows` come
    from one split `share`: every pair of counts, weighted by its binomial probability."""
    from scipy import stats

    counts = np.arange(rows + 1)
    weights = stats.binom.pmf(counts, rows, share)
    likely = counts[weights > 1e-9]
    size = 0.0
    for a in likely:
        reference = drift.summarize_categories(np.array(["no", "yes"]), [rows - a, a], 0)
        for b in likely:
            current = drift.summarize_categories(np.array(["no", "yes"]), [rows - b, b], 0)
            if drift.category_drift(reference, current).p_value <= 0.05:
                size += weights[a] * weights[b]
    return size


def test_the_two_level_test_rejects_at_most_5_percent_with_no_drift() -> None:
    # Pearson's chi-square rejected 5.6% of these (its worst case at 100 rows per side).
    assert _two_level_size(100, 0.5) <= 0.05


def test_two_cells_take_fishers_exact_test_and_more_take_the_chi_square() -> None:
    from scipy import stats

    test, statistic, p_value, dof = drift.homogeneity(np.array([40, 60]), np.array([55, 45]))
    table = np.array([[40, 60], [55, 45]])
    assert (test, dof) == ("fisher", 1)
    assert p_value == pytest.approx(stats.fisher_exact(table).pvalue)
    assert statistic == pytest.approx(stats.chi2_contingency(table, correction=False).statistic)
    ref, cur = np.array([40, 60, 30]), np.array([55, 45, 30])
    assert drift.homogeneity(ref, cur)[0] == "chi2"
    assert drift.homogeneity(ref, cur)[1:] == drift.chi2_homogeneity(ref, cur)


def _tokens(counts: dict[str, int], keep: int | None = None) -> text_drift.TokenSummary:
    labels = np.array(list(counts), dtype=object)
    return text_drift.summarize_tokens(labels, np.array(list(counts.values())), 10, keep)


def test_the_unseen_share_is_the_share_of_tokens_seen_once() -> None:
    summary = _tokens({"a": 50, "b": 30, "c": 10, "d": 4, "e": 2, "f": 1, "g": 1, "h": 1, "i": 1})
    share, variance = text_drift.unseen_share(summary)
    assert share == pytest.approx(4 / 100)  # Good-Turing: four singletons in 100 tokens
    assert variance == pytest.approx(0.04 * 0.96 / 100 + 2 * 1 / 100**2)
    cut = _tokens({"a": 50, "b": 30, "c": 10, "d": 4, "e": 2, "f": 1, "g": 1, "h": 1, "i": 1}, 4)
    assert (cut.singletons, cut.doubletons) == (4, 1)  # counted before the vocabulary was cut
    assert text_drift.unseen_share(cut)[0] == pytest.approx((6 + 4) / 100)  # cut tokens are unseen


def test_a_reference_stored_before_singletons_were_kept_still_reads() -> None:
    summary = _tokens({"a": 5, "b": 2, "c": 1, "d": 1})
    stored = {k: v for k, v in summary.to_dict().items() if k not in {"singletons", "doubletons"}}
    again = text_drift.TokenSummary.from_dict(stored)
    assert (again.singletons, again.doubletons) == (2, 1)
    kept = text_drift.TokenSummary.from_dict(summary.to_dict())
    assert kept.to_dict() == summary.to_dict()


def test_new_words_are_significant_only_beyond_what_the_reference_expects() -> None:
    share, variance = 0.05, 0.05 * 0.95 / 10_000
    assert text_drift.unseen_p_value(0, 1_000, share, variance) == 1.0
    assert text_drift.unseen_p_value(50, 1_000, share, variance) > 0.4  # as expected
    assert text_drift.unseen_p_value(90, 1_000, share, variance) < 1e-6  # far more
    # The estimate's own uncertainty widens the tail: a small reference is less sure.
    assert text_drift.unseen_p_value(
        65, 1_000, share, 0.05 * 0.95 / 200
    ) > text_drift.unseen_p_value(65, 1_000, share, variance)
