"""A training pipeline for the loop tests: the demo's, with a train step that can be made to
learn the labels inverted (`broken`) or to fail (`fail`)."""

from __future__ import annotations

import pandas as pd

from loopml import pipeline, step
from loopml.cli.demo_pipeline import TARGET, evaluate, load, register, split


@step
def train(fit: pd.DataFrame, broken: bool = False, fail: bool = False) -> object:
    from sklearn.compose import make_column_transformer
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if fail:
        raise RuntimeError("the training data is unusable")
    features = make_column_transformer(
        (StandardScaler(), ["tenure", "monthly"]),
        (OneHotEncoder(handle_unknown="ignore"), ["plan"]),
        (CountVectorizer(), "note"),
    )
    labels = 1 - fit[TARGET] if broken else fit[TARGET]
    model = make_pipeline(features, LogisticRegression(max_iter=2000))
    return model.fit(fit.drop(columns=[TARGET]), labels)


@pipeline
def churn(dataset: str = "churn@latest", broken: bool = False, fail: bool = False):  # type: ignore[no-untyped-def]
    fit, test = split(load(dataset))
    model = train(fit, broken=broken, fail=fail)
    metrics = evaluate(model, test)
    register(model, metrics, test)
    return metrics
