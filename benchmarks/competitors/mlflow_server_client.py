"""One MLflow client process for team_server.py: logs to, or searches, an `mlflow server`; or
writes the runs to be searched straight into its database.

    .anchors/mlflow/bin/python benchmarks/competitors/mlflow_server_client.py MODE URI [N]

MODE:
  log         one run, N metric points through MlflowClient.log_batch, 1,000 a call (MLflow's
              fastest path); starts at the Unix time in BENCH_START_AT if set, so that many
              clients begin together once all have started up
  log_metric  the same with one MlflowClient.log_metric call a point (MLflow's default)
  roundtrip   N single log_metric calls, each timed alone: their median in ms
  search      the first page of 100 runs of experiment "scale", "metrics.acc > 0.5" by acc
              descending, 5 times: the median in ms and the run names found
  populate    N is a file holding a JSON list of runs ({"name", "params", "metrics", "tags"}):
              writes them into experiment "scale" with log_batch; URI is then the database URL
URI is the server's URL (or, for populate, the database). Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import mlflow
from mlflow.entities import Metric, Param, RunTag

BATCH = 1_000


def experiment_id(client: Any, name: str) -> str:
    found = client.get_experiment_by_name(name)
    return str(found.experiment_id if found else client.create_experiment(name))


def log(client: Any, points: int, batched: bool) -> dict[str, Any]:
    run_experiment = experiment_id(client, "bench")
    time.sleep(max(0.0, float(os.environ.get("BENCH_START_AT", "0")) - time.time()))
    started = time.perf_counter()
    run_id = client.create_run(run_experiment).info.run_id
    if batched:
        for first in range(0, points, BATCH):
            stamp = int(time.time() * 1000)
            batch = range(first, min(first + BATCH, points))
            client.log_batch(
                run_id, metrics=[Metric("loss", 1.0 / (i + 1), stamp, i) for i in batch]
            )
    else:
        for i in range(points):
            client.log_metric(run_id, "loss", 1.0 / (i + 1), step=i)
    client.set_terminated(run_id)
    return {"seconds": time.perf_counter() - started, "ended": time.time(), "run": run_id}


def roundtrip(client: Any, calls: int) -> dict[str, Any]:
    run_id = client.create_run(experiment_id(client, "bench")).info.run_id
    took = []
    for i in range(calls):
        started = time.perf_counter()
        client.log_metric(run_id, "rt", float(i), step=i)
        took.append(time.perf_counter() - started)
    return {"median_ms": statistics.median(took) * 1000}


def search(client: Any) -> dict[str, Any]:
    scale = client.get_experiment_by_name("scale").experiment_id
    took, page = [], []
    for _ in range(5):
        started = time.perf_counter()
        page = client.search_runs(
            [scale], "metrics.acc > 0.5", order_by=["metrics.acc DESC"], max_results=100
        )
        took.append(time.perf_counter() - started)
    return {"median_ms": statistics.median(took) * 1000, "names": [r.info.run_name for r in page]}


def populate(client: Any, runs: list[dict[str, Any]]) -> dict[str, Any]:
    scale = experiment_id(client, "scale")
    for run in runs:
        run_id = client.create_run(scale, run_name=run["name"]).info.run_id
        stamp = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, stamp, 0) for k, v in run["metrics"].items()],
            params=[Param(k, str(v)) for k, v in run["params"].items()],
            tags=[RunTag(k, v) for k, v in run["tags"].items()],
        )
        client.set_terminated(run_id)
    return {"runs": len(runs)}


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if len(sys.argv) > 1 else 2)
    mode, uri = sys.argv[1], sys.argv[2]
    argument = sys.argv[3] if len(sys.argv) > 3 else "0"
    client = mlflow.MlflowClient(tracking_uri=uri)
    if mode in ("log", "log_metric"):
        out = log(client, int(argument), batched=mode == "log")
    elif mode == "roundtrip":
        out = roundtrip(client, int(argument))
    elif mode == "search":
        out = search(client)
    elif mode == "populate":
        out = populate(client, json.loads(Path(argument).read_text()))
    else:
        sys.exit(f"unknown mode {mode!r}: log, log_metric, roundtrip, search or populate")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
