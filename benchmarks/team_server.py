"""Remote tracking through a server, loopml beside the MLflow tracking server, in one invocation,
both on the same PostgreSQL (a fresh database each) with local artifact folders.

    python benchmarks/team_server.py [--points 20000] [--clients 16] [--search-runs 10000]
                                     [--runs 3] [--quick] [--anchors .anchors] [--out F]

PostgreSQL: LOOPML_BENCH_POSTGRES (default postgresql+psycopg://postgres@127.0.0.1:5432), a
role that may create databases. Every client is its own process (so the server under test has
its process to itself), talking to a server on 127.0.0.1:
  one_client_points_per_s     one client logs --points metric points to one run
                              (loopml: run.log_metric, buffered; MLflow: log_batch of 1,000, its
                              fastest path, and log_metric one call per point, its default)
  clients_points_per_s        --clients clients at once, each the same, starting to log together
                              once all have started up: total points / (last end - common start)
  roundtrip_ms                median of 300 single unbuffered calls (one metric point)
  search_page_ms              the first page of 100 runs, "metrics.acc > 0.5" by acc descending,
                              among --search-runs runs (median of 5)
The runs searched are generated once (seeded) and written straight to each tool's database by
its own library (not through the servers), 10 params, 10 metrics and 2 tags each; then both
databases are ANALYZEd, as autovacuum would after a bulk load. The script stops if the two
tools' first pages differ. Each server is started once; its measurements run --runs times.
MLflow runs with its default 4 workers and with 1 (its multi-worker mode adds ~45 ms to each
keep-alive request: uvicorn leaves TCP_NODELAY unset there). MLflow's side is
competitors/mlflow_server_client.py in .anchors/mlflow.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
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
    summarise,
)
from _servers import (
    analyze,
    database,
    free_port,
    loopml_server,
    loopml_token,
    mlflow_server,
    populate_loopml,
    populate_mlflow,
    postgres_version,
)

ROUNDTRIPS = 300

LOOPML_CLIENT = r"""
import json, os, statistics, sys, time
from loopml.bootstrap import open_workspace
from loopml.domain.filters import RunQuery, parse_filter, parse_order_by
from loopml.domain.records import MetricPoint
from loopml.settings import Settings
mode, points = sys.argv[1], int(sys.argv[2])
ws = open_workspace(Settings.from_env())
out = {}
if mode == "log":
    time.sleep(max(0.0, float(os.environ.get("BENCH_START_AT", "0")) - time.time()))
    began = time.perf_counter()
    with ws.tracking.start_run(project="bench", name="log") as run:
        for i in range(points):
            run.log_metric("loss", 1.0 / (i + 1), step=i)
    out["seconds"] = time.perf_counter() - began
    out["ended"] = time.time()
    out["run"] = run.id
elif mode == "roundtrip":
    with ws.tracking.start_run(project="bench", name="roundtrip") as run:
        store, samples = ws.tracking.store, []
        for i in range(points):
            began = time.perf_counter()
            store.log_batch(run.id, [MetricPoint("rt", float(i), i, 0)])
            samples.append(time.perf_counter() - began)
    out["median_ms"] = statistics.median(samples) * 1000
elif mode == "search":
    query = RunQuery("scale", parse_filter("metrics.acc > 0.5"), parse_order_by("-metrics.acc"))
    samples = []
    for _ in range(5):
        began = time.perf_counter()
        page = ws.tracking.store.search(query, 100, 0)
        samples.append(time.perf_counter() - began)
    out["median_ms"] = statistics.median(samples) * 1000
    out["names"] = [run.name for run in page.runs]
    out["total"] = page.total
ws.close()
print(json.dumps(out))
"""


def _clients(command: list[str], count: int, env: dict[str, str]) -> list[dict[str, Any]]:
    """Run `count` client processes at once; their JSON answers. Logging clients start logging
    together at BENCH_START_AT, once every one has started up."""
    start_at = time.time() + 4.0 + 0.5 * count
    env = {**env, "BENCH_START_AT": str(start_at)}
    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in range(count)
    ]
    answers = []
    for proc in procs:
        out, _ = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"a client failed: {out[-2000:]}")
        answers.append(json.loads(out.strip().splitlines()[-1]))
    return [{**a, "start_at": start_at} for a in answers]


def _together(points: int, answers: list[dict[str, Any]]) -> float:
    """Points per second of clients that started logging together: all their points over the
    time from the common start to the last one's end."""
    return points * len(answers) / (max(a["ended"] for a in answers) - answers[0]["start_at"])


def _loopml_measures(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """One pass of the four measurements against a running loopml server."""
    client = [sys.executable, "-c", LOOPML_CLIENT]
    (one,) = _clients([*client, "log", str(args.points)], 1, env)
    many = _clients([*client, "log", str(args.points)], args.clients, env)
    (rt,) = _clients([*client, "roundtrip", str(ROUNDTRIPS)], 1, env)
    (search,) = _clients([*client, "search", "0"], 1, env)
    return {
        "one_client_points_per_s": args.points / one["seconds"],
        "clients_points_per_s": _together(args.points, many),
        "roundtrip_ms": rt["median_ms"],
        "search_page_ms": search["median_ms"],
        "search_total": search["total"],
        "search_names": search["names"],
    }


def measure_loopml(args: argparse.Namespace, root: Path, runs: list[Any]) -> list[dict[str, Any]]:
    with database() as db_url:
        url_env = {
            **os.environ,
            "LOOPML_DB_URL": db_url,
            "LOOPML_HOME": str(root / "loopml-server"),
        }
        token = loopml_token(url_env)
        began = time.perf_counter()
        populate_loopml(db_url, root / "loopml-populate", runs)
        analyze(db_url)
        populate_s = time.perf_counter() - began
        with loopml_server(url_env, root / "loopml-server.log") as url:
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")},
                "LOOPML_SERVER": url,
                "LOOPML_TOKEN": token,
                "LOOPML_HOME": str(root / "loopml-client"),
            }
            return [
                {**_loopml_measures(args, env), "populate_s": populate_s} for _ in range(args.runs)
            ]


