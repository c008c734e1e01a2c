"""Experiment tracking, loopml beside MLflow, on the same runs in one invocation on this machine.

    python benchmarks/tracking.py [--points 10000] [--runs-searched 200] [--search-runs 10000]
                                  [--runs 3] [--quick] [--anchors .anchors] [--skip-mlflow]
                                  [--out F]

The runs searched are generated once (seeded: 10 params, 10 metrics including `acc`, 2 tags
each) and written to both tools, so the same query finds the same runs; the script stops with
an error if the two tools' hits, or the run names in order, differ.

Each pass uses fresh stores (SQLite in a temporary folder), loopml's then MLflow's; --runs passes.
loopml, wall-clock seconds:
  log_metric_s      1 run + --points x run.log_metric("loss", v, step=i), the run's end included
  create_runs_s     the --runs-searched runs (start_run with tags, log_params, log_metrics, end)
  search_s          "metrics.acc > 0.5" ordered by acc descending over them (median of 5 calls)
  search_page_s     the first page of 100 of the same query among --search-runs runs (median of 3)
MLflow: competitors/mlflow_tracking.py in .anchors/mlflow (see its --help) with the same runs,
plus log_metric in its asynchronous mode (`synchronous=False`), as shipped and with
MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS=1.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from _common import (  # the script's folder is on sys.path
    COMPETITORS,
    add_run_options,
    competitor_python,
    emit,
    installed_versions,
    loopml_version,
    machine,
    make_runs,
    median_of,
    median_seconds,
    run_json,
    seconds,
    summarise,
    times,
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


def _log_points(ws: Workspace, points: int) -> None:
    with ws.tracking.start_run(project="metrics", name="loss") as run:
        for i in range(points):
            run.log_metric("loss", 1.0 / (i + 1), step=i)


def _create_runs(ws: Workspace, project: str, runs: list[dict[str, Any]]) -> None:
    for spec in runs:
        with ws.tracking.start_run(project=project, name=spec["name"], tags=spec["tags"]) as run:
            run.log_params(spec["params"])
            run.log_metrics(spec["metrics"])


def loopml_pass(args: argparse.Namespace, runs: list[Any], scale: list[Any]) -> dict[str, Any]:
    res: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="loopml-tracking-") as tmp:
        ws = _workspace(Path(tmp))

        def names(project: str, limit: int) -> list[str]:
            page = ws.tracking.search(project=project, filter=FILTER, order_by=ORDER, limit=limit)
            return [run.name for run in page.runs]

        res["log_metric_s"] = seconds(lambda: _log_points(ws, args.points))
        res["log_metric_us_per_call"] = res["log_metric_s"] / args.points * 1e6
        res["create_runs_s"] = seconds(lambda: _create_runs(ws, "runs", runs))
        res["search_s"] = median_seconds(lambda: names("runs", 1000), 5)
        res["search_names"] = names("runs", 1000)
        res["search_hits"] = len(res["search_names"])
        if scale:
            res["search_page_runs"] = len(scale)
            res["search_page_create_s"] = seconds(lambda: _create_runs(ws, "scale", scale))
            res["search_page_s"] = median_seconds(lambda: names("scale", 100), 3)
            res["search_page_names"] = names("scale", 100)
        ws.close()
    return res


def mlflow_pass(args: argparse.Namespace, files: dict[str, Path]) -> dict[str, Any]:
    python = str(competitor_python(args.anchors, "mlflow"))
    script = str(COMPETITORS / "mlflow_tracking.py")
    points = ["--points", str(args.points)]
    command = [python, script, *points, "--runs-file", str(files["runs"])]
    if "scale" in files:
        command += ["--scale-file", str(files["scale"])]
    res = run_json(command)
    res.pop("mlflow")
    asynchronous = [python, script, *points, "--mode", "async"]
    res["log_metric_async_s"] = run_json(asynchronous)["log_metric_async_s"]
    buffered = {**os.environ, "MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS": "1"}
    res["log_metric_async_buffered_s"] = run_json(asynchronous, env=buffered)["log_metric_async_s"]
    return res


def same_results(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """Both tools found the same runs in the same order, or the benchmark stops: a speed-up on
    different answers means nothing."""
    checked: dict[str, Any] = {}
    for key in ("search_names", "search_page_names"):
        if key not in ours:
            continue
        if ours[key] != theirs[key]:
            raise SystemExit(
                f"{key}: loopml found {len(ours[key])} runs, MLflow {len(theirs[key])}, or in "
                f"another order (first differing: {_first_difference(ours[key], theirs[key])}); "
                "the two tools were given the same runs, so this is a bug in one of them or here"
            )
        checked[key.removesuffix("_names") + "_hits_agree"] = len(ours[key])
    return checked


def _first_difference(a: list[str], b: list[str]) -> Any:
    return next(((i, x, y) for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)


def ratios(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float | None]:
    pairs = {
        "log_metric_vs_mlflow_loop": ("log_metric_s", "log_metric_s"),
        "log_metric_vs_mlflow_async": ("log_metric_s", "log_metric_async_s"),
        "log_metric_vs_mlflow_async_buffered": ("log_metric_s", "log_metric_async_buffered_s"),
        "create_runs": ("create_runs_s", "create_runs_s"),
        "search": ("search_s", "search_runs_s"),
        "search_page": ("search_page_s", "search_page_s"),
    }
    return {
        name: times(median_of(theirs, b), median_of(ours, a))
        for name, (a, b) in pairs.items()
        if a in ours and b in theirs
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--runs-searched", type=int, default=200)
    parser.add_argument("--search-runs", type=int, default=10_000, help="0: skip the page test")
    parser.add_argument("--skip-mlflow", action="store_true")
    add_run_options(parser)
    args = parser.parse_args()
    if args.quick:
        args.points, args.runs_searched, args.search_runs, args.runs = 200, 30, 150, 1
    tools = {"loopml": loopml_version()}
    if not args.skip_mlflow:
        competitor_python(args.anchors, "mlflow")
        tools |= installed_versions(args.anchors, "mlflow", ["mlflow", "sqlalchemy"])
    result: dict[str, Any] = {"benchmark": "tracking", "machine": machine(tools)}
    result["settings"] = {
        "points": args.points,
        "runs_searched": args.runs_searched,
        "search_runs": args.search_runs,
        "runs": args.runs,
    }
    runs = make_runs(args.runs_searched, 42, "run")
    scale = make_runs(args.search_runs, 0, "scale")
    ours, theirs = [], []
    with tempfile.TemporaryDirectory(prefix="loopml-tracking-data-") as tmp:
        files = {"runs": Path(tmp) / "runs.json"}
        files["runs"].write_text(json.dumps(runs))
        if scale:
            files["scale"] = Path(tmp) / "scale.json"
            files["scale"].write_text(json.dumps(scale))
        for _ in range(args.runs):
            ours.append(loopml_pass(args, runs, scale))
            if not args.skip_mlflow:
                theirs.append(mlflow_pass(args, files))
                result["same_results"] = same_results(ours[-1], theirs[-1])
    strip = ("search_names", "search_page_names")
    result["loopml"] = summarise([{k: v for k, v in p.items() if k not in strip} for p in ours])
    if theirs:
        result["mlflow"] = summarise(
            [{k: v for k, v in p.items() if k not in strip} for p in theirs]
        )
        result["times_faster_than_mlflow"] = ratios(result["loopml"], result["mlflow"])
    emit(result, args.out)


if __name__ == "__main__":
    main()
