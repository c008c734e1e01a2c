"""Metrics of rows that carry weights: every metric a gate measures, for many resamples of the
same rows at once, where a resample is a vector of how often each row was drawn.

Each metric is a weighted sum over rows (a matrix product with the weights) or a ratio of such
sums, so a block of resamples costs one product instead of a Python loop over resamples or
rows. With weights of one, every value equals scikit-learn's, as monitoring computes it:
precision, recall and F1 binary (the larger label positive) for two classes, else macro over
the classes present, 0 where a ratio has no denominator; ROC AUC binary or the mean one-vs-rest
AUC; log loss with probabilities clipped to machine epsilon; MAE, RMSE and R2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from loopml.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]

CLASSIFICATION = frozenset({"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"})
REGRESSION = frozenset({"mae", "rmse", "r2"})


@dataclass(frozen=True, eq=False)
class EncodedRows:
    """Labels and the predictions of each model (by name) on the same rows, encoded once:
    labels as class codes (sorted), or as numbers for regression; and each model's class
    probabilities (columns in the sorted order of the labels), or None."""

    truth: npt.NDArray[Any]
    predicted: dict[str, npt.NDArray[Any]]
    proba: Mapping[str, FloatArray | None]
    classes: int

    @staticmethod
    def encode(
        truth: npt.NDArray[Any],
        predicted: Mapping[str, npt.NDArray[Any]],
        proba: Mapping[str, FloatArray | None],
        metrics: set[str],
    ) -> EncodedRows:
        """The rows, encoded for `metrics` (all of one task)."""
        if metrics <= REGRESSION:
            numbers = {name: _floats(values) for name, values in predicted.items()}
            return EncodedRows(_floats(truth), numbers, proba, 0)
        if metrics & REGRESSION:
            raise InvalidInput(
                f"The metrics {sorted(metrics)} mix classification and regression.",
                "Compare a metric with one of its own task.",
            )
        labels = [comparable_labels(a) for a in (truth, *predicted.values())]
        classes, codes = np.unique(np.concatenate(labels), return_inverse=True)
        truth_codes, *predicted_codes = np.split(codes.ravel(), len(labels))
        coded = dict(zip(predicted, predicted_codes, strict=True))
        return EncodedRows(truth_codes, coded, proba, len(classes))

    def value(self, metric: str, side: str, weights: FloatArray) -> FloatArray:
        """`metric` of the model `side` in each resample: a row of `weights` says how often
        each row was drawn (a row of ones: the rows themselves)."""
        n = weights.shape[1]
        if metric in REGRESSION:
            return _regression(metric, self.truth, self.predicted[side], weights)
        if metric == "accuracy":
            return _floats(weights @ (self.predicted[side] == self.truth).astype(float) / n)
        if metric in ("roc_auc", "log_loss"):
            return _probabilistic(metric, self.truth, self._proba(metric, side), weights)
        return _counted(metric, self.truth, self.predicted[side], self.classes, weights)

    def _proba(self, metric: str, side: str) -> FloatArray:
        proba = self.proba[side]
        present = np.unique(self.truth).size
        if proba is None or proba.ndim != 2 or proba.shape[1] != present:
            raise InvalidInput(
                f"{metric} needs the {side}'s probabilities of the {present} label classes.",
                "Compare models that give class probabilities, or use another metric.",
            )
        return proba


def _regression(
    metric: str, truth: FloatArray, predicted: FloatArray, weights: FloatArray
) -> FloatArray:
    n = weights.shape[1]
    errors = predicted - truth
    with np.errstate(all="ignore"):
        if metric == "mae":
            return _floats(weights @ np.abs(errors) / n)
        squared = weights @ errors**2
        if metric == "rmse":
            return _floats(np.sqrt(squared / n))
        total = weights @ truth**2 - (weights @ truth) ** 2 / n
        return _floats(1.0 - squared / total)


def _counted(
    metric: str, truth: npt.NDArray[Any], predicted: npt.NDArray[Any], k: int, weights: FloatArray
) -> FloatArray:
    """Precision, recall or F1 from weighted confusion counts: binary (the larger label is
    positive) for two classes, else the macro average over the classes present, 0 where a
    ratio has no denominator (as scikit-learn with zero_division=0)."""
    said = np.eye(k)[predicted]
    real = np.eye(k)[truth]
    hits, claimed, actual = weights @ (said * real), weights @ said, weights @ real
    denominator = {"precision": claimed, "recall": actual, "f1": (claimed + actual) / 2}[metric]
    with np.errstate(all="ignore"):
        per_class = np.where(denominator > 0, hits / denominator, 0.0)
    if k == 2:
        return np.asarray(per_class[:, 1], dtype=np.float64)
    present = (claimed + actual) > 0
    return np.asarray(np.sum(per_class * present, axis=1) / np.sum(present, axis=1))


def _probabilistic(
    metric: str, truth: npt.NDArray[Any], proba: FloatArray, weights: FloatArray
) -> FloatArray:
    """ROC AUC (binary, or the mean one-vs-rest AUC of every class) or log loss; columns of
    `proba` follow the sorted classes of the labels."""
    _, column = np.unique(truth, return_inverse=True)
    column = column.ravel()
    if metric == "log_loss":
        eps = np.finfo(np.float64).eps
        right = np.clip(proba[np.arange(len(column)), column], eps, 1 - eps)
        return _floats(weights @ -np.log(right) / weights.shape[1])
    if proba.shape[1] == 2:
        return weighted_auc(proba[:, 1], column == 1, weights)
    per_class = [weighted_auc(proba[:, j], column == j, weights) for j in range(proba.shape[1])]
    return np.asarray(np.mean(per_class, axis=0))


def weighted_auc(
    score: FloatArray, positive: npt.NDArray[np.bool_], weights: FloatArray
) -> FloatArray:
    """The weighted Mann-Whitney AUC: the chance a positive outscores a negative, ties half.
    In score order, a positive row counts the negative weight before its tie group and half
    of the negative weight inside it."""
    order = np.argsort(score, kind="stable")
    ranked, is_positive = score[order], positive[order]
    counts = np.take(weights, order, axis=1)
    negatives = counts * ~is_positive
    before = np.zeros((len(counts), len(ranked) + 1))  # negative weight before each row
    np.cumsum(negatives, axis=1, out=before[:, 1:])
    below, through = before[:, :-1], before[:, 1:]
    new_group = np.r_[True, ranked[1:] != ranked[:-1]]
    if not new_group.all():  # ties: from the start to the end of each row's tie group
        group = np.cumsum(new_group) - 1
        starts = np.flatnonzero(new_group)
        ends = np.r_[starts[1:], len(ranked)]
        below, through = (
            np.take(before, starts[group], axis=1),
            np.take(before, ends[group], axis=1),
        )
    positives = counts * is_positive
    with np.errstate(all="ignore"):
        return np.asarray(
            np.sum(positives * (below + through) / 2, axis=1)
            / (positives.sum(axis=1) * before[:, -1])
        )


def _floats(values: Any) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


def comparable_labels(labels: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Labels that compare and sort: numbers stay numbers, anything else becomes text."""
    values = np.asarray(labels)
    return values if values.dtype.kind in "biuf" else values.astype(str)
