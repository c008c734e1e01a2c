"""Parity of a compiled model with its source: the same rows through both, compared.

A compiled model (ONNX, run by onnxruntime) computes in float32 where scikit-learn computes in
float64, so its numbers differ from the source's by about 1e-7; it is served in the source's
place only when every difference stays within a tolerance (1e-4 absolute by default):

- a regressor's predictions, and a classifier's probabilities, differ by at most `tolerance`;
- a classifier's labels are equal, except on a row where its probabilities are within the
  tolerance and the source's two most likely classes are within twice the tolerance of each
  other: a tie that float32 may break the other way (counted as `tie_flips`, and reported).
  Without probabilities to tell a tie, every label must be equal.

The result is kept on the compiled version (`to_dict`, under `PARITY_KEY` of the ONNX file's
metadata, which the onnx flavor copies into the version's flavor info), so a gate can ask for it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

DEFAULT_TOLERANCE = 1e-4
PARITY_METRIC = "parity_max_abs_diff"
"""The gate's metric of a version's recorded parity (`gate_value`): `parity_max_abs_diff <=
0.0001` passes a compiled version only if its parity check found no larger difference."""
PARITY_KEY = "loopml.parity"
"""The metadata key of a compiled model's parity (JSON of `Parity.to_dict`)."""
SOURCE_KEY = "loopml.compiled_from"
"""The metadata key of a compiled model's source: JSON {model, version, flavor, artifact}."""


@dataclass(frozen=True)
class Parity:
    """How a compiled model's outputs compare with its source's on the same rows."""

    rows: int
    tolerance: float
    prediction_max_abs_diff: float | None
    """Largest difference of a regressor's predictions; None for a classifier (labels)."""
    proba_max_abs_diff: float | None
    """Largest difference of a classifier's probabilities; None without probabilities."""
    mismatches: int
    """Rows whose class label differs (ties included)."""
    tie_flips: int
    """Of `mismatches`, rows at a tie within the tolerance (accepted)."""
    worst_row: int
    """The compared row (0-based, in the order given) with the largest difference, or the
    first label mismatch that is not a tie."""
    passed: bool

    @property
    def max_abs_diff(self) -> float:
        """The largest difference of any output compared."""
        found = [d for d in (self.prediction_max_abs_diff, self.proba_max_abs_diff) if d]
        return max(found, default=0.0)

    def describe(self, of: str = "") -> str:
        """One line for people: what was compared (`of`: where the rows came from) and how it
        came out."""
        parts = []
        if self.prediction_max_abs_diff is not None:
            parts.append(f"predictions differ by at most {self.prediction_max_abs_diff:.2g}")
        if self.proba_max_abs_diff is not None:
            parts.append(f"probabilities differ by at most {self.proba_max_abs_diff:.2g}")
        if self.prediction_max_abs_diff is None:
            parts.append(_labels(self))
        verdict = "passed" if self.passed else "FAILED"
        where = f"{self.rows:,} rows" + (f" of {of}" if of else "")
        return f"parity {verdict} on {where} (tolerance {self.tolerance:g}): {', '.join(parts)}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Parity:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


def _labels(parity: Parity) -> str:
    if not parity.mismatches:
        return "every label equal"
    ties = f" ({parity.tie_flips:,} at a tie)" if parity.tie_flips else ""
    return f"{parity.mismatches:,} labels differ{ties}"


def compare(
    source: Any,
    compiled: Any,
    source_proba: Any = None,
    compiled_proba: Any = None,
    *,
    classifier: bool,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Parity:
    """The parity of `compiled`'s outputs with `source`'s on the same rows: a `classifier`'s
    labels (and probabilities when both give them), else the predictions as numbers."""
    source, compiled = np.asarray(source), np.asarray(compiled)
    if source.shape[0] != compiled.shape[0]:
        raise ValueError(f"{source.shape[0]} source rows, {compiled.shape[0]} compiled rows")
    if not classifier:
        return _regression(source, compiled.reshape(source.shape), tolerance)
    if source_proba is None or compiled_proba is None:
        return _classification(source, compiled, None, tolerance)
    gaps = np.abs(np.asarray(source_proba, float) - np.asarray(compiled_proba, float))
    return _classification(source, compiled, (np.asarray(source_proba, float), gaps), tolerance)


def _regression(source: Any, compiled: Any, tolerance: float) -> Parity:
    gaps = np.abs(source.astype(float) - compiled.astype(float)).reshape(len(source), -1).max(1)
    worst = int(np.argmax(gaps)) if gaps.size else 0
    top = float(gaps[worst]) if gaps.size else 0.0
    return Parity(len(source), tolerance, top, None, 0, 0, worst, top <= tolerance)


def _classification(
    source: Any, compiled: Any, proba: tuple[Any, Any] | None, tolerance: float
) -> Parity:
    differ = _differ(source.reshape(-1), compiled.reshape(-1))
    if proba is None:
        first = int(np.argmax(differ)) if differ.any() else 0
        count = int(differ.sum())
        return Parity(len(source), tolerance, None, None, count, 0, first, count == 0)
    probabilities, gaps = proba
    per_row = gaps.reshape(len(source), -1).max(1)
    ranked = np.sort(probabilities.reshape(len(source), -1), axis=1)
    margin = ranked[:, -1] - ranked[:, -2] if ranked.shape[1] > 1 else np.ones(len(source))
    tie = (per_row <= tolerance) & (margin <= 2 * tolerance)
    flips, hard = differ & tie, differ & ~tie
    worst = int(np.argmax(hard)) if hard.any() else int(np.argmax(per_row)) if per_row.size else 0
    top = float(per_row.max()) if per_row.size else 0.0
    passed = top <= tolerance and not hard.any()
    return Parity(
        len(source), tolerance, None, top, int(differ.sum()), int(flips.sum()), worst, passed
    )


def _differ(source: Any, compiled: Any) -> Any:
    """Which labels differ: as numbers when both are (a label 1.0 is the label 1), else as text."""
    if source.dtype.kind in "biuf" and compiled.dtype.kind in "biuf":
        return source.astype(float) != compiled.astype(float)
    return source.astype(str) != compiled.astype(str)


def recorded_parity(flavor_info: Mapping[str, Any]) -> Parity | None:
    """The parity a compiled version carries in its flavor info, or None (not compiled)."""
    text = (flavor_info.get("metadata") or {}).get(PARITY_KEY)
    if not isinstance(text, str):
        return None
    try:
        return Parity.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError):
        return None


def recorded_source(flavor_info: Mapping[str, Any]) -> dict[str, Any] | None:
    """The source a compiled version records ({model, version, flavor, artifact}), or None."""
    text = (flavor_info.get("metadata") or {}).get(SOURCE_KEY)
    try:
        found = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def gate_value(flavor: str, flavor_info: Mapping[str, Any]) -> float:
    """A version's `parity_max_abs_diff` for the gate: the largest difference its recorded
    parity check found; 0 for a version that is not ONNX (it is its own source); infinity for
    an ONNX version without a passed check, which nothing shows predicts what its source did."""
    parity = recorded_parity(flavor_info)
    if parity is not None and parity.passed:
        return parity.max_abs_diff
    return math.inf if flavor == "onnx" or parity is not None else 0.0
