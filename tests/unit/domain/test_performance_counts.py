"""A window's performance folded piece by piece gives scikit-learn's figures on the rows, and
the same figures however the window is cut."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.domain.performance_counts import (
    GRID,
    ConfidenceCounts,
    Confusion,
    ProbabilityCounts,
    Residuals,
)

cuts = st.lists(st.integers(0, 300), max_size=4)


def _pieces(rows: int, at: list[int]) -> list[slice]:
    edges = sorted({0, rows, *(min(a, rows) for a in at)})
    return [slice(a, b) for a, b in pairwise(edges)]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), classes=st.integers(1, 4), rows=st.integers(1, 300), at=cuts)
def test_class_counts_give_scikit_learns_metrics(
    seed: int, classes: int, rows: int, at: list[int]
) -> None:
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    rng = np.random.default_rng(seed)
    names = np.array(["basic", "family", "pro", "zz"][:classes])
    truth = names[rng.integers(0, classes, rows)]
    predicted = np.where(rng.random(rows) < 0.7, truth, names[rng.integers(0, classes, rows)])
    counts = Confusion()
    for piece in _pieces(rows, at):
        counts.add(truth[piece], predicted[piece])
    found = counts.metrics()
    present = np.union1d(truth, predicted)
    binary = present.size == 2
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth,
        predicted,
        average="binary" if binary else "macro",
        pos_label=present[-1] if binary else 1,
        zero_division=0,
    )
    assert counts.rows == rows
    assert found["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert found["precision"] == pytest.approx(precision)
    assert found["recall"] == pytest.approx(recall)
    assert found["f1"] == pytest.approx(f1)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(2, 300), offset=st.floats(-1e6, 1e6), at=cuts)
def test_residuals_merged_give_scikit_learns_metrics(
    seed: int, rows: int, offset: float, at: list[int]
) -> None:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    rng = np.random.default_rng(seed)
    truth = offset + rng.normal(0, 3, rows)
    predicted = truth + rng.normal(0, 1, rows)
    residuals = Residuals()
    for piece in _pieces(rows, at):
        residuals.add(truth[piece], predicted[piece])
    found = residuals.metrics()
    assert found["mae"] == pytest.approx(mean_absolute_error(truth, predicted))
    assert found["rmse"] == pytest.approx(np.sqrt(mean_squared_error(truth, predicted)))
    assert found["r2"] == pytest.approx(r2_score(truth, predicted), rel=1e-6, abs=1e-9)


def test_r2_of_labels_that_do_not_vary_is_scikit_learns() -> None:
    residuals = Residuals()
    residuals.add(np.full(40, 2.0), np.full(40, 2.0))
    assert residuals.metrics()["r2"] == 1.0
    residuals.add(np.full(40, 2.0), np.full(40, 3.0))
    assert residuals.metrics()["r2"] == 0.0


def _probabilities(rng: np.random.Generator, rows: int, classes: int) -> np.ndarray:
    return rng.dirichlet(np.ones(classes), rows)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), classes=st.integers(2, 4), rows=st.integers(60, 400), at=cuts)
def test_probability_counts_give_scikit_learns_auc_and_log_loss(
    seed: int, classes: int, rows: int, at: list[int]
) -> None:
    from sklearn.metrics import log_loss, roc_auc_score

    rng = np.random.default_rng(seed)
    matrix = _probabilities(rng, rows, classes)
    codes = np.array([rng.choice(classes, p=row) for row in matrix])
    codes[:classes] = np.arange(classes)  # every class labelled at least once
    names = np.array([f"c{k}" for k in range(classes)])
    truth = names[codes]
    counts = ProbabilityCounts()
    for piece in _pieces(rows, at):
        counts.add(truth[piece], matrix[piece])
    found = counts.metrics(min_rows=30)

    def auc(scores: np.ndarray) -> float:  # one-vs-rest, the classes' mean (scikit-learn's)
        if classes == 2:
            return float(roc_auc_score(codes == 1, scores[:, 1]))
        return float(np.mean([roc_auc_score(codes == k, scores[:, k]) for k in range(classes)]))

    gridded = np.rint(matrix * GRID) / GRID  # scores closer than one cell are ties
    assert found["roc_auc"] == pytest.approx(auc(gridded), abs=1e-12)
    assert found["roc_auc"] == pytest.approx(auc(matrix), abs=2e-3)  # a tie moves it little
    assert found["log_loss"] == pytest.approx(log_loss(codes, matrix), rel=1e-9)


def test_probabilities_that_do_not_fit_the_labels_give_no_score() -> None:
    rng = np.random.default_rng(0)
    counts = ProbabilityCounts()
    counts.add(np.array(["a", "b"] * 30), _probabilities(rng, 60, 2))
    assert set(counts.metrics(min_rows=30)) == {"roc_auc", "log_loss"}
    counts.add(np.array(["a"] * 10), _probabilities(rng, 10, 3))  # another number of classes
    assert counts.metrics(min_rows=30) == {}
    few = ProbabilityCounts()
    few.add(np.array(["a", "b"] * 10), _probabilities(rng, 20, 2))
    assert few.metrics(min_rows=30) == {}  # too few rows to say
    broken = ProbabilityCounts()
    broken.add(np.array(["a", "b"] * 30), None)  # not probabilities
    assert broken.metrics(min_rows=30) == {}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(30, 500), at=cuts)
def test_the_estimate_is_the_same_however_the_window_is_cut(
    seed: int, rows: int, at: list[int]
) -> None:
    rng = np.random.default_rng(seed)
    positive = rng.random(rows)
    matrix = np.column_stack([1 - positive, positive])
    whole, cut = ConfidenceCounts(), ConfidenceCounts()
    whole.add(matrix)
    for piece in _pieces(rows, at):
        cut.add(matrix[piece])
    expected, found = whole.estimate(30), cut.estimate(30)
    assert found["rows"] == expected["rows"] == rows
    for name in ("accuracy", "accuracy_standard_error", "roc_auc"):
        assert found[name] == pytest.approx(expected[name], rel=1e-9)
    assert found["accuracy"] == pytest.approx(np.maximum(positive, 1 - positive).mean())
