"""Synthetic churn data for the examples: customers with tenure, plan, monthly charge and
support calls, and whether they churned. `shift` moves the world, for drift demos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def make_churn(rows: int = 3000, seed: int = 0, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, rows)
    plan = rng.choice(["basic", "plus", "pro"], rows, p=[0.5, 0.3, 0.2])
    monthly = (
        rng.normal(40, 8, rows) + (plan == "plus") * 20 + (plan == "pro") * 45 + shift * 15
    ).round(2)
    calls = rng.poisson(1.5 + shift, rows)
    logit = 1.2 - tenure / 12 + calls * 0.6 + (plan == "basic") * 0.8 + shift
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "tenure": tenure,
            "plan": plan,
            "monthly": monthly,
            "support_calls": calls,
            "churned": churned,
        }
    )


def write_churn(path: Path, rows: int = 3000, seed: int = 0, shift: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    make_churn(rows, seed, shift).to_csv(path, index=False)
    return path


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Write synthetic churn data as CSV.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shift", type=float, default=0.0)
    options = parser.parse_args()
    print(write_churn(options.out, options.rows, options.seed, options.shift))
