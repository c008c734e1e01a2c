"""A fitted model's importance per input column, as monitors weigh drift by it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopml.monitoring.importance import model_importance


def _data(rows: int = 600) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "tenure": rng.normal(30, 10, rows),
            "monthly": rng.normal(60, 15, rows),
            "plan": rng.choice(["basic", "pro", "family"], rows),
            "note": rng.choice(["late fee", "happy customer", "moving away soon"], rows),
        }
    )
    return frame, pd.Series((frame["tenure"] < 25).astype(int))


def test_a_linear_models_coefficients_by_magnitude() -> None:
    from sklearn.linear_model import LogisticRegression

    frame, y = _data()
    model = LogisticRegression(max_iter=1000).fit(frame[["tenure", "monthly"]], y)
    weights, source = model_importance(model, ["monthly", "tenure"])  # order of the signature
    assert source == "model"
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["tenure"] > 0.9


def test_a_forests_importances_without_feature_names() -> None:
    from sklearn.ensemble import RandomForestClassifier

    frame, y = _data()
    values = frame[["tenure", "monthly"]].to_numpy()
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(values, y)
    weights, source = model_importance(model, ["tenure", "monthly"])
    assert source == "model"
    assert weights["tenure"] > weights["monthly"]


def test_a_pipelines_encoded_outputs_add_up_to_their_columns() -> None:
    from sklearn.compose import make_column_transformer
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame, y = _data()
    features = make_column_transformer(
        (StandardScaler(), ["tenure", "monthly"]),
        (OneHotEncoder(handle_unknown="ignore"), ["plan"]),
        (CountVectorizer(), "note"),
    )
    model = make_pipeline(features, LogisticRegression(max_iter=2000)).fit(frame, y)
    inputs = ["tenure", "monthly", "plan", "note"]
    weights, source = model_importance(model, inputs)
    assert source == "model"
    assert set(weights) == set(inputs)
    assert sum(weights.values()) == pytest.approx(1.0)
    assert max(weights, key=weights.__getitem__) == "tenure"


def test_a_model_without_importances_weighs_every_input_the_same() -> None:
    from sklearn.neighbors import KNeighborsClassifier

    frame, y = _data()
    model = KNeighborsClassifier().fit(frame[["tenure", "monthly"]], y)
    assert model_importance(model, ["tenure", "monthly"]) == (
        {"tenure": 0.5, "monthly": 0.5},
        "equal",
    )
    assert model_importance(object(), ["a"]) == ({"a": 1.0}, "equal")


def test_importances_that_cannot_be_traced_to_the_inputs_are_not_guessed() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures

    frame, y = _data()
    model = make_pipeline(PolynomialFeatures(2), LogisticRegression(max_iter=2000))
    model.fit(frame[["tenure", "monthly"]].to_numpy(), y)
    assert model_importance(model, ["tenure", "monthly"])[1] == "equal"
