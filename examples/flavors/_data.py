"""The churn rows the flavor examples train on (the quickstart's, with a plan code)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def churn_rows(rows: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Features (tenure, monthly, support_calls) and the churned label."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, rows).astype(float)
    monthly = rng.normal(60, 15, rows).round(2)
    calls = rng.poisson(1.5, rows).astype(float)
    risk = 1 / (1 + np.exp((tenure - 12) / 6 - 0.4 * calls))
    churned = pd.Series((rng.random(rows) < risk).astype(int), name="churned")
    return pd.DataFrame({"tenure": tenure, "monthly": monthly, "support_calls": calls}), churned
