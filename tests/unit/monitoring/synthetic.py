"""Seeded synthetic tables for the drift tests: 20 numeric columns (normal, lognormal, bimodal)
and 5 categorical ones (cardinality 5 to 200, Zipf frequencies), drift injected on request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

CARDINALITIES = (5, 20, 50, 100, 200)
NUMERIC = [f"num_{i:02d}" for i in range(20)]
CATEGORICAL = [f"cat_{j}" for j in range(len(CARDINALITIES))]


def _numeric(rng: np.random.Generator, index: int, rows: int) -> tuple[np.ndarray, float]:
    """Values of column `index` and the population standard deviation."""
    kind = index % 3
    if kind == 0:
        return rng.normal(10.0 + index, 2.0, rows), 2.0
    if kind == 1:
        sigma = 0.5
        values = np.exp(rng.normal(1.0, sigma, rows))
        return values, float(np.sqrt((np.exp(sigma**2) - 1) * np.exp(2 + sigma**2)))
    first = rng.random(rows) < 0.4
    values = np.where(first, rng.normal(-2.0, 1.0, rows), rng.normal(3.0, 1.5, rows))
    std = np.sqrt(0.4 * 1.0 + 0.6 * 2.25 + 0.4 * 0.6 * 25.0)
    return values, float(std)


def _categories(rng: np.random.Generator, column: int, rows: int) -> np.ndarray:
    k = CARDINALITIES[column]
    weights = 1.0 / np.arange(1, k + 1) ** 1.1
    labels = np.array([f"{CATEGORICAL[column]}_v{i:03d}" for i in range(k)], dtype=object)
    return labels[rng.choice(k, rows, p=weights / weights.sum())]


def table(
    rows: int,
    seed: int,
    *,
    shift_std: Mapping[str, float] | None = None,
    new_category: Mapping[str, float] | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One sample; `shift_std` moves numeric columns by that many standard deviations,
    `new_category` puts exactly that share of a categorical column's rows in an unseen value."""
    rng = np.random.default_rng(seed)
    shift_std, new_category = dict(shift_std or {}), dict(new_category or {})
    data: dict[str, np.ndarray] = {}
    for index, name in enumerate(NUMERIC):
        values, std = _numeric(rng, index, rows)
        if columns is None or name in columns:
            data[name] = values + shift_std.get(name, 0.0) * std
    for column, name in enumerate(CATEGORICAL):
        values = _categories(rng, column, rows)
        share = new_category.get(name, 0.0)
        if share:  # exactly that share of the rows
            values[rng.choice(rows, round(share * rows), replace=False)] = f"{name}_NEW"
        if columns is None or name in columns:
            data[name] = values
    return pd.DataFrame(data)
