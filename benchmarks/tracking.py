"""Experiment tracking, loopml beside MLflow, measured in one invocation on this machine.

    python benchmarks/tracking.py [--points 10000] [--runs 200] [--search-runs 10000]
                                  [--anchors .anchors] [--out results/tracking.json]

loopml (fresh SQLite workspace in a temporary folder), wall-clock seconds:
  log_metric_s      1 run + N x run.log_metric("loss", v, step=i), one call each, run end included
  create_runs_s     --runs x (start_run, log_params(10), log_metrics(10), end)
  search_s          search "metrics.acc > 0.5" ordered by -metrics.acc over those runs (median of 5)
  search_page_s     the first page of 100 of the same query among --search-runs runs (median of 3)
MLflow: ../shared/anchors/mlflow_tracking.py with the same sizes, plus its asynchronous
log_metric mode (`synchronous=False`), as shipped and with MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS=1,
in the MLflow environment that anchors/setup.sh creates.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from _common import (  # the script's folder is on sys.path
    ANCHORS_SCRIPTS,
    anchor_python,
    emit,
    machine,
    median_seconds,
    rounded,
    run_json,
    seconds,
)

from loopml.bootstrap import Workspace, open_workspace
from loopml.settings import Settings

FILTER = "metrics.acc > 0.5"
ORDER = "-metrics.acc"


def _workspace(root: Path) -> Workspace:
    settings = Settings(
        home=root,
        db_url=f"sqlite:///{root / 'loopml.db'}",
        artifacts_url=str(root / "artifacts"),
        cache_dir=root / "cache",
        actor="bench",
    )
    return open_workspace(settings)


def _log_metrics(ws: Workspace, points: int) -> None:
    with ws.tracking.start_run(project="metrics", name="loss") as run:
        for i in range(points):
            run.log_metric("loss", 1.0 / (i + 1), step=i)


def _create_runs(ws: Workspace, project: str, runs: int, rng: random.Random) -> None:
    for j in range(runs):
        with ws.tracking.start_run(
            project=project, name=f"run{j}", tags={"team": rng.choice("abc"), "stage": "dev"}
        ) as run:
            run.log_params({f"p{k}": rng.randint(0, 1000) for k in range(10)})
            run.log_metrics({**{f"m{k}": rng.random() for k in range(9)}, "acc": rng.random()})


def measure_loopml(args: argparse.Namespace) -> dict[str, Any]:
    res: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="loopml-tracking-") as tmp:
        ws = _workspace(Path(tmp))
        res["log_metric_s"] = seconds(lambda: _log_metrics(ws, args.points))
        res["log_metric_us_per_call"] = res["log_metric_s"] / args.points * 1e6
        res["create_runs_s"] = seconds(
            lambda: _create_runs(ws, "runs", args.runs, random.Random(42))
        )

        def search(project: str, limit: int) -> int:
            page = ws.tracking.search(project=project, filter=FILTER, order_by=ORDER, limit=limit)
            return len(page.runs)

        res["search_s"] = median_seconds(lambda: search("runs", 1000), 5)
        res["search_hits"] = search("runs", 1000)
        if args.search_runs:
            res["search_page_runs"] = args.search_runs
            res["search_page_create_s"] = seconds(
                lambda: _create_runs(ws, "scale", args.search_runs, random.Random(0))
            )
            res["search_page_s"] = median_seconds(lambda: search("scale", 100), 3)
        ws.close()
    return res


_MLFLOW_ASYNC = textwrap.dedent(
    """
    import json, os, sys, tempfile, time
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    points = int(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        exp = mlflow.create_experiment("async", artifact_location=f"file://{tmp}/artifacts")
        t0 = time.perf_counter()
        with mlflow.start_run(experiment_id=exp):
            for i in range(points):
                mlflow.log_metric("loss", 1.0 / (i + 1), step=i, synchronous=False)
        mlflow.flush_async_logging()
        print(json.dumps({"log_metric_async_s": time.perf_counter() - t0}))
    """
)


def measure_mlflow(args: argparse.Namespace) -> dict[str, Any]:
    python = str(anchor_python(args.anchors, "mlflow"))
    with tempfile.TemporaryDirectory() as tmp:
        res = run_json(
            [
                python,
                str(ANCHORS_SCRIPTS / "mlflow_tracking.py"),
                "--out",
                f"{tmp}/mlflow.json",
                "--points",
                str(args.points),
                "--runs",
                str(args.runs),
                "--search-runs",
                str(args.search_runs),
            ]
        )
    # MLflow's asynchronous mode, as shipped and with a 1 s buffer (its best batching).
    res["log_metric_async_s"] = run_json([python, "-c", _MLFLOW_ASYNC, str(args.points)])[
        "log_metric_async_s"
    ]
    buffered = {**os.environ, "MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS": "1"}
    res["log_metric_async_buffered_s"] = run_json(
        [python, "-c", _MLFLOW_ASYNC, str(args.points)], env=buffered
    )["log_metric_async_s"]
    return res


def ratios(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float]:
    pairs = {
        "log_metric_vs_mlflow_loop": ("log_metric_s", "log_metric_s"),
        "log_metric_vs_mlflow_async": ("log_metric_s", "log_metric_async_s"),
        "log_metric_vs_mlflow_async_buffered": ("log_metric_s", "log_metric_async_buffered_s"),
        "create_runs": ("create_runs_s", "create_runs_s"),
        "search": ("search_s", "search_runs_s"),
        "search_page": ("search_page_s", "search_page_s"),
    }
    return {
        name: round(theirs[b] / ours[a], 1)
        for name, (a, b) in pairs.items()
        if a in ours and b in theirs and ours[a] > 0
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--search-runs", type=int, default=10_000)
    parser.add_argument("--anchors", type=Path, default=Path(".anchors"))
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    ours = rounded(measure_loopml(args))
    result: dict[str, Any] = {"machine": machine(), "loopml": ours}
    if not args.skip_mlflow:
        theirs = rounded(measure_mlflow(args))
        result["mlflow"] = theirs
        result["times_faster_than_mlflow"] = ratios(ours, theirs)
    emit(result, args.out)


if __name__ == "__main__":
    main()
