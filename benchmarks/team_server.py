"""Remote tracking through a server, loopml beside the MLflow tracking server, in one invocation,
both on the same PostgreSQL (a fresh database each) with local artifact folders.

    python benchmarks/team_server.py [--points 20000] [--clients 16] [--search-runs 10000]
                                     [--anchors .anchors] [--out results/team_server.json]

Every client is its own process (so the server under test has its process to itself), talking
to a server on 127.0.0.1:
  one_client_points_per_s     one client logs --points metric points to one run
                              (loopml: run.log_metric, buffered; MLflow: log_batch of 1,000, its
                              fastest path, and log_metric one call per point, its default)
  clients_points_per_s        --clients clients at once, each the same, starting to log together
                              once all have started up: total points / (last end - common start)
  roundtrip_ms                median of 300 single unbuffered calls (one metric point)
  search_page_ms              the first page of 100 runs, "metrics.acc > 0.5" by acc descending,
                              among --search-runs runs (median of 5)
MLflow runs with its default 4 workers and with 1 (its multi-worker mode adds ~45 ms to each
keep-alive request: uvicorn leaves TCP_NODELAY unset there). The runs searched are written
straight to each tool's database by its own library (not through the servers), 10 params and
10 metrics each; then both databases are ANALYZEd, as autovacuum would after a bulk load.

Needs psycopg in MLflow's environment: .anchors/mlflow/bin/pip install 'psycopg[binary]'.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from _common import anchor_python, emit, machine

POSTGRES = os.environ.get("LOOPML_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")
LOOPML = str(Path(sys.executable).parent / "loopml")

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
    out["rows"] = len(page.runs)
    out["total"] = page.total
ws.close()
print(json.dumps(out))
"""

MLFLOW_CLIENT = r"""
import json, os, statistics, sys, time
import mlflow
from mlflow.entities import Metric
mode, points, uri = sys.argv[1], int(sys.argv[2]), sys.argv[3]
client = mlflow.MlflowClient(tracking_uri=uri)
exp = client.get_experiment_by_name("bench")
if exp is None:
    exp = client.get_experiment(client.create_experiment("bench"))
out = {}
if mode in ("log", "log_metric"):
    time.sleep(max(0.0, float(os.environ.get("BENCH_START_AT", "0")) - time.time()))
    began = time.perf_counter()
    run_id = client.create_run(exp.experiment_id).info.run_id
    if mode == "log":
        for start in range(0, points, 1000):
            ts = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[Metric("loss", 1.0 / (i + 1), ts, i)
                                              for i in range(start, min(start + 1000, points))])
    else:
        for i in range(points):
            client.log_metric(run_id, "loss", 1.0 / (i + 1), step=i)
    client.set_terminated(run_id)
    out["seconds"] = time.perf_counter() - began
    out["ended"] = time.time()
    out["run"] = run_id
elif mode == "roundtrip":
    run_id = client.create_run(exp.experiment_id).info.run_id
    samples = []
    for i in range(points):
        began = time.perf_counter()
        client.log_metric(run_id, "rt", float(i), step=i)
        samples.append(time.perf_counter() - began)
    out["median_ms"] = statistics.median(samples) * 1000
elif mode == "search":
    scale = client.get_experiment_by_name("scale").experiment_id
    samples = []
    for _ in range(5):
        began = time.perf_counter()
        page = client.search_runs([scale], "metrics.acc > 0.5", order_by=["metrics.acc DESC"],
                                  max_results=100)
        samples.append(time.perf_counter() - began)
    out["median_ms"] = statistics.median(samples) * 1000
    out["rows"] = len(page)
print(json.dumps(out))
"""

