"""Drift of text columns: token counts against the reference vocabulary.

The out-of-vocabulary rate (share of current
tokens the reference never had) and the Jensen-Shannon distance between token frequencies.
A small reference misses rare words by chance, so some out-of-vocabulary tokens are expected
with no drift at all: the Good-Turing estimate of the reference's unseen mass (its tokens
seen once, plus those cut from the vocabulary, over its token count) is the share a window
drawn from the reference's own distribution would show. `unseen_p_value` tests, one-sided,
whether the window's share is above it (beta-binomial: binomial sampling of the window's
tokens, widened by the estimate's own uncertainty).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from loopml.domain.drift_statistics import Array, align, js_distance, js_noise_floor


@dataclass(frozen=True)
class TokenSummary:
    """Token counts of a text column (the vocabulary), with the total token count."""

    tokens: Array
    counts: Array
    total: int
    rows: int
    singletons: int
    """Distinct tokens seen exactly once in the whole column, before the vocabulary was cut."""
    doubletons: int
    """Distinct tokens seen exactly twice, likewise."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "tokens": self.tokens.tolist(),
            "counts": self.counts.tolist(),
            "total": self.total,
            "rows": self.rows,
            "singletons": self.singletons,
            "doubletons": self.doubletons,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenSummary:
        counts = np.asarray(data["counts"], dtype=np.int64)
        # A summary stored before these were kept: read them off the vocabulary (exact unless
        # it was cut, when the rarest tokens are gone and the cut share stands in for them).
        singletons = data.get("singletons", int(np.count_nonzero(counts == 1)))
        doubletons = data.get("doubletons", int(np.count_nonzero(counts == 2)))
        return cls(
            np.asarray(data["tokens"], dtype=object),
            counts,
            int(data["total"]),
            int(data["rows"]),
            int(singletons),
            int(doubletons),
        )


def summarize_tokens(
    tokens: Array, counts: Array, rows: int, keep: int | None = None
) -> TokenSummary:
    """From distinct tokens and their counts over `rows` values (the caller counts, vectorised),
    keeping the `keep` most frequent as the vocabulary (all of them when None)."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    singletons = int(np.count_nonzero(counts == 1))
    doubletons = int(np.count_nonzero(counts == 2))
    if keep is not None and counts.size > keep:
        top = np.argsort(-counts, kind="stable")[:keep]
        tokens, counts = tokens[top], counts[top]
    order = np.argsort(tokens.astype(str), kind="stable")
    return TokenSummary(
        tokens[order].astype(object), counts[order], total, rows, singletons, doubletons
    )


def merge_tokens(first: TokenSummary, second: TokenSummary) -> TokenSummary:
    """Two parts of a column's token counts as one; exact for counts whose vocabulary was not
    cut (a current window's), whose once- and twice-seen tokens are then counted again."""
    tokens, ones, twos = align(first.tokens, first.counts, second.tokens, second.counts)
    counts = ones + twos
    return TokenSummary(
        tokens,
        counts,
        first.total + second.total,
        first.rows + second.rows,
        int(np.count_nonzero(counts == 1)),
        int(np.count_nonzero(counts == 2)),
    )


@dataclass(frozen=True)
class TextDrift:
    oov_rate: float
    """Share of current tokens the reference vocabulary lacks."""
    expected_oov_rate: float
    """The share a sample of the reference's own distribution would show (Good-Turing)."""
    p_value: float
    """One-sided: is `oov_rate` above `expected_oov_rate` by more than chance?"""
    js_distance: float
    js_noise_floor: float
    new_tokens: dict[str, float]
    """The most frequent out-of-vocabulary tokens -> share of current tokens."""


def text_drift(reference: TokenSummary, current: TokenSummary, top: int = 10) -> TextDrift:
    if current.total == 0 or reference.total == 0:
        return TextDrift(math.nan, math.nan, math.nan, math.nan, math.nan, {})
    labels, ref, cur = align(reference.tokens, reference.counts, current.tokens, current.counts)
    unseen = (ref == 0) & (cur > 0)
    unseen_tokens = int(cur[unseen].sum())
    expected, variance = unseen_share(reference)
    order = np.argsort(-cur[unseen], kind="stable")[:top]
    new = {str(labels[unseen][i]): float(cur[unseen][i] / current.total) for i in order}
    floor = js_noise_floor(int(np.count_nonzero(ref + cur)), reference.total, current.total)
    return TextDrift(
        unseen_tokens / current.total,
        expected,
        unseen_p_value(unseen_tokens, current.total, expected, variance),
        js_distance(ref, cur),
        floor,
        new,
    )


def unseen_share(reference: TokenSummary) -> tuple[float, float]:
    """(share, variance): the Good-Turing estimate of the chance that a token drawn from the
    reference's distribution is outside its vocabulary, and that estimate's variance (Esty,
    1983). The unseen mass is the share of reference tokens seen once; tokens cut from the
    vocabulary add their own share. At least one singleton is assumed, so a reference that saw
    every token twice still leaves room for a new word."""
    total = reference.total
    cut = total - int(reference.counts.sum())
    share = min((cut + max(reference.singletons, 1)) / total, 1.0)
    variance = share * (1.0 - share) / total + 2.0 * reference.doubletons / total**2
    return share, variance


def unseen_p_value(unseen: int, tokens: int, share: float, variance: float) -> float:
    """P(at least `unseen` of a window's `tokens` fall outside the vocabulary) when each does
    with a chance whose estimate is `share` +- sqrt(`variance`): the beta-binomial tail, a
    binomial widened by the estimate's uncertainty, exact for small counts."""
    from scipy import stats

    if unseen == 0 or share >= 1.0:
        return 1.0
    concentration = max(share * (1.0 - share) / variance - 1.0, 1e-9)
    a, b = share * concentration, (1.0 - share) * concentration
    return float(min(stats.betabinom.sf(unseen - 1, tokens, a, b), 1.0))
