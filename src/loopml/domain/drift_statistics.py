"""Drift statistics on summaries whose counts merge exactly.

A reference column is summarised once (`summarize_numeric`, `summarize_categories`; text
columns in `loopml.domain.text_drift`); a current window is reduced to counts over the same bins
or categories (`count_numeric`, ...), so windows add up and nothing is recomputed from raw
reference rows. The tests then work on counts alone:

numeric
    Bins are the reference's quantiles (up to `NUMERIC_BINS` of them, ties merged), so every bin
    holds about the same share of the reference. Kolmogorov-Smirnov compares the two empirical
    CDFs at every bin edge (the exact ECDFs, evaluated at the edges: at most the true statistic,
    so the p-value errs on the conservative side), with the asymptotic two-sample p-value.
    Wasserstein-1 integrates |F_ref - F_cur| over the bins and is divided by the reference's
    standard deviation, so 0.1 means "moved by a tenth of the reference spread". PSI uses the
    reference deciles.
categorical
    Chi-square test of homogeneity on the 2 x K table of both samples' counts (categories whose
    expected count falls under 5 are pooled, so small samples stay calibrated and a category the
    reference never had is a finite cell, not an infinite term). A table left with two cells
    (two levels, a boolean) takes Fisher's exact test instead: Pearson's chi-square on a 2 x 2
    table rejects more often than its level at small samples (5.6% at 100 rows per side and an
    even split), Fisher's never does. Jensen-Shannon distance (base 2, 0 to 1) with a noise
    floor: the distance two samples of these sizes and this cardinality show with no drift at
    all. PSI with a small additive smoothing. Categories absent from the reference are reported
    by name with their share of rows.

`benjamini_hochberg` turns the p-values of all features into q-values (false discovery rate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from loopml.domain.p_values import chi2_sf, fisher_p_value, ks_p_value

Array = npt.NDArray[Any]

NUMERIC_BINS = 1000
"""Quantile bins of a numeric reference (fewer when values repeat)."""
EDGE_SAMPLE = 200_000
"""Rows of the reference the bin edges are taken from (counts always use every row)."""
MIN_EXPECTED = 5.0
"""Chi-square cells whose expected count is below this are pooled."""
PSI_EPSILON = 1e-4
"""Share given to an empty bin or category in PSI, so that it stays finite."""


# -- summaries --------------------------------------------------------------------------------


@dataclass(frozen=True)
class NumericSummary:
    """A numeric column: counts over quantile bins, plus moments. Bins are (-inf, e0],
    (e0, e1], ..., (e_last, +inf): `len(counts) == len(edges) + 1`."""

    edges: Array
    counts: Array
    rows: int
    nulls: int
    mean: float
    std: float
    minimum: float
    maximum: float
    below: float = 0.0
    """Sum of (first edge - value) over the values below the first edge."""
    above: float = 0.0
    """Sum of (value - last edge) over the values above the last edge."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "edges": self.edges.tolist(),
            "counts": self.counts.tolist(),
            "rows": self.rows,
            "nulls": self.nulls,
            "mean": self.mean,
            "std": self.std,
            "min": self.minimum,
            "max": self.maximum,
            "below": self.below,
            "above": self.above,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NumericSummary:
        return cls(
            np.asarray(data["edges"], dtype=np.float64),
            np.asarray(data["counts"], dtype=np.int64),
            int(data["rows"]),
            int(data["nulls"]),
            float(data["mean"]),
            float(data["std"]),
            float(data["min"]),
            float(data["max"]),
            float(data.get("below", 0.0)),
            float(data.get("above", 0.0)),
        )


def _finite(values: Array) -> tuple[Array, int]:
    values = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(values)
    return values[keep], int(values.size - keep.sum())


def summarize_numeric(values: Array, bins: int = NUMERIC_BINS, seed: int = 0) -> NumericSummary:
    """The reference summary of a numeric column (nulls and infinities counted apart)."""
    finite, nulls = _finite(values)
    if finite.size == 0:
        edges = np.empty(0, dtype=np.float64)
    else:
        sample = finite
        if finite.size > EDGE_SAMPLE:
            sample = np.random.default_rng(seed).choice(finite, EDGE_SAMPLE, replace=False)
        probabilities = np.linspace(0.0, 1.0, bins + 1)[1:-1]
        edges = np.unique(np.quantile(sample, probabilities, method="inverted_cdf"))
    return _numeric_from(finite, nulls, edges)


def count_numeric(reference: NumericSummary, values: Array) -> NumericSummary:
    """A current column counted over the reference's bins."""
    finite, nulls = _finite(values)
    return _numeric_from(finite, nulls, reference.edges)


