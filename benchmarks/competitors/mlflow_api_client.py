"""One MLflow client process for mlflow_api.py: the same code, unchanged, times `mlflow server` and
`loopml server` (MLflow's REST API at /api/2.0/mlflow), whichever MLFLOW_TRACKING_URI names
(with MLFLOW_TRACKING_TOKEN, a loopml token, for loopml).

    MLFLOW_TRACKING_URI=http://127.0.0.1:PORT [MLFLOW_TRACKING_TOKEN=...] \\
    .anchors/mlflow/bin/python benchmarks/competitors/mlflow_api_client.py \\
        [--log-metric N] [--log-batch CALLS SIZE] [--runs N] [--search EXPERIMENT]

Each option given is one line, run in this order; only the calls named are timed (wall seconds):
  --log-metric N          N mlflow.log_metric calls in one run of experiment "bench" (one HTTP
                          call each)
  --log-batch CALLS SIZE  CALLS MlflowClient().log_batch calls of SIZE metric points each, in one
                          run of experiment "bench"
  --runs N                N runs of experiment "bench", each mlflow.start_run(), log_params of 10
                          params, log_metrics of 10 metrics, and its end
  --search EXPERIMENT     MlflowClient().search_runs of experiment EXPERIMENT (by name),
                          "metrics.acc > 0.5" by metrics.acc DESC, max_results 100, 5 times: the
                          median, and the run names and acc values of the page
What was logged is read back afterwards (untimed), so that a server that dropped points shows:
each line's `stored` is the points (or, for --runs, the params and metrics of the last run) found.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric

EXPERIMENT = "bench"
SEARCHES = 5


def log_metric(client: MlflowClient, calls: int) -> dict[str, Any]:
    with mlflow.start_run(run_name="log_metric") as run:
        began = time.perf_counter()
        for i in range(calls):
            mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
        took = time.perf_counter() - began
    stored = len(client.get_metric_history(run.info.run_id, "loss"))
    return {"seconds": took, "stored": stored}


def log_batch(client: MlflowClient, calls: int, size: int) -> dict[str, Any]:
    with mlflow.start_run(run_name="log_batch") as run:
        run_id = run.info.run_id
        began = time.perf_counter()
        for call in range(calls):
            stamp = int(time.time() * 1000)
            steps = range(call * size, (call + 1) * size)
            client.log_batch(
                run_id, metrics=[Metric("loss", 1.0 / (i + 1), stamp, i) for i in steps]
            )
        took = time.perf_counter() - began
    stored = len(client.get_metric_history(run_id, "loss"))
    return {"seconds": took, "stored": stored}


def runs(client: MlflowClient, count: int) -> dict[str, Any]:
    run_id = ""
    began = time.perf_counter()
    for j in range(count):
        with mlflow.start_run() as run:
            mlflow.log_params({f"p{k}": j * 10 + k for k in range(10)})
            mlflow.log_metrics({f"m{k}": (j + k) / 1000 for k in range(10)})
        run_id = run.info.run_id
    took = time.perf_counter() - began
    data = client.get_run(run_id).data
    return {"seconds": took, "stored": len(data.params) + len(data.metrics)}


def search(client: MlflowClient, experiment: str) -> dict[str, Any]:
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"no experiment named {experiment!r} to search")
    took, page = [], []
    for _ in range(SEARCHES):
        began = time.perf_counter()
        page = client.search_runs(
            [found.experiment_id], "metrics.acc > 0.5", order_by=["metrics.acc DESC"],
            max_results=100,
        )  # fmt: skip
        took.append(time.perf_counter() - began)
    return {
        "seconds": statistics.median(took),
        "each": took,
        "names": [r.info.run_name for r in page],
        "acc": [r.data.metrics.get("acc") for r in page],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--log-metric", type=int, metavar="N")
    parser.add_argument("--log-batch", type=int, nargs=2, metavar=("CALLS", "SIZE"))
    parser.add_argument("--runs", type=int, metavar="N")
    parser.add_argument("--search", metavar="EXPERIMENT")
    args = parser.parse_args()
    if not os.environ.get("MLFLOW_TRACKING_URI", "").startswith("http"):
        raise SystemExit("set MLFLOW_TRACKING_URI to the server's URL")
    client = MlflowClient()
    out: dict[str, Any] = {}
    if args.log_metric or args.log_batch or args.runs:
        mlflow.set_experiment(EXPERIMENT)  # untimed; creates it on the first pass
    if args.log_metric:
        out["log_metric"] = log_metric(client, args.log_metric)
    if args.log_batch:
        out["log_batch"] = log_batch(client, *args.log_batch)
    if args.runs:
        out["runs"] = runs(client, args.runs)
    if args.search:
        out["search"] = search(client, args.search)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
