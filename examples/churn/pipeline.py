"""The churn training pipeline: ingest a versioned dataset, validate it, split, train a
scikit-learn model, evaluate it and register it. The retraining loop and the demo run it.

    loopml data add train.csv --name churn
    loopml pipeline run examples/churn/pipeline.py:churn --param lr=0.05
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

import loopml
from loopml import pipeline, step

FEATURES = ["tenure", "plan", "monthly", "support_calls"]
TARGET = "churned"


@step
def load(dataset: str) -> pd.DataFrame:
    """The dataset version's table (recorded as this step's input)."""
    with tempfile.TemporaryDirectory() as tmp:
        files = loopml.data.download(dataset, tmp)
        tables = [f for f in files if f.suffix in (".csv", ".parquet")]
        if len(tables) != 1:
            raise ValueError(f"{dataset} should hold one CSV or Parquet file, not {len(files)}")
        table = tables[0]
        return pd.read_parquet(table) if table.suffix == ".parquet" else pd.read_csv(table)


@step
def validate(df: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """Refuse a table without the expected columns, with missing labels, or too small."""
    expected = columns or [*FEATURES, TARGET]
    missing = sorted(set(expected) - set(df.columns))
    if missing:
        raise ValueError(f"the data lacks columns {missing}")
    if df[TARGET].isna().any():
        raise ValueError(f"{int(df[TARGET].isna().sum())} rows have no label")
    if len(df) < 50:
        raise ValueError(f"only {len(df)} rows; at least 50 are needed")
    return df[expected].reset_index(drop=True)


@step
def split(
    df: pd.DataFrame, test_size: float = 0.2, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    train_df, test_df = train_test_split(
        df, test_size=test_size, random_state=seed, stratify=df[TARGET]
    )
    return train_df.reset_index(drop=True), test_df.reset_index(drop=True)


@step
def train(train_df: pd.DataFrame, lr: float = 0.1, depth: int = 3, seed: int = 0) -> Pipeline:
    encode = ColumnTransformer(
        [("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"])], remainder="passthrough"
    )
    model = Pipeline(
        [
            ("encode", encode),
            (
                "gbm",
                HistGradientBoostingClassifier(
                    learning_rate=lr, max_depth=depth, max_iter=60, random_state=seed
                ),
            ),
        ]
    )
    return model.fit(train_df[FEATURES], train_df[TARGET])


@step
def evaluate(model: Pipeline, test_df: pd.DataFrame) -> dict[str, float]:
    predicted = model.predict(test_df[FEATURES])
    scores = model.predict_proba(test_df[FEATURES])[:, 1]
    return {
        "f1": float(f1_score(test_df[TARGET], predicted)),
        "accuracy": float(accuracy_score(test_df[TARGET], predicted)),
        "auc": float(roc_auc_score(test_df[TARGET], scores)),
    }


@step
def register(
    model: Pipeline, metrics: dict[str, float], test_df: pd.DataFrame, name: str = "churn"
) -> dict[str, int]:
    """Add the model to the registry with its metrics (once per distinct model: cached)."""
    version = loopml.models.register(
        loopml.active_run(),
        model,
        name=name,
        input_example=test_df[FEATURES].head(5),
        metrics=metrics,
    )
    return {"version": version.version}


@pipeline
def churn(
    dataset: str = "churn@latest",
    lr: float = 0.1,
    depth: int = 3,
    test_size: float = 0.2,
    model_name: str = "churn",
):
    df = validate(load(dataset))
    train_df, test_df = split(df, test_size=test_size)
    model = train(train_df, lr=lr, depth=depth)
    metrics = evaluate(model, test_df)
    register(model, metrics, test_df, name=model_name)
    return metrics


if __name__ == "__main__":
    print(loopml.run_pipeline(churn).metrics)
    print(Path(__file__).name, "ran")
