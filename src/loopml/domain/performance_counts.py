"""A window's performance as summaries that fold piece by piece and merge, so a monitor scores
a window of any length in flat memory (`loopml.monitoring.performance` feeds them the log).

- `Confusion`: how often each (label, prediction) pair came: accuracy, precision, recall, F1.
- `Residuals`: count, sums of absolute and squared errors, and the labels' mean and squared
  deviations (Chan's update): MAE, RMSE and R2.
- `ProbabilityCounts`: per label, the summed log loss of each class column, and each class
  column's scores on a grid of 1/`GRID` per label: log loss exactly, ROC AUC with scores that
  fall in one cell of the grid counted as ties (half).
- `ConfidenceCounts`: a binary classifier's positive probabilities on the same grid, for the
  label-free estimate (expected accuracy and expected ROC AUC).

Every figure is the one scikit-learn gives on the rows themselves (the classification metrics
through `loopml.domain.weighted_metrics`, with each distinct pair's count as its weight).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from loopml.domain.uniques import encode, pair_counts
from loopml.domain.weighted_metrics import EncodedRows, weighted_auc

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

GRID = 65_536
"""Cells per unit of probability: scores closer than 1/GRID count as ties in ROC AUC."""
CLASSIFICATION = ("accuracy", "precision", "recall", "f1")


def _cells(probabilities: FloatArray) -> IntArray:
    return np.rint(np.clip(probabilities, 0.0, 1.0) * GRID).astype(np.int64)


@dataclass
class SparseCounts:
    """Weights summed per integer key, kept as sorted keys and their sums (merging sorts)."""

    keys: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    sums: FloatArray = field(default_factory=lambda: np.zeros((0, 1)))

    def add(self, keys: IntArray, weights: FloatArray) -> None:
        """Add `weights` (rows of one or more sums) at `keys`."""
        if keys.size == 0:
            return
        if self.keys.size:
            keys = np.concatenate([self.keys, keys])
            weights = np.concatenate([self.sums, weights])
        self.keys, where = encode(keys)
        self.sums = np.column_stack(
            [np.bincount(where.ravel(), column, self.keys.size) for column in weights.T]
        )

    def state(self) -> dict[str, Any]:
        return {"keys": self.keys, "sums": self.sums}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SparseCounts:
        keys, sums = np.asarray(state["keys"], np.int64), np.asarray(state["sums"], np.float64)
        if keys.ndim != 1 or sums.ndim != 2 or sums.shape[0] != keys.size:
            raise ValueError("sums that do not match their keys")
        return cls(keys, sums)


class Confusion:
    """Counts of (label, prediction) pairs, labels as text."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}

    def add(self, truth: npt.NDArray[Any], predicted: npt.NDArray[Any]) -> None:
        if truth.size == 0:
            return
        reals, saids, counts = pair_counts(truth, predicted)
        for real, said, count in zip(reals.tolist(), saids.tolist(), counts.tolist(), strict=True):
            self.counts[real, said] = self.counts.get((real, said), 0) + count

    def merge(self, other: Confusion) -> None:
        for pair, count in other.counts.items():
            self.counts[pair] = self.counts.get(pair, 0) + count

    def state(self) -> dict[str, Any]:
        return {"pairs": [[real, said, count] for (real, said), count in self.counts.items()]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Confusion:
        made = cls()
        made.counts = {(str(real), str(said)): int(n) for real, said, n in state["pairs"]}
        return made

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def metrics(self) -> dict[str, float]:
        """Accuracy, and precision, recall and F1: binary for two classes (the larger label
        positive), else macro over the classes present; 0 where a ratio has no denominator."""
        pairs = list(self.counts)
        truth = np.array([real for real, _ in pairs])
        said = np.array([predicted for _, predicted in pairs])
        counts = np.array([self.counts[pair] for pair in pairs], dtype=np.float64)
        rows = EncodedRows.encode(truth, {"model": said}, {"model": None}, set(CLASSIFICATION))
        weights = (counts * len(pairs) / counts.sum())[None, :]  # the mean over distinct pairs
        return {name: float(rows.value(name, "model", weights)[0]) for name in CLASSIFICATION}


class Residuals:
    """A regression's errors and its labels' spread, merged piece by piece."""

    def __init__(self) -> None:
        self.rows = 0
        self.absolute = self.squared = self.mean = self.deviations = 0.0

    def add(self, truth: FloatArray, predicted: FloatArray) -> None:
        if truth.size == 0:
            return
        errors = predicted - truth
        self.absolute += float(np.abs(errors).sum())
        self.squared += float(np.square(errors).sum())
        mean = float(truth.mean())
        deviations = float(np.square(truth - mean).sum())
        rows = self.rows + truth.size
        delta = mean - self.mean
        self.deviations += deviations + delta * delta * self.rows * truth.size / rows
        self.mean += delta * truth.size / rows
        self.rows = rows

    def merge(self, other: Residuals) -> None:
        """Another part's residuals into these (Chan's update, as `add`)."""
        if other.rows == 0:
            return
        rows = self.rows + other.rows
        delta = other.mean - self.mean
        self.deviations += other.deviations + delta * delta * self.rows * other.rows / rows
        self.mean += delta * other.rows / rows
        self.absolute += other.absolute
        self.squared += other.squared
        self.rows = rows

    def state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _RESIDUALS}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Residuals:
        made = cls()
        made.rows = int(state["rows"])
        for name in _RESIDUALS[1:]:
            setattr(made, name, float(state[name]))
        return made

    def metrics(self) -> dict[str, float]:
        """MAE, RMSE and R2 (1 when the labels do not vary and every error is 0, else 0 then,
        as scikit-learn)."""
        if self.deviations > 0:
            r2 = 1.0 - self.squared / self.deviations
        else:
            r2 = 1.0 if self.squared == 0 else 0.0
        return {
            "mae": self.absolute / self.rows,
            "rmse": float(np.sqrt(self.squared / self.rows)),
            "r2": r2,
        }


