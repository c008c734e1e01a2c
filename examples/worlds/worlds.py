"""Time-ordered labelled worlds with the drift real data has, for trying retrain policies
(`loopml loop backtest`) and for the loop-efficacy benchmark.

    python examples/worlds/worlds.py sudden --rows 20000 --out history.parquet
    reference, history = make_world("gradual", rows=20_000, seed=0)

Each world is a binary label drawn from a logistic model of four numeric inputs and one
category, one row every `step` seconds, with a 2,000-row reference from before the history
starts. What changes over time:

    stable     nothing (a policy should promote nothing that serves worse)
    gradual    the inputs' means move steadily and the boundary bends with them
    sudden     the concept changes at once, twice (a feature's effect flips, another's grows)
    seasonal   two concepts alternate, each holding for a season of 4,000 rows
    category   a new category appears a third of the way in, with its own label rate, and grows
    noisy      a sudden change with 10% of the labels flipped throughout
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

WORLDS = ("stable", "gradual", "sudden", "seasonal", "category", "noisy")
LABEL = "label"
TIME = "event_time"
START = pd.Timestamp("2026-01-01", tz="UTC")
_CATEGORIES = np.array(["a", "b", "c", "d"])


def make_world(
    kind: str, *, rows: int = 20_000, reference_rows: int = 2_000, seed: int = 0, step_s: int = 600
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reference, history): the reference is drawn from the world as it was at the start;
    the history has a `event_time` column, `step_s` apart."""
    if kind not in WORLDS:
        raise ValueError(f"unknown world {kind!r}; one of {', '.join(WORLDS)}")
    rng = np.random.default_rng(seed)
    reference = _draw(kind, np.zeros(reference_rows), rng)
    progress = np.arange(rows) / rows
    history = _draw(kind, progress, rng)
    history.insert(0, TIME, START + pd.to_timedelta(np.arange(rows) * step_s, unit="s"))
    return reference, history


def _draw(kind: str, progress: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    n = len(progress)
    shift = 1.5 * progress if kind == "gradual" else np.zeros(n)
    x = rng.normal(size=(n, 4)) + shift[:, None] * np.array([1.0, -0.5, 0.0, 0.8])
    categories = rng.choice(_CATEGORIES, size=n, p=[0.4, 0.3, 0.2, 0.1])
    if kind == "category":
        share = np.clip((progress - 1 / 3) * 1.2, 0, 0.6)
        categories = np.where(rng.random(n) < share, "new", categories)
    weights = np.tile([1.5, -1.0, 0.8, 0.0], (n, 1))
    bend = 0.0 * x[:, 0]
    if kind in ("sudden", "noisy"):
        phase = (progress >= 0.35).astype(int) + (progress >= 0.7).astype(int)
        weights[phase >= 1, 0] = -1.5
        weights[phase >= 2, 3] = 1.6
    elif kind == "seasonal":
        season = (progress * 20_000 // 4_000 % 2).astype(bool) if n > 1 else np.zeros(n, bool)
        weights[season] = [-1.0, 1.5, 0.0, 1.2]
    elif kind == "gradual":
        bend = progress * 1.2 * (x[:, 0] ** 2 - 1)
    offset = pd.Series(categories).map({"a": 0.0, "b": 0.5, "c": -0.5, "d": 1.0, "new": 2.5})
    logit = np.sum(weights * x, axis=1) + bend + offset.to_numpy()
    label = (rng.random(n) < 1 / (1 + np.exp(-2 * logit))).astype(int)
    if kind == "noisy":
        flip = rng.random(n) < 0.1
        label = np.where(flip, 1 - label, label)
    frame = pd.DataFrame(x, columns=["x1", "x2", "x3", "x4"])
    frame["segment"] = categories
    frame[LABEL] = label
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=WORLDS)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="the history (.parquet)")
    parser.add_argument("--reference", type=Path, help="where the reference goes (.parquet)")
    args = parser.parse_args()
    reference, history = make_world(args.kind, rows=args.rows, seed=args.seed)
    history.to_parquet(args.out, index=False)
    ref_path = args.reference or args.out.with_name(f"{args.out.stem}-reference.parquet")
    reference.to_parquet(ref_path, index=False)
    print(f"{len(history):,} rows -> {args.out}; reference {len(reference):,} -> {ref_path}")


if __name__ == "__main__":
    main()
