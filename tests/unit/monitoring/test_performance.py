"""Realized performance from served outputs and fed-back labels (JSON text, as logged)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from loopml.monitoring.performance import evaluate


def _json(values: list[object]) -> pa.ChunkedArray:
    return pa.chunked_array([[None if v is None else json.dumps(v) for v in values]], pa.string())


def test_classification_metrics_match_scikit_learn() -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 400).tolist()
    predicted = [t if rng.random() < 0.85 else 1 - t for t in truth]
    section = evaluate(_json(predicted), _json(truth), {"f1": 0.9, "loss": 0.3})
    assert section["task"] == "classification"
    assert section["metrics"]["f1"] == pytest.approx(f1_score(truth, predicted))
    assert section["model_metrics"] == {"f1": 0.9}  # only the ones measured here


def test_text_labels_and_many_classes_use_macro_averages() -> None:
    labels = ["basic", "pro", "family"] * 20
    section = evaluate(_json(labels), _json(labels))
    assert section["metrics"] == {"accuracy": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_regression_metrics() -> None:
    truth = [float(i) + 0.5 for i in range(50)]
    predicted = [t + 1.0 for t in truth]
    section = evaluate(_json(predicted), _json(truth))
    assert section["task"] == "regression"
    assert section["metrics"]["mae"] == pytest.approx(1.0)
    assert section["metrics"]["rmse"] == pytest.approx(1.0)


def test_rows_without_a_label_do_not_count() -> None:
    section = evaluate(_json([1] * 100), _json([1] * 20 + [None] * 80))
    assert section["labelled_rows"] == 20
    assert section["metrics"] == {}
    assert "metrics need 30" in section["note"]


def _calibrated(
    rows: int, seed: int, mean: float, spread: float
) -> tuple[list[int], list[list[float]]]:
    """Labels and a perfectly calibrated model's probabilities: y ~ Bernoulli(sigmoid(2x))."""
    rng = np.random.default_rng(seed)
    x = rng.normal(mean, spread, rows)
    p = 1 / (1 + np.exp(-2 * x))
    y = (rng.random(rows) < p).astype(int)
    return y.tolist(), np.column_stack([1 - p, p]).tolist()


@pytest.mark.parametrize(("mean", "spread"), [(0.0, 1.0), (0.8, 0.6), (-0.5, 2.0)])
def test_the_label_free_estimate_tracks_realized_auc_under_covariate_shift(
    mean: float, spread: float
) -> None:
    labels, probabilities = _calibrated(20_000, seed=int(10 * spread), mean=mean, spread=spread)
    predicted = [int(p[1] >= 0.5) for p in probabilities]
    section = evaluate(_json(predicted), _json(labels), probabilities=_json(probabilities))
    realized, estimated = section["metrics"], section["estimated"]
    assert estimated["roc_auc"] == pytest.approx(realized["roc_auc"], abs=0.02)
    assert estimated["accuracy"] == pytest.approx(realized["accuracy"], abs=0.02)
    assert realized["log_loss"] > 0


def test_the_estimate_needs_no_label() -> None:
    _, probabilities = _calibrated(1_000, seed=3, mean=0.0, spread=1.0)
    section = evaluate(
        _json([1] * 1_000), _json([None] * 1_000), probabilities=_json(probabilities)
    )
    assert section["metrics"] == {}
    assert 0.5 < section["estimated"]["roc_auc"] < 1.0
    assert section["estimated"]["accuracy_standard_error"] < 0.02


def test_missing_json_values_keep_their_rows() -> None:
    from loopml.monitoring.json_columns import read_objects
    from loopml.monitoring.performance import json_values

    column = pa.chunked_array([["1", None], ["3", None]], pa.string())
    assert json_values(column).to_pylist() == [1, None, 3, None]
    assert json_values(pa.chunked_array([[None, None]], pa.string())).to_pylist() == [None, None]
    rows = pa.chunked_array([['{"a": 1}', None, '{"a": 3}']], pa.string())
    assert read_objects(rows).table.column("a").to_pylist() == [1, None, 3]


def test_poison_outputs_and_labels_are_left_out_and_counted() -> None:
    rng = np.random.default_rng(1)
    truth: list[object] = rng.integers(0, 2, 100).tolist()
    predicted: list[object] = list(truth)
    truth[:4] = [{"label": 1}, [1], "NaN", True]  # not numbers, as most labels are
    predicted[4:6] = [1e30, float("nan")]  # a huge class, and NaN (logged as the NaN literal)
    outputs = pa.chunked_array([[json.dumps(v) for v in predicted]], pa.string())
    section = evaluate(outputs, _json(truth))
    assert section["task"] == "classification"
    assert section["unreadable_labels"] == 4
    assert section["unreadable_outputs"] == 1
    assert section["labelled_rows"] == 95
    assert 0.9 < section["metrics"]["accuracy"] < 1.0  # 1e30 is a class nobody labelled


def test_regression_ignores_labels_that_are_no_numbers() -> None:
    truth: list[object] = [float(i) + 0.5 for i in range(50)]
    truth[:5] = ["n/a", None, {"v": 1}, "7.5", False]
    section = evaluate(_json([0.5] * 50), _json(truth))
    assert section["task"] == "regression"
    assert section["labelled_rows"] == 46  # "7.5" reads as a number; the rest are left out
    assert section["metrics"]["mae"] > 0


@pytest.mark.parametrize("regression", [False, True])
def test_a_window_scored_in_pieces_reports_what_it_reports_whole(regression: bool) -> None:
    from loopml.monitoring.performance import PerformanceCounts

    labels, probabilities = _calibrated(3_000, seed=7, mean=0.2, spread=1.0)
    truth: list[object] = [float(y) + 0.25 for y in labels] if regression else list(labels)
    predicted: list[object] = [int(p[1] >= 0.5) for p in probabilities]
    truth[::3] = [None] * len(truth[::3])  # a third of the rows got no label
    truth[1:40:7] = ["n/a"] * len(truth[1:40:7])  # and some labels cannot be read
    outputs, fed_back, scores = _json(predicted), _json(truth), _json(probabilities)
    whole = evaluate(outputs, fed_back, {"accuracy": 0.8, "mae": 0.1}, scores)
    counts = PerformanceCounts()
    for start in range(0, 3_000, 700):  # the regression shows only from the first fraction
        counts.add(*(column.slice(start, 700) for column in (outputs, fed_back, scores)))
    cut = counts.report({"accuracy": 0.8, "mae": 0.1})
    assert cut.keys() == whole.keys()
    for key, value in whole.items():  # the same figures, summed in another order
        if isinstance(value, dict):
            assert cut[key].keys() == value.keys(), key
            for name, figure in value.items():
                same = figure if isinstance(figure, str) else pytest.approx(figure, rel=1e-12)
                assert cut[key][name] == same, (key, name)
        else:
            assert cut[key] == value, key
    assert whole["task"] == ("regression" if regression else "classification")
    assert whole["labelled_rows"] > 1_900
    assert whole["estimated"]["rows"] == 3_000
    if not regression:
        assert set(whole["metrics"]) >= {"accuracy", "roc_auc", "log_loss"}
