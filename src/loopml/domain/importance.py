"""How much of a model's attention sits on the inputs that drifted.

    weights, source = importance_weights(["tenure", "plan"], [0.9, 0.1])   # "model"
    weighted_drift(weights, compared=["tenure", "plan"], drifted={"plan"})  # 0.1

A drift share counts every drifted input alike; a model that barely looks at a column does not
care that it moved. `weighted_drift` is the share of the model's importance on the drifted
inputs: 0 when none drifted, 1 when every input it uses did. Importances are taken as magnitudes
(a coefficient's sign says nothing about how much it matters) and normalised to sum to 1; when
a model gives none, or gives something unusable (the wrong length, not finite, all zero), every
input weighs the same (`source` "equal") and the weighted drift is the drift share.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

MODEL = "model"
"""The weights are the model's own importances."""
EQUAL = "equal"
"""The model gave none: every input weighs the same."""


def importance_weights(
    names: Sequence[str], values: Sequence[float] | Any | None
) -> tuple[dict[str, float], str]:
    """Weights per input summing to 1 and where they came from: `values` (one per name, in
    order) as magnitudes, or equal weights when they are missing or unusable."""
    if not names:
        return {}, EQUAL
    raw = None if values is None else np.abs(np.asarray(values, dtype=np.float64)).ravel()
    if raw is None or raw.size != len(names) or not np.all(np.isfinite(raw)) or raw.sum() <= 0:
        share = 1.0 / len(names)
        return dict.fromkeys(names, share), EQUAL
    return dict(zip(names, (raw / raw.sum()).tolist(), strict=True)), MODEL


def effective_weights(weights: Mapping[str, float], compared: Sequence[str]) -> dict[str, float]:
    """The weights of the `compared` inputs, renormalised to sum to 1 (a column a window lacks
    weighs nothing; an input without a weight weighs nothing); with no weight at all on them,
    every one weighs the same."""
    if not compared:
        return {}
    given = np.array([float(weights.get(name, 0.0)) for name in compared])
    given = np.where(np.isfinite(given) & (given > 0), given, 0.0)
    if given.sum() <= 0:
        given = np.ones(len(compared))
    return dict(zip(compared, (given / given.sum()).tolist(), strict=True))


def weighted_drift(
    weights: Mapping[str, float], compared: Sequence[str], drifted: Collection[str]
) -> float:
    """The share of the weight of the `compared` inputs that sits on the `drifted` ones, 0..1
    (`effective_weights`); the plain drift share when no input has a weight."""
    effective = effective_weights(weights, compared)
    hit = np.array([effective[name] for name in compared if name in drifted])
    return float(min(1.0, hit.sum())) if hit.size else 0.0