def merge_numeric(first: NumericSummary, second: NumericSummary) -> NumericSummary:
    """Two parts of a column counted over the same bins, as if counted together (a window
    read in batches): counts and sums add up, the mean and spread combine exactly (Chan et
    al.'s pairwise update)."""
    if not np.array_equal(first.edges, second.edges):
        raise ValueError("the parts were counted over different bins")
    nulls = first.nulls + second.nulls
    if second.rows == 0 or first.rows == 0:
        whole = first if second.rows == 0 else second
        return replace(whole, counts=first.counts + second.counts, nulls=nulls)
    n, m = first.rows, second.rows
    mean = (n * first.mean + m * second.mean) / (n + m)
    squares = (
        n * first.std**2 + m * second.std**2 + n * m * (first.mean - second.mean) ** 2 / (n + m)
    )
    return NumericSummary(
        first.edges,
        first.counts + second.counts,
        n + m,
        nulls,
        mean,
        math.sqrt(max(squares / (n + m), 0.0)),
        min(first.minimum, second.minimum),
        max(first.maximum, second.maximum),
        first.below + second.below,
        first.above + second.above,
    )


GRID_CELLS_PER_BIN = 64
"""Cells of the uniform lookup grid per bin (see `bin_index`)."""


def bin_index(edges: Array, values: Array) -> Array:
    """`np.searchsorted(edges, values, side="left")` (the number of edges below each value),
    about four times as fast on large inputs spread like their edges: a uniform grid over the edges'
    range answers every value whose grid cell (and both neighbours) holds no edge with one
    multiply and one lookup; the others take the binary search. Data too lumpy for the grid
    (checked on a sample) goes straight to the binary search."""
    if edges.size < 2 or values.size < 50_000:
        return np.searchsorted(edges, values, side="left")
    low, high = float(edges[0]), float(edges[-1])
    cells = GRID_CELLS_PER_BIN * edges.size
    width = (high - low) / cells
    if not width > 0 or not math.isfinite(width):
        return np.searchsorted(edges, values, side="left")
    starts = low + width * np.arange(cells + 1)
    below = np.searchsorted(edges, starts, side="left")  # edges under each cell's start
    plain = below[1:] == below[:-1]  # no edge inside the cell
    # A value rounded into a neighbouring cell gets the same answer when both hold no edge.
    safe = plain & np.concatenate([[False], plain[:-1]]) & np.concatenate([plain[1:], [False]])
    scale = 1.0 / width

    def cell_of(part: Array) -> Array:
        cell = np.floor((part - low) * scale)
        np.clip(cell, 0, cells - 1, out=cell)
        return cell.astype(np.intp)

    probe = values[:20_000]
    if np.count_nonzero(~safe[cell_of(probe)] | (probe > high)) > 0.25 * probe.size:
        return np.searchsorted(edges, values, side="left")
    cell = cell_of(values)
    result = below[cell]
    slow = ~safe[cell] | (values > high)  # values under `low` fall in cell 0, never safe
    result[slow] = np.searchsorted(edges, values[slow], side="left")
    return result


def _numeric_from(finite: Array, nulls: int, edges: Array) -> NumericSummary:
    counts = np.bincount(bin_index(edges, finite), minlength=edges.size + 1)
    below = above = 0.0
    if finite.size:
        mean, std = float(finite.mean()), float(finite.std())
        low, high = float(finite.min()), float(finite.max())
        if edges.size:
            below = float(np.sum(np.maximum(edges[0] - finite, 0.0)))
            above = float(np.sum(np.maximum(finite - edges[-1], 0.0)))
    else:
        mean = std = low = high = math.nan
    return NumericSummary(
        edges, counts.astype(np.int64), int(finite.size), nulls, mean, std, low, high, below, above
    )


@dataclass(frozen=True)
class CategorySummary:
    """Counts per category (as text); nulls apart."""

    categories: Array
    """object array of str, sorted."""
    counts: Array
    rows: int
    nulls: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "categories": self.categories.tolist(),
            "counts": self.counts.tolist(),
            "rows": self.rows,
            "nulls": self.nulls,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CategorySummary:
        return cls(
            np.asarray(data["categories"], dtype=object),
            np.asarray(data["counts"], dtype=np.int64),
            int(data["rows"]),
            int(data["nulls"]),
        )


def summarize_categories(categories: Array, counts: Array, nulls: int) -> CategorySummary:
    """From distinct values and their counts (the caller counts, vectorised)."""
    labels = np.asarray([str(c) for c in categories], dtype=object)
    order = np.argsort(labels, kind="stable")
    counts = np.asarray(counts, dtype=np.int64)[order]
    return CategorySummary(labels[order], counts, int(counts.sum()), int(nulls))


