"""Reference and current frames with known drift, for the drift benchmark (monitoring.py).

    python benchmarks/competitors/drift_data.py --rows 100000 --out DIR
        [--drift num_00,num_03,cat_1] [--shift-sd 0.1] [--reweight 0.2]
        [--unseen cat_3] [--unseen-share 0.05] [--seed 0]

Writes DIR/reference.parquet, DIR/current.parquet and DIR/truth.json, and prints truth.json's
summary as one JSON line. Needs numpy, pandas and pyarrow: loopml's venv and the Evidently venv
both have them, and the output is the same from either (each column draws from its own seeded
stream, so the frames are identical for identical arguments, and adding drift to one column leaves
every other column as it was).

The 25 columns, whatever the seed:
  num_00 .. num_06   Gaussian
  num_07 .. num_13   log-normal (skewed, positive)
  num_14 .. num_19   a mixture of two Gaussians (two peaks)
  cat_0 .. cat_4     string labels, 5, 20, 50, 100 and 200 of them, Zipf-like frequencies
Drift goes into the current frame only:
  --drift NAME       a numeric column moves by --shift-sd of its standard deviation; a categorical
                     one moves --reweight of its probability mass onto its rare labels
  --unseen NAME      a share --unseen-share of its current rows gets a label the reference lacks
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

LABEL_COUNTS = {"cat_0": 5, "cat_1": 20, "cat_2": 50, "cat_3": 100, "cat_4": 200}
NUMERIC = [f"num_{i:02d}" for i in range(20)]
SCHEMA_SEED = 7_340_021  # the columns' shapes; the data seed only changes the draws


def numeric_shapes() -> dict[str, tuple[str, tuple[float, ...]]]:
    """Each numeric column's family and parameters, fixed for every seed."""
    rng = np.random.default_rng(SCHEMA_SEED)
    shapes: dict[str, tuple[str, tuple[float, ...]]] = {}
    for i, name in enumerate(NUMERIC):
        if i < 7:
            shapes[name] = ("gaussian", (rng.uniform(-100, 100), rng.uniform(1, 25)))
        elif i < 14:
            shapes[name] = ("lognormal", (rng.uniform(0.5, 2.5), rng.uniform(0.25, 0.8)))
        else:
            low = rng.uniform(-20, 0)
            shapes[name] = (
                "two_peaks",
                (rng.uniform(0.25, 0.75), low, rng.uniform(0.5, 2.5), low + rng.uniform(5, 15)),
            )
    return shapes


def standard_deviation(family: str, params: tuple[float, ...]) -> float:
    """The population standard deviation of a numeric column (what --shift-sd scales)."""
    if family == "gaussian":
        return params[1]
    if family == "lognormal":
        mu, sigma = params
        return math.sqrt(math.expm1(sigma * sigma) * math.exp(2 * mu + sigma * sigma))
    weight, first, width, second = params
    return math.sqrt(width * width + weight * (1 - weight) * (second - first) ** 2)


def draw_numeric(family: str, params: tuple[float, ...], rows: int, rng: Any) -> Any:
    if family == "gaussian":
        return rng.normal(params[0], params[1], rows)
    if family == "lognormal":
        return rng.lognormal(params[0], params[1], rows)
    weight, first, width, second = params
    centres = np.where(rng.random(rows) < weight, first, second)
    return centres + rng.normal(0.0, width, rows)


def label_probabilities(count: int, reweight: float) -> Any:
    """Zipf-like frequencies; `reweight` of the mass moves to the same shape turned around, so
    the rare labels gain what the common ones lose."""
    base = 1.0 / np.arange(1, count + 1) ** 1.2
    base /= base.sum()
    return (1 - reweight) * base + reweight * base[::-1]


def stream(seed: int, current: bool, column: int) -> Any:
    """The random stream of one column of one frame."""
    return np.random.default_rng(np.random.SeedSequence([seed, int(current), column]))


def frame(rows: int, seed: int, current: bool, args: argparse.Namespace | None) -> pd.DataFrame:
    """The reference frame (current=False) or the current one with the drift in `args`."""
    drift = set(args.drift) if current and args else set()
    unseen = set(args.unseen) if current and args else set()
    columns: dict[str, Any] = {}
    for i, (name, (family, params)) in enumerate(numeric_shapes().items()):
        values = draw_numeric(family, params, rows, stream(seed, current, i))
        if name in drift and args is not None:
            values = values + args.shift_sd * standard_deviation(family, params)
        columns[name] = values
    for j, (name, count) in enumerate(LABEL_COUNTS.items()):
        rng = stream(seed, current, 100 + j)
        weight = args.reweight if name in drift and args is not None else 0.0
        labels = np.array([f"{name}_{k:03d}" for k in range(count)], dtype=object)
        values = labels[rng.choice(count, size=rows, p=label_probabilities(count, weight))]
        if name in unseen and args is not None:
            values[rng.random(rows) < args.unseen_share] = f"{name}_unseen"
        columns[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns)


def truth(args: argparse.Namespace) -> dict[str, Any]:
    """Which columns of the current frame drifted, and how."""
    columns: dict[str, Any] = {}
    for name, (family, params) in numeric_shapes().items():
        moved = name in args.drift and args.shift_sd != 0
        columns[name] = {
            "family": family,
            "sd": standard_deviation(family, params),
            "drifted": moved,
            "shift_sd": args.shift_sd if moved else 0.0,
        }
    for name, count in LABEL_COUNTS.items():
        reweighted = name in args.drift and args.reweight != 0
        columns[name] = {
            "family": "categorical",
            "labels": count,
            "drifted": reweighted or name in args.unseen,
            "reweight": args.reweight if reweighted else 0.0,
            "unseen_share": args.unseen_share if name in args.unseen else 0.0,
        }
    return columns


def _names(text: str) -> list[str]:
    return [n for n in text.split(",") if n]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, required=True, help="rows in each frame")
    parser.add_argument("--out", type=Path, required=True, help="folder to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drift", type=_names, default=[], help="comma-separated columns")
    parser.add_argument("--shift-sd", type=float, default=0.1)
    parser.add_argument("--reweight", type=float, default=0.2)
    parser.add_argument("--unseen", type=_names, default=[], help="comma-separated columns")
    parser.add_argument("--unseen-share", type=float, default=0.05)
    args = parser.parse_args()
    unknown = set(args.drift + args.unseen) - set(NUMERIC) - set(LABEL_COUNTS)
    if unknown:
        parser.error(f"no column named {sorted(unknown)}: choose num_00..num_19 or cat_0..cat_4")
    args.out.mkdir(parents=True, exist_ok=True)
    frame(args.rows, args.seed, False, None).to_parquet(args.out / "reference.parquet")
    frame(args.rows, args.seed, True, args).to_parquet(args.out / "current.parquet")
    columns = truth(args)
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    (args.out / "truth.json").write_text(
        json.dumps({"settings": settings, "columns": columns}, indent=1) + "\n"
    )
    drifted = sorted(n for n, c in columns.items() if c["drifted"])
    print(json.dumps({"rows": args.rows, "columns": len(columns), "drifted": drifted}))


if __name__ == "__main__":
    main()
