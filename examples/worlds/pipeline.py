"""A general tabular classifier pipeline for `loopml loop backtest` and live loops: it trains on
every column but the label, one-hot encodes text columns, and honours a `sample_weight` column
(what a recency-weighted training recipe hands it).

    loopml loop backtest --pipeline examples/worlds/pipeline.py:tabular --reference ref@1 \\
        --data history@1 --time-column event_time --label label
"""

from __future__ import annotations

import tempfile

import numpy as np
import pandas as pd

import loopml
from loopml import pipeline, step

WEIGHT = "sample_weight"


@step
def load(dataset: str) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        (table,) = [f for f in loopml.data.download(dataset, tmp) if f.suffix == ".parquet"]
        return pd.read_parquet(table)


@step
def split(df: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    fit, test = train_test_split(df, test_size=0.2, random_state=seed)
    return fit.reset_index(drop=True), test.reset_index(drop=True)


def _features(df: pd.DataFrame, label: str) -> pd.DataFrame:
    return df.drop(columns=[c for c in (label, WEIGHT) if c in df.columns])


@step
def train(fit: pd.DataFrame, label: str = "label", seed: int = 0) -> object:
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    features = _features(fit, label)
    text = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    encode = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), text), remainder="passthrough"
    )
    model = make_pipeline(
        encode,
        HistGradientBoostingClassifier(
            max_iter=40, max_leaf_nodes=15, learning_rate=0.15, random_state=seed
        ),
    )
    weights = fit[WEIGHT].to_numpy() if WEIGHT in fit.columns else np.ones(len(fit))
    return model.fit(features, fit[label], histgradientboostingclassifier__sample_weight=weights)


@step
def evaluate(model: object, test: pd.DataFrame, label: str = "label") -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    predicted = model.predict(_features(test, label))  # type: ignore[attr-defined]
    return {
        "accuracy": float(accuracy_score(test[label], predicted)),
        "f1": float(f1_score(test[label], predicted)),
    }


@step
def register(
    model: object,
    metrics: dict[str, float],
    test: pd.DataFrame,
    label: str = "label",
    name: str = "tabular",
) -> int:
    version = loopml.models.register(
        loopml.active_run(),
        model,
        name=name,
        input_example=_features(test, label).head(5),
        metrics=metrics,
    )
    return version.version


@pipeline
def tabular(dataset: str = "history@latest", label: str = "label", name: str = "tabular"):  # type: ignore[no-untyped-def]
    fit, test = split(load(dataset))
    model = train(fit, label=label)
    metrics = evaluate(model, test, label=label)
    register(model, metrics, test, label=label, name=name)
