"""A loaded model's importance per input column, for weighting drift.

    weights, source = model_importance(loaded.raw, ["tenure", "monthly", "plan"])

Read from the fitted model: `feature_importances_` (trees, boosting) or the magnitudes of
`coef_` (linear models; summed over classes). In a scikit-learn pipeline the last step's
importances are traced back through a `ColumnTransformer` to the columns they came from (a
one-hot encoder's or a vectoriser's outputs add up to their column). Anything else, or an
importance vector that cannot be traced to the inputs, gives equal weights (`source` "equal");
nothing here ever fails a monitor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from loopml.domain.importance import importance_weights


def model_importance(raw: Any, inputs: Sequence[str]) -> tuple[dict[str, float], str]:
    """Weights per input (summing to 1) and their source, "model" or "equal"."""
    try:
        values = _per_input(raw, list(inputs))
    except Exception:  # a model of any kind, fitted or not: it must not stop the monitor
        values = None
    return importance_weights(list(inputs), values)


def _per_input(raw: Any, inputs: list[str]) -> Any:
    steps = getattr(raw, "steps", None)
    final = steps[-1][1] if isinstance(steps, list) and steps else raw
    values = _importances(final)
    if values is None:
        return None
    named = getattr(final, "feature_names_in_", None)
    if named is not None and len(named) == values.size and set(inputs) <= set(map(str, named)):
        by_name = dict(zip(map(str, named), values.tolist(), strict=True))
        return np.array([by_name[name] for name in inputs])
    if values.size == len(inputs) and final is raw:
        return values
    if isinstance(steps, list) and len(steps) == 2:
        owners = _owners(steps[0][1], inputs, values.size)
        if owners is not None:
            return np.bincount(owners, weights=values, minlength=len(inputs))
    return None


def _importances(estimator: Any) -> Any:
    found = getattr(estimator, "feature_importances_", None)
    if found is None:
        coef = getattr(estimator, "coef_", None)
        if coef is None:
            return None
        found = np.abs(np.asarray(coef, dtype=np.float64))
        found = found.sum(axis=0) if found.ndim == 2 else found.ravel()
    return np.abs(np.asarray(found, dtype=np.float64)).ravel()


def _owners(transformer: Any, inputs: list[str], width: int) -> Any:
    """For each output feature of a fitted `ColumnTransformer`, the index of the input column
    it came from; None when that cannot be told."""
    fitted = getattr(transformer, "transformers_", None)
    slices = getattr(transformer, "output_indices_", None)
    if not isinstance(fitted, list) or not isinstance(slices, dict):
        return None
    names = [str(n) for n in getattr(transformer, "feature_names_in_", inputs)]
    owners = np.full(width, -1)
    for name, step, spec in fitted:
        part = slices.get(name)
        if part is None or step == "drop" or part.stop <= part.start:
            continue
        columns = _columns(spec, names)
        if columns is None or any(c not in inputs for c in columns):
            return None
        found = _split(step, columns, part.stop - part.start)
        if found is None:
            return None
        owners[part] = [inputs.index(c) for c in found]
    return None if (owners < 0).any() else owners


def _columns(spec: Any, names: list[str]) -> list[str] | None:
    if isinstance(spec, str):
        return [spec]
    if isinstance(spec, int | np.integer):
        return [names[int(spec)]]
    try:
        items = list(spec)
    except TypeError:
        return None
    if all(isinstance(i, bool | np.bool_) for i in items) and len(items) == len(names):
        return [n for n, keep in zip(names, items, strict=True) if keep]
    return [names[int(i)] if isinstance(i, int | np.integer) else str(i) for i in items]


def _split(step: Any, columns: list[str], width: int) -> list[str] | None:
    """The input column of each of one transformer's `width` outputs."""
    if len(columns) == 1:
        return columns * width
    if width == len(columns):
        return columns
    try:  # a one-hot encoder names its outputs COLUMN_VALUE
        outputs = [str(o) for o in step.get_feature_names_out(columns)]
    except Exception:
        return None
    longest = sorted(columns, key=len, reverse=True)
    found = [next((c for c in longest if o == c or o.startswith(f"{c}_")), None) for o in outputs]
    return None if len(found) != width or None in found else [str(c) for c in found]
