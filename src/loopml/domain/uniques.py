"""Distinct values by hashing, for the summaries monitoring folds piece by piece.

`numpy.unique` (from numpy 2.3 on) hashes through a slow generic path: on a piece of 131,072
rows it costs ten to twenty times what a sort or pandas' hash tables take, and far more on
text. These give `numpy.unique`'s results: sorted distinct numbers by a sort, and each value's
index among the distinct ones through `pandas.factorize`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]


def distinct(values: Array) -> Array:
    """The sorted distinct values of a 1-d array of numbers (a sort and a comparison with the
    neighbour: numpy sorts integers with SIMD, faster than any hash table on random keys)."""
    ordered = np.sort(values)
    if ordered.size < 2:
        return ordered
    first = np.empty(ordered.size, dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return ordered[first]


def encode(values: Array) -> tuple[Array, npt.NDArray[np.intp]]:
    """(`np.unique(values, return_inverse=True)`): the sorted distinct values of a 1-d array
    and, per value, its index among them."""
    import pandas as pd

    codes, uniques = pd.factorize(values, sort=True, use_na_sentinel=False)
    return np.asarray(uniques, dtype=values.dtype), codes.astype(np.intp, copy=False)


def pair_counts(first: Array, second: Array) -> tuple[Array, Array, npt.NDArray[np.int64]]:
    """Each distinct pair `(first[i], second[i])` and how often it comes: three aligned
    arrays, pairs in sorted order (by the first value, then the second)."""
    left, left_codes = encode(first)
    right, right_codes = encode(second)
    keys, where = encode(left_codes.astype(np.int64) * right.size + right_codes)
    counts = np.bincount(where, minlength=keys.size).astype(np.int64)
    return left[keys // right.size], right[keys % right.size], counts