def merge_categories(first: CategorySummary, second: CategorySummary) -> CategorySummary:
    """Two parts of a column's category counts as one."""
    labels, ones, twos = align(first.categories, first.counts, second.categories, second.counts)
    return CategorySummary(
        labels, ones + twos, first.rows + second.rows, first.nulls + second.nulls
    )


# -- tests ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NumericDrift:
    ks_statistic: float
    p_value: float
    wasserstein: float
    """Wasserstein-1 distance over the reference standard deviation."""
    psi: float


def numeric_drift(reference: NumericSummary, current: NumericSummary) -> NumericDrift:
    n, m = reference.rows, current.rows
    if n == 0 or m == 0:
        return NumericDrift(math.nan, math.nan, math.nan, math.nan)
    ref_cdf = np.cumsum(reference.counts)[:-1] / n
    cur_cdf = np.cumsum(current.counts)[:-1] / m
    gaps = np.abs(ref_cdf - cur_cdf)
    statistic = float(gaps.max()) if gaps.size else 0.0
    return NumericDrift(
        statistic,
        ks_p_value(statistic, n, m),
        _wasserstein(reference, current, gaps),
        psi(_decile_counts(reference, reference.counts), _decile_counts(reference, current.counts)),
    )


def _wasserstein(reference: NumericSummary, current: NumericSummary, gaps: Array) -> float:
    """Integral of |F_ref - F_cur| over the reference spread. Between edges the gap is taken
    as linear (trapezoids on the exact gaps at the edges); beyond the outer edges the integral
    of a tail CDF is its mean excess (sum of distances past the edge over the rows), exact when
    one tail dominates the other."""
    edges = reference.edges
    if edges.size == 0:
        return 0.0
    widths = np.diff(edges)
    area = float(np.dot((gaps[:-1] + gaps[1:]) / 2, widths)) if widths.size else 0.0
    n, m = reference.rows, current.rows
    area += abs(reference.below / n - current.below / m)
    area += abs(reference.above / n - current.above / m)
    spread = reference.std
    if not spread or not math.isfinite(spread):
        return 0.0 if area == 0 else math.inf
    return area / spread


def _decile_counts(reference: NumericSummary, counts: Array) -> Array:
    """`counts` (over the reference's fine bins) merged into about ten bins of equal reference
    share."""
    shares = np.cumsum(reference.counts) / max(reference.rows, 1)
    group = np.minimum((shares * 10).astype(np.int64), 9)
    group = np.maximum.accumulate(group)
    return np.bincount(group, weights=counts, minlength=10)


