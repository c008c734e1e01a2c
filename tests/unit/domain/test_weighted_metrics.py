"""Metrics of weighted rows: a row drawn k times in a resample counts as k copies of it, so
each value equals scikit-learn's on the resampled rows (ties in the scores included)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from loopml.domain.weighted_metrics import CLASSIFICATION, REGRESSION, EncodedRows
from loopml.monitoring.performance import score


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=0, max_value=2**31),
    st.integers(min_value=2, max_value=3),
    st.sampled_from([1, 2, 6]),
)
@example(0, 3, 1)  # coarse ties: rows already summing to 1 are scored as they are
def test_a_resample_weighs_like_the_rows_it_drew(seed: int, classes: int, decimals: int) -> None:
    rng = np.random.default_rng(seed)
    truth = np.r_[np.arange(classes), rng.integers(0, classes, 60)]  # every class present
    predicted = np.where(rng.random(truth.size) < 0.6, truth, rng.integers(0, classes, truth.size))
    proba = np.round(rng.dirichlet(np.ones(classes), truth.size), decimals)  # ties when coarse
    proba /= proba.sum(axis=1, keepdims=True)
    drawn = np.r_[np.arange(classes), rng.integers(0, truth.size, truth.size - classes)]
    weights = np.bincount(drawn, minlength=truth.size)[None, :].astype(float)
    rows = EncodedRows.encode(truth, {"model": predicted}, {"model": proba}, set(CLASSIFICATION))
    expected = score(predicted[drawn], truth[drawn], proba[drawn])[1]
    for metric in sorted(CLASSIFICATION):
        assert rows.value(metric, "model", weights)[0] == pytest.approx(expected[metric]), metric


def test_regression_resamples_weigh_like_the_rows_they_drew() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=80)
    predicted = truth + rng.normal(size=80)
    drawn = rng.integers(0, 80, 80)
    weights = np.bincount(drawn, minlength=80)[None, :].astype(float)
    rows = EncodedRows.encode(truth, {"model": predicted}, {"model": None}, set(REGRESSION))
    expected = score(predicted[drawn], truth[drawn])[1]
    for metric in sorted(REGRESSION):
        assert rows.value(metric, "model", weights)[0] == pytest.approx(expected[metric]), metric