def _mlflow_measures(args: argparse.Namespace, url: str, env: dict[str, str]) -> dict[str, Any]:
    """One pass of the measurements against a running MLflow server."""
    python = str(competitor_python(args.anchors, "mlflow"))
    client = [python, str(COMPETITORS / "mlflow_server_client.py")]
    (one,) = _clients([*client, "log", url, str(args.points)], 1, env)
    per_call = max(200, args.points // 20)  # one HTTP call a point: fewer points, same rate
    (slow,) = _clients([*client, "log_metric", url, str(per_call)], 1, env)
    many = _clients([*client, "log", url, str(args.points)], args.clients, env)
    (rt,) = _clients([*client, "roundtrip", url, str(ROUNDTRIPS)], 1, env)
    (search,) = _clients([*client, "search", url], 1, env)
    return {
        "one_client_points_per_s": args.points / one["seconds"],
        "one_client_log_metric_points_per_s": per_call / slow["seconds"],
        "clients_points_per_s": _together(args.points, many),
        "roundtrip_ms": rt["median_ms"],
        "search_page_ms": search["median_ms"],
        "search_names": search["names"],
    }


def measure_mlflow(
    args: argparse.Namespace, root: Path, db_url: str, workers: int
) -> list[dict[str, Any]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": url, "MLFLOW_DISABLE_TELEMETRY": "true"}
    with mlflow_server(args.anchors, root, db_url, workers, port=port, env=env):
        return [{**_mlflow_measures(args, url, env), "workers": workers} for _ in range(args.runs)]


def same_page(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> int:
    """Both tools' first pages hold the same runs in the same order, or the benchmark stops."""
    for mine, other in zip(ours, theirs, strict=False):
        if mine["search_names"] != other["search_names"]:
            raise SystemExit(
                f"the first pages differ: loopml {len(mine['search_names'])} runs, MLflow "
                f"{len(other['search_names'])}, given the same runs: a bug in one of them or here"
            )
    return len(ours[0]["search_names"])


def _without_names(passes: list[dict[str, Any]]) -> dict[str, Any]:
    return summarise([{k: v for k, v in p.items() if k != "search_names"} for p in passes])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--search-runs", type=int, default=10_000)
    parser.add_argument(
        "--skip-mlflow", action="store_true", help="measure loopml alone (e.g. an older loopml)"
    )
    add_run_options(parser)
    args = parser.parse_args()
    if args.quick:
        args.points, args.clients, args.search_runs, args.runs = 500, 2, 150, 1
    tools = {"loopml": loopml_version(), "postgres": postgres_version()}
    if not args.skip_mlflow:
        competitor_python(args.anchors, "mlflow")
        tools |= installed_versions(args.anchors, "mlflow", ["mlflow", "psycopg", "uvicorn"])
    result: dict[str, Any] = {"benchmark": "team_server", "machine": machine(tools)}
    result["settings"] = {
        "points": args.points,
        "clients": args.clients,
        "search_runs": args.search_runs,
        "runs": args.runs,
    }
    runs = make_runs(args.search_runs, 0, "scale")
    with tempfile.TemporaryDirectory(prefix="loopml-bench-server-") as tmp:
        root = Path(tmp)
        runs_file = root / "runs.json"
        runs_file.write_text(json.dumps(runs))
        loopml = measure_loopml(args, root, runs)
        result["loopml"] = _without_names(loopml)
        if args.skip_mlflow:
            emit(result, args.out)
            return
        with database() as mlflow_db:
            populate_s = populate_mlflow(args.anchors, mlflow_db, runs_file)
            mlflow_4 = measure_mlflow(args, root, mlflow_db, 4)
            mlflow_1 = measure_mlflow(args, root, mlflow_db, 1)
    result["first_page_agrees"] = same_page(loopml, mlflow_4 + mlflow_1)
    result["mlflow_workers_4"] = {**_without_names(mlflow_4), "populate_s": populate_s}
    result["mlflow_workers_1"] = _without_names(mlflow_1)
    result["times_best_mlflow"] = _ratios(result)
    emit(result, args.out)


def _ratios(result: dict[str, Any]) -> dict[str, float]:
    """loopml's median points/s over the better of MLflow's two medians."""

    def median(side: str, key: str) -> float:
        return float(result[side][key]["median"])

    ratios = {}
    for key in ("clients_points_per_s", "one_client_points_per_s"):
        best = max(median("mlflow_workers_4", key), median("mlflow_workers_1", key))
        ratios[key.removesuffix("_points_per_s")] = round(median("loopml", key) / best, 2)
    return ratios


if __name__ == "__main__":
    main()
