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
