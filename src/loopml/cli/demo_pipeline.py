"""The demo's training pipeline (copied into the demo folder as pipeline.py, which its loop
runs): load a dataset version, split it, fit a model, score it, register it. The learner is
scikit-learn's logistic regression on the numbers, the plan and the words of the note, or
(`learner=lightgbm`) a LightGBM booster on the numbers and the plan as a category, registered
in LightGBM's own format and served, explained and monitored the same way.

    loopml pipeline run pipeline.py:churn --param dataset=churn@1 --param learner=lightgbm
"""

from __future__ import annotations

import tempfile

import pandas as pd

import loopml
from loopml import pipeline, step

TARGET = "churned"
PLANS = ["basic", "family", "pro", "student"]
"""Every plan the demo's world has: LightGBM's categories, fixed so each fit codes them alike."""
LEARNERS = ("logistic", "lightgbm")


def _boosted_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The LightGBM learner's columns: the numbers, and the plan as a category."""
    plan = pd.Categorical(frame["plan"], categories=PLANS)
    return frame[["tenure", "monthly"]].assign(plan=plan)


@step
def load(dataset: str) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as folder:
        (table,) = loopml.data.download(dataset, folder)
        return pd.read_parquet(table) if table.suffix == ".parquet" else pd.read_csv(table)


@step
def split(frame: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    fit, test = train_test_split(frame, test_size=0.2, random_state=seed, stratify=frame[TARGET])
    return fit.reset_index(drop=True), test.reset_index(drop=True)


@step
def train(fit: pd.DataFrame, c: float = 1.0, learner: str = "logistic") -> object:
    if learner not in LEARNERS:
        raise ValueError(f"learner is {learner!r}; use one of {', '.join(LEARNERS)}")
    if learner == "lightgbm":
        from lightgbm import LGBMClassifier

        boosted = LGBMClassifier(n_estimators=100, num_leaves=15, random_state=0, verbose=-1)
        return boosted.fit(_boosted_inputs(fit), fit[TARGET])
    from sklearn.compose import make_column_transformer
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    features = make_column_transformer(
        (StandardScaler(), ["tenure", "monthly"]),
        (OneHotEncoder(handle_unknown="ignore"), ["plan"]),
        (CountVectorizer(), "note"),
    )
    model = make_pipeline(features, LogisticRegression(C=c, max_iter=2000))
    return model.fit(fit.drop(columns=[TARGET]), fit[TARGET])


@step
def evaluate(model: object, test: pd.DataFrame) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    rows = test.drop(columns=[TARGET])
    if type(model).__module__.startswith("lightgbm"):
        rows = _boosted_inputs(rows)
    predicted = model.predict(rows)  # type: ignore[attr-defined]
    return {
        "accuracy": float(accuracy_score(test[TARGET], predicted)),
        "f1": float(f1_score(test[TARGET], predicted)),
    }


@step
def register(model: object, metrics: dict[str, float], test: pd.DataFrame) -> dict[str, int]:
    version = loopml.models.register(
        loopml.active_run(),
        model,
        name="churn",
        input_example=test.drop(columns=[TARGET]).head(5),
        metrics=metrics,
    )
    return {"version": version.version}


@pipeline
def churn(dataset: str = "churn@latest", c: float = 1.0, seed: int = 0, learner: str = "logistic"):  # type: ignore[no-untyped-def]
    fit, test = split(load(dataset), seed=seed)
    model = train(fit, c=c, learner=learner)
    metrics = evaluate(model, test)
    register(model, metrics, test)
    return metrics
