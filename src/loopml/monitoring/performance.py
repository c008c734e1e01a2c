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

from loopml.monitoring.column_kinds import VECTOR, Parsed, number_text
from loopml.monitoring.json_columns import as_numbers, read_values

MIN_LABELLED = 30
CLASSIFICATION = ("accuracy", "precision", "recall", "f1")
REGRESSION = ("mae", "rmse", "r2")


def json_values(column: pa.ChunkedArray, kind: str | None = None) -> pa.ChunkedArray:
    """JSON scalars (one per row, null where missing) as one typed Arrow column; a value that
    cannot be read (an object, NaN, a type most rows do not have) is null."""
    return read_values(column, kind).table["value"]


def evaluate(
    outputs: pa.ChunkedArray,
    labels: pa.ChunkedArray,
    expected: Mapping[str, float] | None = None,
    probabilities: pa.ChunkedArray | None = None,
    *,
    kinds: tuple[str | None, str | None] = (None, None),
) -> dict[str, Any]:
    """The performance section for served `outputs` and fed-back `labels` (JSON text columns,
    aligned; labels null where none came); `probabilities` (JSON arrays of class probabilities,
    null where not logged) add ROC AUC and log loss, and a label-free estimate. `kinds` are
    those of the outputs and the labels in the reference (`categorical` for classes), when
    known; else each is read as most of its values are. A row whose output or label cannot be
    read is left out, and counted (`unreadable_outputs`, `unreadable_labels`)."""
    section = _realized(outputs, labels, expected, probabilities, kinds)
    if probabilities is not None:
        estimate = estimate_binary(json_values(probabilities, VECTOR))
        if estimate:
            section["estimated"] = estimate
    return section


def _realized(
    outputs: pa.ChunkedArray,
    labels: pa.ChunkedArray,
    expected: Mapping[str, float] | None,
    probabilities: pa.ChunkedArray | None,
    kinds: tuple[str | None, str | None],
) -> dict[str, Any]:
    have = pc.invert(pc.is_null(labels))
    served = read_values(outputs.filter(have), kinds[0])
    fed_back = read_values(labels.filter(have), kinds[1])
    predicted, truth = served.table["value"], fed_back.table["value"]
    regression = _is_regression(predicted) or _is_regression(truth)
    if regression:  # both sides as numbers: a label "n/a" is no score
        predicted, truth = as_numbers(predicted), as_numbers(truth)
    known = pc.invert(pc.or_(pc.is_null(truth), pc.is_null(predicted)))  # a JSON null label
    predicted, truth = predicted.filter(known), truth.filter(known)
    count = len(truth)
    section: dict[str, Any] = {
        "labelled_rows": count,
        "metrics": {},
        "model_metrics": {},
        **_unreadable(served, fed_back),
    }
    if count < MIN_LABELLED:
        section["note"] = f"{count} labelled rows; metrics need {MIN_LABELLED}"
        return section
    if regression:
        metrics, task = _regression(predicted, truth), "regression"
    else:
        metrics, task = _classification(predicted, truth), "classification"
        if probabilities is not None:
            scores = json_values(probabilities.filter(have), VECTOR).filter(known)
            metrics |= _probabilistic(truth, scores)
    section.update(task=task, metrics=metrics)
    if expected:
        section["model_metrics"] = {k: float(v) for k, v in expected.items() if k in metrics}
    return section


def _unreadable(outputs: Parsed, labels: Parsed) -> dict[str, int]:
    """How many labelled rows had an output or a label that could not be read (left out)."""
    return {"unreadable_outputs": outputs.count, "unreadable_labels": labels.count}


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
    if pa.types.is_floating(values.type) or pa.types.is_integer(values.type):
        values = pa.chunked_array([number_text(values)])
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


