"""The README's Python example, end to end: version data, track a run, register, load.

Run: python examples/quickstart.py [FOLDER]     (works in FOLDER, default ./loopml-quickstart/)

Everything lands in FOLDER/.loopml/ unless LOOPML_* settings point elsewhere; look at it with
`cd FOLDER && loopml runs list`, `loopml models versions churn`, `loopml data show churn`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import f1_score

import loopml


def make_data(path: Path, rows: int = 2000, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, rows)
    monthly = rng.normal(60, 15, rows).round(2)
    churned = (rng.random(rows) < 1 / (1 + np.exp((tenure - 12) / 6))).astype(int)
    pd.DataFrame({"tenure": tenure, "monthly": monthly, "churned": churned}).to_csv(
        path, index=False
    )


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "loopml-quickstart")
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    Path("data").mkdir(exist_ok=True)
    make_data(Path("data/train.csv"))
    ds = loopml.data.add("data/train.csv", name="churn")  # same bytes -> same version
    frame = pd.read_csv("data/train.csv")
    x, y = frame[["tenure", "monthly"]], frame["churned"]
    x_train, x_test, y_train, y_test = x[:1500], x[1500:], y[:1500], y[1500:]

    with loopml.start_run(name="gbm-baseline") as run:
        run.use_dataset(ds)
        run.log_params({"lr": 0.1, "depth": 6})
        model = HistGradientBoostingClassifier(learning_rate=0.1, max_depth=6, max_iter=30)
        losses = []
        for step in range(1, 31):  # a training curve, one point per boosting round
            model.set_params(max_iter=step).fit(x_train, y_train)
            loss = float(np.mean((model.predict_proba(x_train)[:, 1] - y_train) ** 2))
            losses.append(loss)
            run.log_metric("loss", loss, step=step)
        run.log_metric("f1", f1_score(y_test, model.predict(x_test)))
        Path("confusion.txt").write_text(pd.crosstab(y_test, model.predict(x_test)).to_string())
        run.log_artifact("confusion.txt")
        mv = loopml.models.register(run, model, name="churn", input_example=x_train.head())

    loopml.models.set_alias("churn", "champion", mv.version)
    champion = loopml.models.load("churn@champion")  # or "churn/3"
    predictions = champion.predict(x_test)
    print(
        f"dataset {ds.ref}, run {run.id}, model {mv.ref} (f1 {mv.metrics['f1']:.3f}), "
        f"{int(predictions.sum())} of {len(predictions)} predicted to churn\n"
        f"Look around: cd {folder} && loopml runs list && loopml models versions churn"
    )


if __name__ == "__main__":
    main()
