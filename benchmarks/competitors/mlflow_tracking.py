"""MLflow experiment tracking on a fresh SQLite store, timed: the competitor side of tracking.py.

    .anchors/mlflow/bin/python benchmarks/competitors/mlflow_tracking.py --runs-file RUNS.json
        [--scale-file SCALE.json] [--points 10000] [--batch-size 1000] [--mode sync|async]

RUNS.json and SCALE.json are lists of runs, each {"name", "params", "metrics", "tags"}: tracking.py
writes them once and gives the same ones to loopml. Everything happens in a new temporary folder.

--mode sync (the default), wall-clock seconds:
  log_metric_s          one run, --points calls of mlflow.log_metric("loss", 1/(i+1), step=i)
  log_batch_s           one run, the same points through MlflowClient.log_batch, --batch-size a call
  create_runs_s         each run of RUNS.json: start_run(run_name, tags), log_params,
                        log_metrics, end_run
  search_runs_s         mlflow.search_runs("metrics.acc > 0.5", order_by acc descending) over
                        them, to a DataFrame (median of 5 calls)
  client_search_runs_s  the same query through MlflowClient.search_runs (median of 5 calls)
  search_hits, search_names   what that query found, and the run names in order
  with --scale-file: search_page_create_s (writing its runs with log_batch, the fastest way),
  search_page_s (the first page of 100 of the same query, median of 3), search_page_names
--mode async: log_metric_async_s, the --points log_metric calls with synchronous=False and the
  flush at the end; MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS in the environment applies.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import mlflow
from mlflow.entities import Metric, Param, RunTag

FILTER = "metrics.acc > 0.5"
ORDER_BY = ["metrics.acc DESC"]


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def median_time(fn: Callable[[], object], calls: int) -> float:
    return statistics.median(timed(fn) for _ in range(calls))


def experiment(client: Any, folder: Path, name: str) -> str:
    return str(client.create_experiment(name, artifact_location=(folder / name).as_uri()))


def log_points(experiment_id: str, points: int, synchronous: bool) -> None:
    with mlflow.start_run(experiment_id=experiment_id):
        for i in range(points):
            mlflow.log_metric("loss", 1.0 / (i + 1), step=i, synchronous=synchronous)
    if not synchronous:
        mlflow.flush_async_logging()


def log_point_batches(client: Any, experiment_id: str, points: int, size: int) -> str:
    run_id = client.create_run(experiment_id).info.run_id
    for start in range(0, points, size):
        stamp = int(time.time() * 1000)
        batch = [
            Metric("loss", 1.0 / (i + 1), stamp, i) for i in range(start, min(start + size, points))
        ]
        client.log_batch(run_id, metrics=batch)
    client.set_terminated(run_id)
    return str(run_id)


def create_runs(experiment_id: str, runs: list[dict[str, Any]]) -> None:
    for run in runs:
        with mlflow.start_run(experiment_id=experiment_id, run_name=run["name"], tags=run["tags"]):
            mlflow.log_params(run["params"])
            mlflow.log_metrics(run["metrics"])


def create_runs_batched(client: Any, experiment_id: str, runs: list[dict[str, Any]]) -> None:
    for run in runs:
        run_id = client.create_run(experiment_id, run_name=run["name"]).info.run_id
        stamp = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, stamp, 0) for k, v in run["metrics"].items()],
            params=[Param(k, str(v)) for k, v in run["params"].items()],
            tags=[RunTag(k, v) for k, v in run["tags"].items()],
        )
        client.set_terminated(run_id)


def names(client: Any, experiment_id: str, limit: int) -> list[str]:
    found = client.search_runs([experiment_id], FILTER, order_by=ORDER_BY, max_results=limit)
    return [run.info.run_name for run in found]


def measure_sync(args: argparse.Namespace, folder: Path, client: Any) -> dict[str, Any]:
    res: dict[str, Any] = {}
    points = experiment(client, folder, "points")
    res["log_metric_s"] = timed(lambda: log_points(points, args.points, True))
    started = time.perf_counter()
    run_id = log_point_batches(client, points, args.points, args.batch_size)
    res["log_batch_s"] = time.perf_counter() - started
    if len(client.get_metric_history(run_id, "loss")) != args.points:
        raise SystemExit("log_batch lost points")

    runs = json.loads(args.runs_file.read_text())
    searched = experiment(client, folder, "runs")
    res["create_runs_s"] = timed(lambda: create_runs(searched, runs))
    res["search_runs_s"] = median_time(
        lambda: mlflow.search_runs([searched], FILTER, order_by=ORDER_BY), 5
    )
    res["client_search_runs_s"] = median_time(lambda: names(client, searched, 1000), 5)
    res["search_names"] = names(client, searched, 1000)
    res["search_hits"] = len(res["search_names"])

    if args.scale_file:
        scale_runs = json.loads(args.scale_file.read_text())
        scale = experiment(client, folder, "scale")
        res["search_page_runs"] = len(scale_runs)
        res["search_page_create_s"] = timed(lambda: create_runs_batched(client, scale, scale_runs))
        res["search_page_s"] = median_time(lambda: names(client, scale, 100), 3)
        res["search_page_names"] = names(client, scale, 100)
    return res


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs-file", type=Path, help="runs for the search test (sync mode)")
    parser.add_argument("--scale-file", type=Path, help="runs for the first-page test")
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--mode", choices=["sync", "async"], default="sync")
    args = parser.parse_args()
    if args.mode == "sync" and args.runs_file is None:
        parser.error("--mode sync needs --runs-file")
    with tempfile.TemporaryDirectory(prefix="mlflow-tracking-") as tmp:
        folder = Path(tmp)
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        client = mlflow.MlflowClient(tracking_uri=uri)
        if args.mode == "sync":
            res = measure_sync(args, folder, client)
        else:
            points = experiment(client, folder, "async")
            res = {"log_metric_async_s": timed(lambda: log_points(points, args.points, False))}
    print(json.dumps({"mlflow": mlflow.__version__, **res}))


if __name__ == "__main__":
    main()