def _probabilities(scores: pa.ChunkedArray) -> Any:
    """Rows of class probabilities as a 2-D float array (rows without them dropped)."""
    present = scores.drop_null()
    if len(present) == 0 or not pa.types.is_list(present.type):
        return None
    flat = pc.list_flatten(present).to_numpy(zero_copy_only=False).astype(np.float64)
    width = flat.size // len(present)
    if width < 2 or width * len(present) != flat.size:
        return None
    matrix = flat.reshape(len(present), width)
    if np.any((matrix < 0) | (matrix > 1)) or not np.allclose(matrix.sum(axis=1), 1, atol=1e-3):
        return None  # not probabilities: no score rather than a wrong one
    return matrix


def _probabilistic(truth: pa.ChunkedArray, scores: pa.ChunkedArray) -> dict[str, float]:
    """ROC AUC and log loss, for rows that have both a label and probabilities; classes are
    the labels in sorted order, as scikit-learn orders `classes_`."""
    from sklearn.metrics import log_loss, roc_auc_score

    if scores.null_count:
        keep = pc.invert(pc.is_null(scores))
        truth, scores = truth.filter(keep), scores.filter(keep)
    matrix = _probabilities(scores)
    if matrix is None or len(truth) < MIN_LABELLED:
        return {}
    y = np.asarray(_as_labels(truth))
    classes = np.unique(y)
    if classes.size < 2 or classes.size != matrix.shape[1]:
        return {}
    if classes.size == 2:
        auc = roc_auc_score(y == classes[1], matrix[:, 1])
    else:
        auc = roc_auc_score(y, matrix, multi_class="ovr", labels=classes)
    return {"roc_auc": float(auc), "log_loss": float(log_loss(y, matrix, labels=classes))}


def estimate_binary(probabilities: pa.ChunkedArray) -> dict[str, Any]:
    """Label-free performance of a binary classifier from its own confidence (the idea of
    confidence-based performance estimation), from `probabilities` (parsed rows of two class
    probabilities): if they are calibrated, a row predicted with probability p is right with
    probability max(p, 1 - p), and the expected confusion counts at every threshold give an
    expected ROC curve. It sees covariate shift, never concept drift: labels, when they come,
    are the truth."""
    matrix = _probabilities(probabilities)
    if matrix is None or matrix.shape[1] != 2 or matrix.shape[0] < MIN_LABELLED:
        return {}
    positive = np.clip(matrix[:, 1], 0.0, 1.0)
    right = np.maximum(positive, 1.0 - positive)
    rows = positive.size
    order = np.argsort(-positive, kind="stable")
    ranked = positive[order]
    true_pos = np.cumsum(ranked)
    false_pos = np.cumsum(1.0 - ranked)
    last_of_tie = np.append(ranked[1:] != ranked[:-1], True)  # one point per distinct score
    tpr = np.concatenate([[0.0], true_pos[last_of_tie] / max(true_pos[-1], 1e-12)])
    fpr = np.concatenate([[0.0], false_pos[last_of_tie] / max(false_pos[-1], 1e-12)])
    return {
        "rows": int(rows),
        "accuracy": float(right.mean()),
        "accuracy_standard_error": float(np.sqrt(np.sum(right * (1 - right))) / rows),
        "roc_auc": float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)),
        "note": "estimated from the model's confidence: assumes calibrated probabilities and "
        "cannot see concept drift",
    }


def score(predicted: Any, truth: Any, probabilities: Any = None) -> tuple[str, dict[str, float]]:
    """(task, metrics) of `predicted` against `truth` (array-likes, aligned), the same metrics
    as a monitor's window; `probabilities` (rows of class probabilities) add ROC AUC and log
    loss for a classifier."""
    guessed = pa.chunked_array([pa.array(np.asarray(predicted).tolist())])
    real = pa.chunked_array([pa.array(np.asarray(truth).tolist())])
    if _is_regression(guessed) or _is_regression(real):
        return "regression", _regression(guessed, real)
    metrics = _classification(guessed, real)
    if probabilities is not None:
        rows = pa.chunked_array([pa.array(np.asarray(probabilities, dtype=np.float64).tolist())])
        metrics |= _probabilistic(real, rows)
    return "classification", metrics