def psi(reference_counts: Array, current_counts: Array, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index over matching bins."""
    p = _shares(reference_counts, epsilon)
    q = _shares(current_counts, epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def _shares(counts: Array, epsilon: float) -> Array:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    shares = counts / total if total else np.full(counts.size, 1.0 / max(counts.size, 1))
    shares = np.maximum(shares, epsilon)
    normalised: Array = shares / shares.sum()
    return normalised


@dataclass(frozen=True)
class CategoryDrift:
    test: str
    """`chi2`, or `fisher` when the table has two cells."""
    chi2: float
    """Pearson's statistic, whichever test gave the p-value."""
    p_value: float
    degrees_of_freedom: int
    js_distance: float
    js_noise_floor: float
    psi: float
    new_categories: dict[str, float]
    """Categories the reference never had -> share of current rows."""


def aligned_counts(
    reference: CategorySummary, current: CategorySummary
) -> tuple[Array, Array, Array]:
    """Both samples' counts over the union of their categories (labels, ref, cur)."""
    return align(reference.categories, reference.counts, current.categories, current.counts)


def align(
    ref_labels: Array, ref_counts: Array, cur_labels: Array, cur_counts: Array
) -> tuple[Array, Array, Array]:
    """Two count vectors over the union of their labels (categories or tokens)."""
    labels = np.union1d(ref_labels.astype(str), cur_labels.astype(str))
    ref = np.zeros(labels.size, dtype=np.int64)
    cur = np.zeros(labels.size, dtype=np.int64)
    ref[np.searchsorted(labels, ref_labels.astype(str))] = ref_counts
    cur[np.searchsorted(labels, cur_labels.astype(str))] = cur_counts
    return labels.astype(object), ref, cur


def category_drift(reference: CategorySummary, current: CategorySummary) -> CategoryDrift:
    labels, ref, cur = aligned_counts(reference, current)
    n, m = int(ref.sum()), int(cur.sum())
    if n == 0 or m == 0:
        return CategoryDrift("chi2", math.nan, math.nan, 0, math.nan, math.nan, math.nan, {})
    test, chi2, p_value, dof = homogeneity(ref, cur)
    unseen = (ref == 0) & (cur > 0)
    new = {
        str(label): float(count / m)
        for label, count in zip(labels[unseen], cur[unseen], strict=True)
    }
    return CategoryDrift(
        test,
        chi2,
        p_value,
        dof,
        js_distance(ref, cur),
        js_noise_floor(int(np.count_nonzero(ref + cur)), n, m),
        psi(ref, cur),
        dict(sorted(new.items(), key=lambda item: -item[1])),
    )


def homogeneity(ref: Array, cur: Array) -> tuple[str, float, float, int]:
    """(test, chi-square statistic, p-value, degrees of freedom) of the test that both samples
    come from one distribution: `chi2_homogeneity`, or Fisher's exact test when the table has
    two cells once sparse ones are pooled (the chi-square is liberal there at small samples)."""
    ref, cur = _pool_sparse(ref, cur)
    statistic, p_value, dof = _pearson(ref, cur)
    if dof != 1:
        return "chi2", statistic, p_value, dof
    return "fisher", statistic, fisher_p_value(np.vstack([ref, cur]).round()), dof


def chi2_homogeneity(ref: Array, cur: Array) -> tuple[float, float, int]:
    """Pearson's chi-square test that both samples come from one distribution, on the 2 x K
    table of counts; cells expected to hold under `MIN_EXPECTED` are pooled, rarest first."""
    return _pearson(*_pool_sparse(ref, cur))


def _pool_sparse(ref: Array, cur: Array) -> tuple[Array, Array]:
    """The two count vectors with empty cells dropped and the cells expected to hold under
    `MIN_EXPECTED` on the smaller side pooled into one, rarest first."""
    ref = np.asarray(ref, dtype=np.float64)
    cur = np.asarray(cur, dtype=np.float64)
    n, m = ref.sum(), cur.sum()
    pooled = ref + cur
    keep = pooled > 0
    ref, cur, pooled = ref[keep], cur[keep], pooled[keep]
    side = min(n, m) / (n + m)  # expected count of a cell on the smaller side, per pooled row
    order = np.argsort(pooled, kind="stable")
    ref, cur, pooled = ref[order], cur[order], pooled[order]
    small = int(np.count_nonzero(pooled * side < MIN_EXPECTED))  # a prefix: sorted ascending
    if small:
        enough = np.flatnonzero(np.cumsum(pooled) * side >= MIN_EXPECTED)
        cut = max(small, int(enough[0]) + 1 if enough.size else pooled.size)
        ref = np.concatenate([[ref[:cut].sum()], ref[cut:]])
        cur = np.concatenate([[cur[:cut].sum()], cur[cut:]])
    return ref, cur


def _pearson(ref: Array, cur: Array) -> tuple[float, float, int]:
    n, m = ref.sum(), cur.sum()
    pooled = ref + cur
    cells = pooled.size
    if cells < 2:
        return 0.0, 1.0, 0
    expected_ref = pooled * n / (n + m)
    expected_cur = pooled * m / (n + m)
    statistic = float(
        np.sum((ref - expected_ref) ** 2 / expected_ref)
        + np.sum((cur - expected_cur) ** 2 / expected_cur)
    )
    dof = cells - 1
    return statistic, chi2_sf(statistic, dof), dof


def js_distance(ref: Array, cur: Array) -> float:
    """Jensen-Shannon distance (base 2: 0 identical, 1 disjoint) of two count vectors."""
    p = np.asarray(ref, dtype=np.float64)
    q = np.asarray(cur, dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    mix = (p + q) / 2
    divergence = 0.5 * (_kl(p, mix) + _kl(q, mix))
    return math.sqrt(max(divergence, 0.0))


def _kl(p: Array, q: Array) -> float:
    nonzero = p > 0
    return float(np.sum(p[nonzero] * np.log2(p[nonzero] / q[nonzero])))


def js_noise_floor(categories: int, n: int, m: int, quantile_factor: float = 3.0) -> float:
    """The JS distance two samples of sizes n and m over `categories` values show by chance:
    with no drift, the JS divergence in bits is about (K - 1)(1/n + 1/m) / (8 ln 2); the floor
    is the distance at `quantile_factor` times that (a high quantile of the null)."""
    if categories < 2:
        return 0.0
    expected = (categories - 1) * (1 / n + 1 / m) / (8 * math.log(2))
    return math.sqrt(quantile_factor * expected)


# -- many features at once ------------------------------------------------------------------


def benjamini_hochberg(p_values: Array) -> Array:
    """Benjamini-Hochberg adjusted p-values (q-values); NaN stays NaN."""
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    if valid.size == 0:
        return q
    order = valid[np.argsort(p[valid], kind="stable")]
    ranked = p[order] * valid.size / np.arange(1, valid.size + 1)
    q[order] = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    return q
