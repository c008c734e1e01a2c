"""An ordinary MLflow training script, unchanged from what MLflow users run: the MLflow API test
runs it against `loopml server` (MLFLOW_TRACKING_URI, MLFLOW_TRACKING_TOKEN) and prints what it
saw as JSON for the test to check through loopml."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from sklearn.linear_model import LogisticRegression

rng = np.random.default_rng(0)
X = rng.normal(size=(200, 4))
y = (X[:, 0] > 0).astype(int)
client = MlflowClient()

mlflow.set_experiment("churn-mlflow")
with mlflow.start_run(run_name="first") as run:
    mlflow.log_param("C", 0.5)
    mlflow.log_params({"penalty": "l2", "solver": "lbfgs"})
    mlflow.set_tag("team", "growth")
    mlflow.set_tags({"stage": "dev", "scratch": "x"})
    client.delete_tag(run.info.run_id, "scratch")
    mlflow.log_input(mlflow.data.from_numpy(X, name="train"), context="training")
    for step in range(5):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.log_metrics({"accuracy": 0.9, "f1": 0.8})
    client.log_batch(
        run.info.run_id, metrics=[Metric("lr", 0.1 / (i + 1), 0, i) for i in range(2500)]
    )
    with tempfile.TemporaryDirectory() as folder:
        notes = Path(folder) / "notes.txt"
        notes.write_text("hello")
        mlflow.log_artifact(str(notes))
        mlflow.log_artifact(str(notes), artifact_path="sub")
    mlflow.log_dict({"a": 1}, "config.json")
    with mlflow.start_run(run_name="child", nested=True) as child:
        mlflow.log_metric("inner", 1.0)
    model = LogisticRegression(C=0.5).fit(X, y)
    info = mlflow.sklearn.log_model(model, name="model", input_example=X[:3])
    registered = mlflow.register_model(info.model_uri, "churn-model")
with mlflow.start_run(run_name="second"):
    mlflow.log_param("C", 2.0)
    mlflow.log_metric("accuracy", 0.7)

client.set_registered_model_alias("churn-model", "champion", registered.version)
loaded = mlflow.pyfunc.load_model("models:/churn-model@champion")
found = mlflow.search_runs(
    filter_string="metrics.accuracy > 0.5 and params.C = '0.5'", output_format="list"
)
ordered = mlflow.search_runs(order_by=["metrics.accuracy DESC"], output_format="list")
children = mlflow.search_runs(
    filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'", output_format="list"
)
try:
    client.delete_run(run.info.run_id)
    refused = ""
except MlflowException as error:
    refused = error.error_code
kept = client.get_run(run.info.run_id)
print(
    json.dumps(
        {
            "run_id": run.info.run_id,
            "child_id": child.info.run_id,
            "experiment_id": run.info.experiment_id,
            "predicted": loaded.predict(X[:20]).tolist(),
            "expected": model.predict(X[:20]).tolist(),
            "found": [r.info.run_id for r in found],
            "ordered": [r.data.metrics.get("accuracy") for r in ordered],
            "children": [r.info.run_id for r in children],
            "history": [
                (m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss")
            ],
            "lr_points": len(client.get_metric_history(run.info.run_id, "lr")),
            "artifacts": sorted(a.path for a in client.list_artifacts(run.info.run_id)),
            "sub": [a.path for a in client.list_artifacts(run.info.run_id, "sub")],
            "config": mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/config.json"),
            "version": registered.version,
            "tags": {k: v for k, v in kept.data.tags.items() if not k.startswith("mlflow.")},
            "inputs": [(i.dataset.name, i.tags[0].value) for i in kept.inputs.dataset_inputs],
            "experiments": [
                e.name for e in client.search_experiments(filter_string="name LIKE 'churn%'")
            ],
            "delete_run": refused,
            "by_alias": client.get_model_version_by_alias("churn-model", "champion").version,
        }
    )
)
