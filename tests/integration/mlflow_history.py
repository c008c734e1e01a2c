"""Builds an MLflow store with MLflow's own client, as a team's history looks (run with
MLFLOW_TRACKING_URI set to a database): an experiment with a name loopml does not allow, a
parent run with two nested runs of 300 metric points each, artifacts in folders, a failed run,
and a registered model with two versions and aliases. Prints what it made as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

rng = np.random.default_rng(0)
X = rng.normal(size=(80, 3))
y = (X[:, 0] > 0).astype(int)
client = MlflowClient()
Path("report").mkdir(exist_ok=True)
Path("report/summary.txt").write_text("two candidates")
Path("report/plots").mkdir(exist_ok=True)
Path("report/plots/loss.csv").write_text("step,loss\n0,1.0\n")

mlflow.set_experiment("Churn model / 2024")
versions = []
with mlflow.start_run(run_name="sweep") as parent:
    mlflow.log_param("grid", "C")
    mlflow.set_tag("team", "growth")
    mlflow.log_artifacts("report", artifact_path="report")
    for c in (0.5, 2.0):
        with mlflow.start_run(run_name=f"C={c}", nested=True) as child:
            mlflow.log_params({"C": c, "solver": "lbfgs"})
            for step in range(300):
                mlflow.log_metric("loss", 1.0 / (step + 1) + c, step=step)
            mlflow.log_metric("accuracy", 0.8 + c / 100)
            model = LogisticRegression(C=c).fit(X, y)
            info = mlflow.sklearn.log_model(model, name="model")
            versions.append(mlflow.register_model(info.model_uri, "churn").version)
with mlflow.start_run(run_name="other kinds"):
    import xgboost

    booster = xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(X, y)
    xgb_info = mlflow.xgboost.log_model(booster, name="xgb")
    mlflow.register_model(xgb_info.model_uri, "churn-xgb")
    pickled = mlflow.sklearn.log_model(
        LogisticRegression().fit(X, y), name="pickled", serialization_format="cloudpickle"
    )
    mlflow.register_model(pickled.model_uri, "churn-pickle")
try:
    with mlflow.start_run(run_name="broken"):
        mlflow.log_param("C", "bad")
        raise ValueError("diverged")
except ValueError:
    pass
client.set_registered_model_alias("churn", "champion", versions[0])
client.set_registered_model_alias("churn", "challenger", versions[1])
runs = mlflow.search_runs(output_format="list")
champion = mlflow.pyfunc.load_model("models:/churn@champion")
print(
    json.dumps(
        {
            "runs": {r.info.run_name: r.info.run_id for r in runs},
            "parent": parent.info.run_id,
            "champion": champion.predict(X[:10]).tolist(),
            "xgb": booster.predict_proba(X[:10])[:, 1].tolist(),
        }
    )
)
