"""How much of a refit's gain a retrain policy kept, and how sure that figure is.

    recovery(policy, static, oracle, rows)            -> (policy - static) / (oracle - static)
    recovery_interval(..., confidence=0.9, seed=0)   -> Recovery (the figure and its interval)

The inputs are one metric per replayed window for the three yardsticks of a backtest (the
policy's champion, the static first model, the oracle refit before every window) and the rows
each window held; means weigh windows by their rows.

The interval is a bootstrap over windows: each resample draws as many windows as there are,
with replacement, and the recovery of a resample is that of the windows drawn. It says how much
the figure owes to which stretches of history happened to come. Where the oracle's gain over
the static model is small beside the windows' noise, some resamples have the oracle no better
than the static model, and a ratio against a gain of nothing says nothing: when more of them
than the interval's tail would hold, the interval is not determined (None), and otherwise they
count as unbounded on both sides, which only widens it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from loopml.errors import InvalidInput

GAIN_FLOOR = 1e-9
"""An oracle gain at or below this is none: the recovery is not defined."""


@dataclass(frozen=True)
class Recovery:
    value: float | None
    """The recovery over all windows (None: the oracle gained nothing)."""
    low: float | None
    high: float | None
    """The interval at `confidence` (None: not determined, the gain is within the noise)."""
    confidence: float
    undetermined_share: float
    """The share of resamples in which the oracle gained nothing over the static model."""


def recovery(
    policy: Sequence[float],
    static: Sequence[float],
    oracle: Sequence[float],
    rows: Sequence[int],
    *,
    lower_is_better: bool = False,
) -> float | None:
    """(policy - static) / (oracle - static) of the row-weighted means; None when the oracle is
    not ahead of the static model."""
    return _ratio(*_gains(policy, static, oracle, rows, lower_is_better))


def _ratio(gains: np.ndarray, kept: np.ndarray, weights: np.ndarray) -> float | None:
    total = float(weights @ gains)
    return float(weights @ kept) / total if total > GAIN_FLOOR * float(weights.sum()) else None


def recovery_interval(
    policy: Sequence[float],
    static: Sequence[float],
    oracle: Sequence[float],
    rows: Sequence[int],
    *,
    confidence: float = 0.9,
    lower_is_better: bool = False,
    resamples: int | None = None,
    seed: int = 0,
) -> Recovery:
    """The recovery and its two-sided interval at `confidence` from a seeded bootstrap over
    windows (see the module's text)."""
    from loopml.domain.confidence import check_confidence
    from loopml.domain.paired import RESAMPLES, row_counts

    check_confidence(confidence)
    gains, kept, weights = _gains(policy, static, oracle, rows, lower_is_better)
    value = _ratio(gains, kept, weights)
    draws = RESAMPLES if resamples is None else resamples
    counts = row_counts(np.random.default_rng(seed), draws, len(weights)) * weights
    gained = counts @ gains
    floor = GAIN_FLOOR * counts.sum(axis=1)
    ahead = gained > floor
    tail = (1 - confidence) / 2
    share = float(1 - ahead.mean())
    if share > tail or value is None:
        return Recovery(value, None, None, confidence, share)
    with np.errstate(all="ignore"):
        ratios = (counts @ kept) / np.where(ahead, gained, 1.0)
    low = np.percentile(np.where(ahead, ratios, -np.inf), 100 * tail, method="lower")
    high = np.percentile(np.where(ahead, ratios, np.inf), 100 * (1 - tail), method="higher")
    return Recovery(value, float(low), float(high), confidence, share)


def _gains(
    policy: Sequence[float],
    static: Sequence[float],
    oracle: Sequence[float],
    rows: Sequence[int],
    lower_is_better: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per window: the oracle's gain over the static model, the policy's, and the rows; gains
    are signed so that better is positive for either kind of metric."""
    arrays = [np.asarray(a, dtype=float) for a in (policy, static, oracle, rows)]
    if len({len(a) for a in arrays}) != 1 or len(arrays[0]) == 0:
        raise InvalidInput(
            "The policy, static and oracle metrics and the rows need one value per window each.",
            "Pass the backtest's windows.",
        )
    if not all(np.isfinite(a).all() for a in arrays) or (arrays[3] < 0).any():
        raise InvalidInput(
            "A window's metric is not a number, or its rows are negative.",
            "Pass finite metrics and row counts.",
        )
    sign = -1.0 if lower_is_better else 1.0
    p, s, o, weights = arrays
    return sign * (o - s), sign * (p - s), weights