_RESIDUALS = ("rows", "absolute", "squared", "mean", "deviations")


class ProbabilityCounts:
    """Class probabilities of labelled rows: per label, the log loss summed per class column,
    and each column's scores on the grid. Columns are the classes in sorted order, as a
    scikit-learn model's `classes_`; `valid` turns False for good when a piece has rows that
    are no probabilities or a different number of classes."""

    def __init__(self) -> None:
        self.valid, self.width = True, 0
        self.labels: dict[str, int] = {}
        self.losses: dict[str, FloatArray] = {}
        self.scores: list[SparseCounts] = []

    def add(self, truth: npt.NDArray[Any], matrix: FloatArray | None) -> None:
        """Rows' labels (text) and their class probabilities (None: not probabilities)."""
        if not self.valid or truth.size == 0:
            return
        if matrix is None or (self.width and matrix.shape[1] != self.width):
            self.valid = False
            return
        if not self.width:
            self.width = matrix.shape[1]
            self.scores = [SparseCounts() for _ in range(self.width)]
        present, where = encode(truth)
        codes = np.array([self.labels.setdefault(label, len(self.labels)) for label in present])
        eps = np.finfo(np.float64).eps
        losses = -np.log(np.clip(matrix, eps, 1 - eps))
        summed = np.column_stack([np.bincount(where, column, present.size) for column in losses.T])
        for label, row in zip(present.tolist(), summed, strict=True):
            self.losses[label] = self.losses.get(label, np.zeros(self.width)) + row
        codes = codes[where]
        ones = np.ones((truth.size, 1))
        for column, counts in enumerate(self.scores):
            counts.add(codes * (GRID + 1) + _cells(matrix[:, column]), ones)

    def merge(self, other: ProbabilityCounts) -> None:
        """Another part's counts into these (its label codes mapped onto these)."""
        if not self.valid or other.width == 0:
            self.valid = self.valid and other.valid
            return
        if not other.valid or (self.width and other.width != self.width):
            self.valid = False
            return
        if not self.width:
            self.width = other.width
            self.scores = [SparseCounts() for _ in range(self.width)]
        codes = np.array(
            [self.labels.setdefault(label, len(self.labels)) for label in other.labels]
        )
        for label, row in other.losses.items():
            self.losses[label] = self.losses.get(label, np.zeros(self.width)) + row
        for counts, theirs in zip(self.scores, other.scores, strict=True):
            their_codes, cells = np.divmod(theirs.keys, GRID + 1)
            counts.add(codes[their_codes] * (GRID + 1) + cells, theirs.sums)

    def state(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "width": self.width,
            "labels": list(self.labels),
            "losses": [self.losses[label] for label in self.labels],
            "scores": [counts.state() for counts in self.scores],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ProbabilityCounts:
        made = cls()
        made.valid, made.width = bool(state["valid"]), int(state["width"])
        labels = [str(label) for label in state["labels"]]
        made.labels = {label: code for code, label in enumerate(labels)}
        made.losses = {
            label: np.asarray(loss, np.float64).reshape(made.width)
            for label, loss in zip(labels, state["losses"], strict=True)
        }
        made.scores = [SparseCounts.from_state(counts) for counts in state["scores"]]
        if made.width and len(made.scores) != made.width:
            raise ValueError("probability counts of another width")
        return made

    @property
    def rows(self) -> int:
        return int(sum(counts.sums.sum() for counts in self.scores[:1]))

    def metrics(self, min_rows: int) -> dict[str, float]:
        """ROC AUC (binary, or the mean one-vs-rest AUC) and log loss, when the rows hold one
        column per label class (at least two) and number at least `min_rows`."""
        classes = sorted(self.losses)
        if not self.valid or self.rows < min_rows or not 2 <= len(classes) == self.width:
            return {}
        loss = sum(self.losses[label][k] for k, label in enumerate(classes))
        columns = [1] if self.width == 2 else range(self.width)
        aucs = [self._auc(column, classes[column]) for column in columns]
        return {"roc_auc": float(np.mean(aucs)), "log_loss": float(loss / self.rows)}

    def _auc(self, column: int, positive_label: str) -> float:
        counts = self.scores[column]
        codes, cells = np.divmod(counts.keys, GRID + 1)
        positive = codes == self.labels[positive_label]
        return float(weighted_auc(cells / GRID, positive, counts.sums[:, 0][None, :])[0])


class ConfidenceCounts:
    """A binary classifier's positive-class probabilities, for the label-free estimate: if they
    are calibrated, a row scored p is right with probability max(p, 1 - p), and the expected
    confusion counts at every threshold give an expected ROC curve."""

    def __init__(self) -> None:
        self.valid, self.rows = True, 0
        self.right = self.spread = 0.0
        self.cells = SparseCounts()  # per cell: rows, and their summed positive probability

    def add(self, matrix: FloatArray | None) -> None:
        if not self.valid:
            return
        if matrix is None or matrix.shape[1] != 2:
            self.valid = False
            return
        positive = np.clip(matrix[:, 1], 0.0, 1.0)
        right = np.maximum(positive, 1.0 - positive)
        self.rows += positive.size
        self.right += float(right.sum())
        self.spread += float(np.sum(right * (1 - right)))
        self.cells.add(_cells(positive), np.column_stack([np.ones(positive.size), positive]))

    def merge(self, other: ConfidenceCounts) -> None:
        self.valid = self.valid and other.valid
        if self.valid:
            self.rows += other.rows
            self.right += other.right
            self.spread += other.spread
            self.cells.add(other.cells.keys, other.cells.sums)

    def state(self) -> dict[str, Any]:
        return {"valid": self.valid, "rows": self.rows, "right": self.right,
                "spread": self.spread, "cells": self.cells.state()}  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ConfidenceCounts:
        made = cls()
        made.valid, made.rows = bool(state["valid"]), int(state["rows"])
        made.right, made.spread = float(state["right"]), float(state["spread"])
        made.cells = SparseCounts.from_state(state["cells"])
        return made

    def estimate(self, min_rows: int) -> dict[str, Any]:
        if not self.valid or self.rows < min_rows:
            return {}
        rows, positive = self.cells.sums[::-1, 0], self.cells.sums[::-1, 1]  # highest first
        true_pos, false_pos = np.cumsum(positive), np.cumsum(rows - positive)
        tpr = np.concatenate([[0.0], true_pos / max(true_pos[-1], 1e-12)])
        fpr = np.concatenate([[0.0], false_pos / max(false_pos[-1], 1e-12)])
        return {
            "rows": self.rows,
            "accuracy": self.right / self.rows,
            "accuracy_standard_error": float(np.sqrt(self.spread)) / self.rows,
            "roc_auc": float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)),
            "note": "estimated from the model's confidence: assumes calibrated probabilities and "
            "cannot see concept drift",
        }
