"""Train the serving benchmark's model and log it to a fresh MLflow store: the model that
serving.py then serves with `mlflow models serve`.

    .anchors/mlflow/bin/python benchmarks/competitors/mlflow_model.py DATA_CSV STORE_DIR
        [--model hist-gradient-boosting|xgboost]

DATA_CSV is the file serving.py writes: the features, `target`, and `split` (train or test).
Fits the model serving.py names (scikit-learn's HistGradientBoostingClassifier(random_state=0),
or XGBClassifier(n_estimators=100, max_depth=4, random_state=0)) on the train rows, exactly as
loopml's side does, and logs it with `mlflow.sklearn.log_model` or `mlflow.xgboost.log_model`
(signature and input example included) to a SQLite tracking store in STORE_DIR. Prints one
JSON line: the tracking URI and the model URI to pass to `mlflow models serve`, the test
accuracy, and the versions used.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import mlflow
import pandas as pd
import sklearn
import skops.io
from mlflow.models import infer_signature
from sklearn.ensemble import HistGradientBoostingClassifier


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", type=Path, help="CSV with the features, target and split")
    parser.add_argument("store", type=Path, help="folder for the SQLite store and artifacts")
    parser.add_argument("--model", choices=("hist-gradient-boosting", "xgboost"),
                        default="hist-gradient-boosting")  # fmt: skip
    args = parser.parse_args()

    data = pd.read_csv(args.data)
    train, test = data[data["split"] == "train"], data[data["split"] == "test"]
    features = train.drop(columns=["target", "split"])
    if args.model == "xgboost":
        from xgboost import XGBClassifier

        model = XGBClassifier(n_estimators=100, max_depth=4, random_state=0)
    else:
        model = HistGradientBoostingClassifier(random_state=0)
    model.fit(features, train["target"])

    store = args.store.absolute()
    store.mkdir(parents=True, exist_ok=True)
    tracking_uri = f"sqlite:///{store / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.create_experiment("serving", artifact_location=(store / "art").as_uri())
    signature = infer_signature(features, model.predict(features))
    with mlflow.start_run(experiment_id=experiment) as run:
        if args.model == "xgboost":  # the booster's own file format
            mlflow.xgboost.log_model(
                model, name="model", signature=signature, input_example=features.head(2)
            )
        else:  # skops, which loads only the types it is told to trust
            mlflow.sklearn.log_model(
                model,
                name="model",
                signature=signature,
                input_example=features.head(2),
                skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)),
            )
    accuracy = model.score(test.drop(columns=["target", "split"]), test["target"])
    print(
        json.dumps(
            {
                "tracking_uri": tracking_uri,
                "model_uri": f"runs:/{run.info.run_id}/model",
                "test_accuracy": accuracy,
                "mlflow": mlflow.__version__,
                "scikit-learn": sklearn.__version__,
                "model": args.model,
            }
        )
    )


if __name__ == "__main__":
    main()
