"""Realized performance of a window: the served outputs against the labels fed back later
(`POST /feedback`), beside the model version's own evaluation metrics from the registry.

Classification (outputs that are labels: integers, text, booleans): accuracy, and precision,
recall and F1 (binary for two classes, macro-averaged over more). Regression (outputs with
fractions): MAE, RMSE and R2. Metrics need at least `MIN_LABELLED` labelled rows in the window;
with fewer, the section says how many there are and reports none, so no rule fires on noise.
Each metric also goes to the top level of the report (`accuracy`, `f1`, ...), where alert rules
read it: `loopml alert rule add churn-drift --when "f1 < 0.80"`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.monitoring.jsonl import read_objects

MIN_LABELLED = 30
CLASSIFICATION = ("accuracy", "precision", "recall", "f1")
REGRESSION = ("mae", "rmse", "r2")


def json_values(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """JSON scalars (one per row, null where missing) as one typed Arrow column."""
    if len(column) == 0:
        return pa.chunked_array([], pa.null())
    wrapped = pc.binary_join_element_wise('{"v":', column, "}", "")
    return read_objects(wrapped)["v"]


def evaluate(
    outputs: pa.ChunkedArray,
    labels: pa.ChunkedArray,
    expected: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The performance section for served `outputs` and fed-back `labels` (JSON text columns,
    aligned; labels null where none came)."""
    have = pc.invert(pc.is_null(labels))
    predicted = json_values(outputs.filter(have))
    truth = json_values(labels.filter(have))
    known = pc.invert(pc.or_(pc.is_null(truth), pc.is_null(predicted)))  # a JSON null label
    predicted, truth = predicted.filter(known), truth.filter(known)
    count = len(truth)
    section: dict[str, Any] = {"labelled_rows": count, "metrics": {}, "model_metrics": {}}
    if count < MIN_LABELLED:
        section["note"] = f"{count} labelled rows; metrics need {MIN_LABELLED}"
        return section
    if _is_regression(predicted) or _is_regression(truth):
        metrics, task = _regression(predicted, truth), "regression"
    else:
        metrics, task = _classification(predicted, truth), "classification"
    section.update(task=task, metrics=metrics)
    if expected:
        section["model_metrics"] = {k: float(v) for k, v in expected.items() if k in metrics}
    return section


def _is_regression(values: pa.ChunkedArray) -> bool:
    if not pa.types.is_floating(values.type):
        return False
    numbers = values.drop_null().to_numpy()
    return bool(numbers.size) and not np.all(np.equal(np.mod(numbers, 1), 0))


def _classification(predicted: pa.ChunkedArray, truth: pa.ChunkedArray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    y_pred = np.asarray(_as_labels(predicted))
    y_true = np.asarray(_as_labels(truth))
    classes = np.union1d(y_true, y_pred)
    binary = classes.size == 2
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true,
        y_pred,
        average="binary" if binary else "macro",
        pos_label=classes[-1] if binary else 1,
        zero_division=0,
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
    }


def _as_labels(values: pa.ChunkedArray) -> list[str]:
    """Labels as text, so 1, 1.0 and true compare equal to their own kind only once."""
    if pa.types.is_floating(values.type):
        values = values.cast(pa.int64())
    text: list[str] = values.cast(pa.string()).to_numpy(zero_copy_only=False).tolist()
    return text


def _regression(predicted: pa.ChunkedArray, truth: pa.ChunkedArray) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    y_pred = predicted.cast(pa.float64()).to_numpy()
    y_true = truth.cast(pa.float64()).to_numpy()
    return {
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred))),
        "r2": float(r2_score(y_true, y_pred)),
    }
