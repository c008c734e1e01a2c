"""Per-feature attributions for served rows: why the model said what it said.

Three methods, chosen per model and reported in every answer:
- `tree-contributions`: a loaded model that offers `contributions(frame)` (the xgboost and
  lightgbm flavors): the library's own per-feature contributions (TreeSHAP) to the row's raw
  margin score (log-odds for a binary classifier, the predicted class's margin for a
  multiclass one, the prediction for a regressor); the attributions and the answer's
  `base_values` (the trees' expected margin) add up exactly to that score. No reference is used.
- `linear-exact`: a linear model fed numeric features (LogisticRegression, Ridge, ...):
  attribution = coefficient x (value - reference), in the model's decision-function units; the
  attributions and the reference's score add up exactly to the row's score.
- `occlusion` (any model): attribution = score(row) - score(row with that feature replaced by its
  reference value); the score is the probability of the predicted class for classifiers and
  the prediction for regressors. One model call covers a whole request (rows x features).
The reference values are the training data's medians (numeric), most frequent values
(categories) and most frequent tokens (text), read from the profile of the dataset version the
model's run used; without one, the row's own column means/modes stand in, and the answer says
so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopml.serving.host import Served

_LINEAR_ATTRIBUTES = ("coef_", "intercept_")


def reference_from_profile(
    profile: Mapping[str, Any] | None, inputs: Sequence[tuple[str, str]]
) -> dict[str, Any] | None:
    """Median or most frequent value per input column, from a stored dataset profile."""
    if not profile:
        return None
    columns = {c["name"]: c for c in profile.get("columns", [])}
    reference: dict[str, Any] = {}
    for name, _ in inputs:
        stats = (columns.get(name) or {}).get("stats") or {}
        if "quantiles" in stats and stats["quantiles"].get("p50") is not None:
            reference[name] = stats["quantiles"]["p50"]
        elif stats.get("top"):
            reference[name] = next(iter(stats["top"]))
        elif stats.get("vocabulary"):  # text: its most frequent token stands for "typical"
            reference[name] = next(iter(stats["vocabulary"]))
        else:
            return None
    return reference


def _batch_reference(frame: Any) -> dict[str, Any]:
    reference: dict[str, Any] = {}
    for name in frame.columns:
        column = frame[name]
        numeric = column.dtype.kind in "iuf"
        reference[name] = float(column.mean()) if numeric else column.mode().iloc[0]
    return reference


def _is_linear(served: Served) -> bool:
    raw = served.model.raw
    return served.array_input and all(hasattr(raw, a) for a in _LINEAR_ATTRIBUTES)


def _linear(served: Served, frame: Any, reference: Mapping[str, Any]) -> Any:
    import numpy as np

    coef = np.atleast_2d(served.model.raw.coef_)[0]
    values = frame.to_numpy(dtype="float64")
    base = np.array([reference[c] for c in frame.columns], dtype="float64")
    return (values - base) * coef


def _scores(served: Served, frame: Any, classes: Any | None) -> Any:
    import numpy as np

    features = served.features(frame)
    if classes is None:
        return np.asarray(served.model.predict(features), dtype="float64")
    probabilities = np.asarray(served.model.predict_proba(features))
    return probabilities[np.arange(len(frame)), classes]


def _occlusion(served: Served, frame: Any, reference: Mapping[str, Any]) -> Any:
    import numpy as np
    import pandas as pd

    rows, names = len(frame), list(frame.columns)
    classes = None
    if served.has_proba:
        classes = np.asarray(served.model.predict_proba(served.features(frame))).argmax(axis=1)
    variants = []
    for name in names:
        variants.append(frame.assign(**{name: reference[name]}))  # a float may replace an int
    stacked = pd.concat([frame, *variants], ignore_index=True)
    repeated = None if classes is None else np.tile(classes, len(names) + 1)
    scores = _scores(served, stacked, repeated).reshape(len(names) + 1, rows)
    return (scores[0] - scores[1:]).T


def _tree_contributions(contributions: Any, frame: Any) -> dict[str, Any]:
    """The model's own contributions: `contributions(frame)` gives (rows x frame's columns,
    the base value of each row)."""
    values, base = contributions(frame)
    names = list(frame.columns)
    return {
        "method": "tree-contributions",
        "reference": {"source": "the model's expected margin (base_values)", "values": {}},
        "output": "raw margin",
        "base_values": [float(value) for value in base],
        "explanations": [dict(zip(names, map(float, row), strict=True)) for row in values],
    }


def explain(served: Served, frame: Any, reference: Mapping[str, Any] | None) -> dict[str, Any]:
    """Attributions per row and feature, the method, and the reference that was used."""
    contributions = getattr(served.model, "contributions", None)
    if callable(contributions):  # an optional capability of a loaded model (tree flavors)
        return _tree_contributions(contributions, frame)
    source = "training profile"
    if reference is None:
        reference, source = _batch_reference(frame), "this request's means and modes"
    method = "linear-exact" if _is_linear(served) else "occlusion"
    values = (_linear if method == "linear-exact" else _occlusion)(served, frame, reference)
    names = list(frame.columns)
    return {
        "method": method,
        "reference": {"source": source, "values": dict(reference)},
        "explanations": [dict(zip(names, map(float, row), strict=True)) for row in values],
    }
