"""MLflow's side of mlflow_import.py, run in .anchors/mlflow: builds the store to import, and
reads all of it back through MLflow's client, as an import must (the floor of any importer).

    .anchors/mlflow/bin/python benchmarks/competitors/mlflow_store.py build DB_URI RUNS POINTS
    .anchors/mlflow/bin/python benchmarks/competitors/mlflow_store.py read DB_URI OUT_FOLDER

build: one experiment "imported" of RUNS runs, each with 5 params, 2 tags, POINTS metric points
       (2 keys, POINTS/2 steps each, through log_batch) and 2 artifacts (a 2 KB JSON file and a
       20 KB CSV in a folder); prints the seconds it took.
read:  lists the experiments and runs, reads every run's metric histories and downloads every
       run's artifacts into OUT_FOLDER; prints the seconds it took and what it read.
Run from a folder of its own: the store's artifacts go to ./mlruns there.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag


def build(uri: str, runs: int, points: int) -> dict[str, float]:
    began = time.perf_counter()
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("imported")
    steps = points // 2
    with tempfile.TemporaryDirectory() as folder:
        config, table = Path(folder) / "config.json", Path(folder) / "data" / "sample.csv"
        table.parent.mkdir()
        for number in range(runs):
            config.write_text(json.dumps({"run": number, "pad": "x" * 2000}))
            table.write_text("".join(f"{number},{i},{i * 0.5}\n" for i in range(1500)))
            run = client.create_run(experiment, run_name=f"run-{number:05d}")
            run_id = run.info.run_id
            now = int(time.time() * 1000)
            metrics = [Metric(k, 1.0 / (s + 1) + number, now + s, s)
                       for k in ("loss", "accuracy") for s in range(steps)]  # fmt: skip
            params = [Param(f"p{k}", str(number * k)) for k in range(5)]
            tags = [RunTag("team", "growth"), RunTag("stage", "dev")]
            client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
            client.log_artifact(run_id, str(config))
            client.log_artifacts(run_id, str(table.parent), "data")
            client.set_terminated(run_id)
    return {"seconds": time.perf_counter() - began}


def read(uri: str, out: str) -> dict[str, float]:
    began = time.perf_counter()
    client = MlflowClient(tracking_uri=uri)
    found = {"runs": 0, "points": 0, "files": 0}
    for experiment in client.search_experiments():
        token = None
        while True:
            page = client.search_runs([experiment.experiment_id], max_results=1000,
                                      page_token=token)  # fmt: skip
            for run in page:
                for key in run.data.metrics:
                    found["points"] += len(client.get_metric_history(run.info.run_id, key))
                into = Path(out) / run.info.run_id
                client.download_artifacts(run.info.run_id, "", str(into))
                found["files"] += sum(1 for p in into.rglob("*") if p.is_file())
                found["runs"] += 1
            token = page.token
            if not token:
                break
    return {"seconds": time.perf_counter() - began, **found}


if __name__ == "__main__":
    mode, uri = sys.argv[1], sys.argv[2]
    answer = (
        build(uri, int(sys.argv[3]), int(sys.argv[4]))
        if mode == "build"
        else read(uri, sys.argv[3])
    )
    print(json.dumps(answer))