MLFLOW_POPULATE = r"""
import random, sys, time
import mlflow
from mlflow.entities import Metric, Param
uri, runs = sys.argv[1], int(sys.argv[2])
client = mlflow.MlflowClient(tracking_uri=uri)
exp = client.create_experiment("scale")
rng = random.Random(0)
for _ in range(runs):
    run_id = client.create_run(exp).info.run_id
    ts = int(time.time() * 1000)
    client.log_batch(run_id,
        metrics=[Metric(f"m{k}", rng.random(), ts, 0) for k in range(9)]
        + [Metric("acc", rng.random(), ts, 0)],
        params=[Param(f"p{k}", str(rng.randint(0, 1000))) for k in range(10)])
    client.set_terminated(run_id)
"""


def _analyze(db_url: str) -> None:
    """Refresh the planner's statistics, as autovacuum does on a live database after a bulk
    load (both tools' databases get the same)."""
    from sqlalchemy import create_engine

    engine = create_engine(db_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()


@contextmanager
def _database() -> Iterator[str]:
    from sqlalchemy import create_engine, text

    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _process(args: list[str], env: dict[str, str], ready_url: str, log: Path) -> Iterator[None]:
    with log.open("wb") as sink:
        proc = subprocess.Popen(args, env=env, stdout=sink, stderr=sink)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(ready_url, timeout=2).status_code < 500:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{args[0]} did not start; see {log}")
                time.sleep(0.2)
            yield
        finally:
            proc.terminate()
            proc.wait(30)


def _clients(
    python: str, code: str, args: list[str], count: int, env: dict[str, str]
) -> tuple[float, list[dict[str, Any]]]:
    """Run `count` client processes at once; (wall seconds, their JSON answers). Logging
    clients start logging together at BENCH_START_AT, once every one has started up."""
    began = time.perf_counter()
    start_at = time.time() + 4.0 + 0.5 * count
    env = {**env, "BENCH_START_AT": str(start_at)}
    procs = [
        subprocess.Popen([python, "-c", code, *args], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    answers = []
    for proc in procs:
        out, _ = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"a client failed: {out[-2000:]}")
        answers.append(json.loads(out.strip().splitlines()[-1]))
    return time.perf_counter() - began, [{**a, "start_at": start_at} for a in answers]


def _together(points: int, answers: list[dict[str, Any]]) -> float:
    """Points per second of clients that started logging together: all their points over the
    time from the common start to the last one's end."""
    return points * len(answers) / (max(a["ended"] for a in answers) - answers[0]["start_at"])


def _populate_loopml(db_url: str, folder: Path, runs: int) -> None:
    import random

    from loopml.bootstrap import open_workspace
    from loopml.settings import Settings

    ws = open_workspace(
        Settings(
            home=folder,
            db_url=db_url,
            artifacts_url=str(folder / "artifacts"),
            cache_dir=folder / "cache",
            actor="bench",
        )
    )
    rng = random.Random(0)
    for j in range(runs):
        with ws.tracking.start_run(
            project="scale", name=f"run{j}", capture_environment=False
        ) as run:
            run.log_params({f"p{k}": rng.randint(0, 1000) for k in range(10)})
            run.log_metrics({**{f"m{k}": rng.random() for k in range(9)}, "acc": rng.random()})
    ws.close()


def measure_loopml(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with _database() as db_url:
        url_env = {**os.environ, "LOOPML_DB_URL": db_url}
        home = root / "loopml-server"
        url_env["LOOPML_HOME"] = str(home)
        subprocess.run([LOOPML, "users", "create", "bench", "--role", "admin"], env=url_env,
                       check=True, capture_output=True)  # fmt: skip
        token = subprocess.run(
            [LOOPML, "tokens", "create", "bench"], env=url_env, check=True, capture_output=True,
            text=True,
        ).stdout.strip()  # fmt: skip
        began = time.perf_counter()
        _populate_loopml(db_url, root / "loopml-populate", args.search_runs)
        _analyze(db_url)
        result["populate_s"] = time.perf_counter() - began
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = [LOOPML, "server", "--port", str(port)]
        with _process(server, url_env, f"{url}/api/v1/health", root / "loopml-server.log"):
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")},
                "LOOPML_SERVER": url,
                "LOOPML_TOKEN": token,
                "LOOPML_HOME": str(root / "loopml-client"),
            }
            py = sys.executable
            _, (one,) = _clients(py, LOOPML_CLIENT, ["log", str(args.points)], 1, env)
            result["one_client_points_per_s"] = args.points / one["seconds"]
            _, many = _clients(py, LOOPML_CLIENT, ["log", str(args.points)], args.clients, env)
            result["clients_points_per_s"] = _together(args.points, many)
            _, (rt,) = _clients(py, LOOPML_CLIENT, ["roundtrip", "300"], 1, env)
            result["roundtrip_ms"] = rt["median_ms"]
            _, (search,) = _clients(py, LOOPML_CLIENT, ["search", "0"], 1, env)
            result["search_page_ms"] = search["median_ms"]
            result["search_total"] = search["total"]
    return result


def populate_mlflow(args: argparse.Namespace, db_url: str) -> float:
    python = str(anchor_python(args.anchors, "mlflow"))
    began = time.perf_counter()
    subprocess.run([python, "-c", MLFLOW_POPULATE, db_url, str(args.search_runs)], check=True)
    _analyze(db_url)
    return time.perf_counter() - began


def measure_mlflow(
    args: argparse.Namespace, root: Path, db_url: str, workers: int
) -> dict[str, Any]:
    python = str(anchor_python(args.anchors, "mlflow"))
    mlflow_bin = str(Path(python).parent / "mlflow")
    result: dict[str, Any] = {"workers": workers}
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": url}
    server = [
        mlflow_bin, "server", "--backend-store-uri", db_url, "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers),
        "--default-artifact-root", str(root / f"mlflow-artifacts-{workers}"),
    ]  # fmt: skip
    with _process(server, env, f"{url}/health", root / f"mlflow-{workers}.log"):
        calls = ["log", str(args.points), url]
        _, (one,) = _clients(python, MLFLOW_CLIENT, calls, 1, env)
        result["one_client_points_per_s"] = args.points / one["seconds"]
        per_call = max(200, args.points // 20)
        _, (slow,) = _clients(python, MLFLOW_CLIENT, ["log_metric", str(per_call), url], 1, env)
        result["one_client_log_metric_points_per_s"] = per_call / slow["seconds"]
        _, many = _clients(python, MLFLOW_CLIENT, calls, args.clients, env)
        result["clients_points_per_s"] = _together(args.points, many)
        _, (rt,) = _clients(python, MLFLOW_CLIENT, ["roundtrip", "300", url], 1, env)
        result["roundtrip_ms"] = rt["median_ms"]
        _, (search,) = _clients(python, MLFLOW_CLIENT, ["search", "0", url], 1, env)
        result["search_page_ms"] = search["median_ms"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--search-runs", type=int, default=10_000)
    parser.add_argument("--anchors", type=Path, default=Path(".anchors"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loopml-bench-server-") as tmp:
        root = Path(tmp)
        loopml = measure_loopml(args, root)
        with _database() as mlflow_db:
            populate_s = populate_mlflow(args, mlflow_db)
            mlflow_4 = {**measure_mlflow(args, root, mlflow_db, 4), "populate_s": populate_s}
            mlflow_1 = measure_mlflow(args, root, mlflow_db, 1)
    best = max(mlflow_4["clients_points_per_s"], mlflow_1["clients_points_per_s"])
    result = {
        **machine(),
        "points": args.points,
        "clients": args.clients,
        "search_runs": args.search_runs,
        "loopml": loopml,
        "mlflow_workers_4": mlflow_4,
        "mlflow_workers_1": mlflow_1,
        "clients_throughput_x_best_mlflow": loopml["clients_points_per_s"] / best,
        "one_client_x_best_mlflow": loopml["one_client_points_per_s"]
        / max(mlflow_4["one_client_points_per_s"], mlflow_1["one_client_points_per_s"]),
    }
    emit(_rounded(result), args.out)


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return round(value, 3) if isinstance(value, float) else value


if __name__ == "__main__":
    main()
