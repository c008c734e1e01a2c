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
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from loopml.domain.performance_counts import (
    ConfidenceCounts,
    Confusion,
    ProbabilityCounts,
    Residuals,
)
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
    counts = PerformanceCounts(kinds)
    counts.add(outputs, labels, probabilities)
    return counts.report(expected)


class PerformanceCounts:
    """A window's performance folded piece by piece (`add`), in memory that does not grow with
    the window: confusion counts, regression sums, and class probabilities on a fine grid
    (`loopml.domain.performance_counts`). Whether the task is a regression is known once a
    fractional output or label comes; until then both kinds of summary are kept."""

    def __init__(self, kinds: tuple[str | None, str | None] = (None, None)) -> None:
        self.kinds = kinds
        self.regression = False
        self.confusion, self.residuals = Confusion(), Residuals()
        self.probabilities, self.confidence = ProbabilityCounts(), ConfidenceCounts()
        self.unreadable = {"unreadable_outputs": 0, "unreadable_labels": 0}
        self.any_probabilities = False

    def add(
        self,
        outputs: pa.ChunkedArray,
        labels: pa.ChunkedArray,
        probabilities: pa.ChunkedArray | None = None,
    ) -> None:
        """Fold in one piece: served outputs, labels and probabilities (JSON text, aligned)."""
        scores = None if probabilities is None else json_values(probabilities, VECTOR)
        self.add_read(read_values(outputs, self.kinds[0]), labels, scores)

    def add_read(
        self, served_outputs: Parsed, labels: pa.ChunkedArray, scores: pa.ChunkedArray | None
    ) -> None:
        """Fold in one piece whose outputs are read already (a `value` column, as the log's
        typed outputs are) and whose probabilities are lists of floats (None: not logged);
        labels are JSON text, aligned."""
        if scores is not None:
            self.any_probabilities = True
            if scores.null_count < len(scores):
                self.confidence.add(_probabilities(scores))
        have = pc.is_valid(labels)
        fed_back = read_values(labels.filter(have), self.kinds[1])
        wanted = np.asarray(have)
        self.unreadable["unreadable_outputs"] += int(served_outputs.bad_rows()[wanted].sum())
        self.unreadable["unreadable_labels"] += fed_back.count
        predicted, truth = served_outputs.table["value"].filter(have), fed_back.table["value"]
        self.regression = self.regression or _is_regression(predicted) or _is_regression(truth)
        numbers = as_numbers(predicted), as_numbers(truth)  # a label "n/a" is no score
        known = _both(*numbers)
        self.residuals.add(*(_floats(side.filter(known)) for side in reversed(numbers)))
        if self.regression:  # no class counts are needed any more
            self.confusion = Confusion()
            self.probabilities = ProbabilityCounts()
            return
        known = _both(predicted, truth)  # a JSON null label
        said, real = (np.asarray(_as_labels(side.filter(known))) for side in (predicted, truth))
        self.confusion.add(real, said)
        if scores is not None:
            scored = scores.filter(have).filter(known)
            present = pc.is_valid(scored)
            if pc.any(present).as_py():
                kept = np.asarray(real)[np.asarray(present)]
                self.probabilities.add(kept, _probabilities(scored.filter(present)))

    def merge(self, other: PerformanceCounts) -> None:
        """Another part of the window's counts into these, as if its pieces were added here."""
        self.regression = self.regression or other.regression
        self.residuals.merge(other.residuals)
        self.confidence.merge(other.confidence)
        self.any_probabilities = self.any_probabilities or other.any_probabilities
        for name, count in other.unreadable.items():
            self.unreadable[name] += count
        if self.regression:
            self.confusion, self.probabilities = Confusion(), ProbabilityCounts()
            return
        self.confusion.merge(other.confusion)
        self.probabilities.merge(other.probabilities)

    def state(self) -> dict[str, Any]:
        return {
            "regression": self.regression,
            "confusion": self.confusion.state(),
            "residuals": self.residuals.state(),
            "probabilities": self.probabilities.state(),
            "confidence": self.confidence.state(),
            "unreadable": dict(self.unreadable),
            "any_probabilities": self.any_probabilities,
        }

    @classmethod
    def from_state(
        cls, kinds: tuple[str | None, str | None], state: Mapping[str, Any]
    ) -> PerformanceCounts:
        made = cls(kinds)
        made.regression = bool(state["regression"])
        made.confusion = Confusion.from_state(state["confusion"])
        made.residuals = Residuals.from_state(state["residuals"])
        made.probabilities = ProbabilityCounts.from_state(state["probabilities"])
        made.confidence = ConfidenceCounts.from_state(state["confidence"])
        made.unreadable = {name: int(state["unreadable"][name]) for name in made.unreadable}
        made.any_probabilities = bool(state["any_probabilities"])
        return made

    def report(self, expected: Mapping[str, float] | None = None) -> dict[str, Any]:
        """The performance section: labelled rows, metrics (none with fewer than
        `MIN_LABELLED`), the model version's own metrics beside them, and the estimate."""
        count = self.residuals.rows if self.regression else self.confusion.rows
        section: dict[str, Any] = {
            "labelled_rows": count,
            "metrics": {},
            "model_metrics": {},
            **self.unreadable,
        }
        if count < MIN_LABELLED:
            section["note"] = f"{count} labelled rows; metrics need {MIN_LABELLED}"
        elif self.regression:
            section.update(task="regression", metrics=self.residuals.metrics())
        else:
            metrics = self.confusion.metrics() | self.probabilities.metrics(MIN_LABELLED)
            section.update(task="classification", metrics=metrics)
        if expected and section["metrics"]:
            metrics = section["metrics"]
            section["model_metrics"] = {k: float(v) for k, v in expected.items() if k in metrics}
        estimate = self.confidence.estimate(MIN_LABELLED) if self.any_probabilities else {}
        if estimate:
            section["estimated"] = estimate
        return section


def _both(first: pa.ChunkedArray, second: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.and_(pc.is_valid(first), pc.is_valid(second))


def _floats(values: pa.ChunkedArray) -> Any:
    return values.to_numpy().astype(np.float64, copy=False)


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


def _as_labels(values: pa.ChunkedArray) -> npt.NDArray[np.object_]:
    """Labels as text (an array of str), so 1, 1.0 and true compare equal to their own kind
    only once."""
    if pa.types.is_floating(values.type) or pa.types.is_integer(values.type):
        values = pa.chunked_array([number_text(values)])
    text: npt.NDArray[np.object_] = values.cast(pa.string()).to_numpy(zero_copy_only=False)
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
    sums = matrix.sum(axis=1, keepdims=True)
    exact = np.allclose(sums, 1.0, rtol=0.0, atol=1e-9)  # left as they are: no tie moves
    if not exact and np.allclose(sums, 1.0, atol=1e-4):  # float32 ones (ONNX) sum to 1 only
        matrix = matrix / sums  # within their rounding, which scikit-learn's checks refuse
    if classes.size == 2:
        auc = roc_auc_score(y == classes[1], matrix[:, 1])
    else:
        auc = roc_auc_score(y, matrix, multi_class="ovr", labels=classes)
    return {"roc_auc": float(auc), "log_loss": float(log_loss(y, matrix, labels=classes))}


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
