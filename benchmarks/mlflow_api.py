"""The unchanged MLflow client against loopml's MLflow REST API (`loopml server`, /api/2.0/mlflow)
beside the MLflow tracking server, in one invocation, all on the same PostgreSQL (a fresh database
each) with local artifact folders.

    python benchmarks/mlflow_api.py [--log-metric-calls 10000] [--batches 10] [--batch-size 1000]
                                    [--new-runs 200] [--search-runs 10000]
                                    [--skip-mlflow] [--runs 3] [--quick] [--anchors .anchors]
                                    [--out F]

PostgreSQL: LOOPML_BENCH_POSTGRES (default postgresql+psycopg://postgres@127.0.0.1:5432), a
role that may create databases. The same client script, competitors/mlflow_api_client.py in
.anchors/mlflow (mlflow's own client library), talks to each server on 127.0.0.1, told which by
MLFLOW_TRACKING_URI (and, for loopml, MLFLOW_TRACKING_TOKEN: an admin's token, as creating an
experiment creates a loopml project). One client process a pass; each line is its wall seconds
(the calls only, not the client's start-up) and the rate they give:
  log_metric_10k      --log-metric-calls mlflow.log_metric calls in one run, one HTTP call each:
                      points/s
  log_batch_10x1000   --batches MlflowClient().log_batch calls of --batch-size metric points
                      each, in one run: points/s
  runs_200            --new-runs runs, each mlflow.start_run(), log_params of 10 params,
                      log_metrics of 10 metrics and its end: runs/s
  search_10k          MlflowClient().search_runs, "metrics.acc > 0.5" by metrics.acc DESC,
                      max_results 100, in an experiment of --search-runs runs (median of 5):
                      searches/s
(the names follow the sizes). The client reads back what it logged (untimed) and the script stops
if a server kept less. The runs searched are generated once (seeded) and written straight to
each tool's database by its own library (not through the servers), into experiment "scale" (for
loopml, project "scale", whose experiment id is "scale"), 10 params, 10 metrics and 2 tags each;
then both databases are ANALYZEd, as autovacuum would after a bulk load. The script stops unless
every first page names the runs the generated data says, in that order. Each server is started
once; its passes run --runs times. MLflow runs with its default 4 workers and with 1, on one
database. The ratios (`times_faster`) are MLflow's median seconds over loopml's, per line. Every
figure includes the client's own work (building requests, parsing answers: the same for each
server), e.g. about 30 ms of a search is the mlflow client reading its 100 runs.
"""

from __future__ import annotations

import argparse
import json
import os
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
    run_json,
    summarise,
    times,
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

SEARCHED = "scale"  # the experiment (loopml: the project) of the runs searched
PAGE = 100
SIDES = {"mlflow_workers_4": "vs_mlflow_4_workers", "mlflow_workers_1": "vs_mlflow_1_worker"}


def _count(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def line_names(args: argparse.Namespace) -> dict[str, str]:
    """The client's name of each line, and the line's name in the JSON (after its sizes)."""
    return {
        "log_metric": f"log_metric_{_count(args.log_metric_calls)}",
        "log_batch": f"log_batch_{args.batches}x{args.batch_size}",
        "runs": f"runs_{args.new_runs}",
        "search": f"search_{_count(args.search_runs)}",
    }


def _expected(args: argparse.Namespace) -> dict[str, tuple[int, str]]:
    """What the client must read back after each logging line, and the rate's name."""
    return {
        "log_metric": (args.log_metric_calls, "points_per_s"),
        "log_batch": (args.batches * args.batch_size, "points_per_s"),
        "runs": (20, "runs_per_s"),  # the last run's 10 params and 10 metrics
    }


def first_page(runs: list[dict[str, Any]]) -> list[str]:
    """The names the first page must hold: acc > 0.5, by acc descending, 100 of them."""
    found = [r for r in runs if r["metrics"]["acc"] > 0.5]
    found.sort(key=lambda r: -r["metrics"]["acc"])
    return [r["name"] for r in found[:PAGE]]


def client_pass(args: argparse.Namespace, tool: str, env: dict[str, str]) -> dict[str, Any]:
    """One pass of the four lines by one client process: per line its seconds and rate, and the
    search's first page. Stops if the server kept less than was logged."""
    python = str(competitor_python(args.anchors, "mlflow"))
    client = [python, str(COMPETITORS / "mlflow_api_client.py")]
    sizes = [
        "--log-metric", str(args.log_metric_calls),
        "--log-batch", str(args.batches), str(args.batch_size),
        "--runs", str(args.new_runs),
        "--search", SEARCHED,
    ]  # fmt: skip
    answer = run_json([*client, *sizes], env=env)
    names = line_names(args)
    out: dict[str, Any] = {}
    for line, (count, rate) in _expected(args).items():
        got = answer[line]
        if got["stored"] != count:
            raise SystemExit(
                f"{tool}: {names[line]} logged {count} values but {got['stored']} were read back"
            )
        units = args.new_runs if line == "runs" else count
        out[names[line]] = {"seconds": got["seconds"], rate: units / got["seconds"]}
    search = answer["search"]
    out[names["search"]] = {"seconds": search["seconds"], "searches_per_s": 1 / search["seconds"]}
    out["search_names"] = search["names"]
    return out


def _env(url: str, token: str | None) -> dict[str, str]:
    """The client's environment: only the server's URL (and token) tell it where it logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPML_", "MLFLOW_"))}
    env |= {
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",  # an error answers at once, not after minutes
    }
    return env | ({"MLFLOW_TRACKING_TOKEN": token} if token else {})


def measure_loopml(args: argparse.Namespace, root: Path, runs: list[Any]) -> dict[str, Any]:
    with database() as db_url:
        server_env = {
            **os.environ,
            "LOOPML_DB_URL": db_url,
            "LOOPML_HOME": str(root / "loopml-server"),
        }
        token = loopml_token(server_env)
        began = time.perf_counter()
        populate_loopml(db_url, root / "loopml-populate", runs)
        analyze(db_url)
        populate_s = time.perf_counter() - began
        with loopml_server(server_env, root / "loopml-server.log") as url:
            passes = [client_pass(args, "loopml", _env(url, token)) for _ in range(args.runs)]
    return {"passes": passes, "populate_s": populate_s}


def measure_mlflow(
    args: argparse.Namespace, root: Path, db_url: str, workers: int
) -> list[dict[str, Any]]:
    port = free_port()
    env = _env(f"http://127.0.0.1:{port}", None)
    with mlflow_server(args.anchors, root, db_url, workers, port=port, env=env) as url:
        return [client_pass(args, f"mlflow ({workers} workers)", _env(url, None))
                for _ in range(args.runs)]  # fmt: skip


def same_page(expected: list[str], sides: dict[str, list[dict[str, Any]]]) -> int:
    """Every pass's first page names the runs the data says, in its order; or the script stops."""
    for side, passes in sides.items():
        for found in (p["search_names"] for p in passes):
            if found != expected:
                raise SystemExit(
                    f"{side}'s first page differs from the data's: {len(found)} runs, "
                    f"{len(set(found) & set(expected))} of the {len(expected)} expected, "
                    f"first {found[:3]} (expected {expected[:3]}): a bug in a server or here"
                )
    return len(expected)


def summary(args: argparse.Namespace, passes: list[dict[str, Any]]) -> dict[str, Any]:
    return {line: summarise([p[line] for p in passes]) for line in line_names(args).values()}


def ratios(args: argparse.Namespace, result: dict[str, Any]) -> dict[str, Any]:
    """Per line, how many times faster loopml is than each MLflow configuration (medians)."""
    found = {}
    for line in line_names(args).values():
        ours = result["loopml"][line]["seconds"]["median"]
        found[line] = {
            label: times(result[side][line]["seconds"]["median"], ours)
            for side, label in SIDES.items()
        }
    return found


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "log_metric_calls": args.log_metric_calls,
        "batches": args.batches,
        "batch_size": args.batch_size,
        "new_runs": args.new_runs,
        "search_runs": args.search_runs,
        "page": PAGE,
        "runs": args.runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--log-metric-calls", type=int, default=10_000)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--new-runs", type=int, default=200)
    parser.add_argument("--search-runs", type=int, default=10_000)
    parser.add_argument(
        "--skip-mlflow", action="store_true", help="measure loopml alone (e.g. an older loopml)"
    )
    add_run_options(parser)
    args = parser.parse_args()
    if args.quick:
        args.log_metric_calls, args.batches, args.new_runs = 200, 2, 20
        args.search_runs, args.runs = 300, 1
    competitor_python(args.anchors, "mlflow")
    tools = {"loopml": loopml_version(), "postgres": postgres_version()}
    tools |= installed_versions(args.anchors, "mlflow", ["mlflow", "psycopg", "uvicorn"])
    result: dict[str, Any] = {"benchmark": "mlflow_api", "machine": machine(tools)}
    result["settings"] = _settings(args)
    runs = make_runs(args.search_runs, 0, SEARCHED)
    expected = first_page(runs)
    with tempfile.TemporaryDirectory(prefix="loopml-bench-mlflow-api-") as tmp:
        root = Path(tmp)
        runs_file = root / "runs.json"
        runs_file.write_text(json.dumps(runs))
        loopml = measure_loopml(args, root, runs)
        result["first_page_agrees"] = same_page(expected, {"loopml": loopml["passes"]})
        result["loopml"] = {**summary(args, loopml["passes"]), "populate_s": loopml["populate_s"]}
        if args.skip_mlflow:
            emit(result, args.out)
            return
        with database() as mlflow_db:
            populate_s = populate_mlflow(args.anchors, mlflow_db, runs_file)
            mlflow_4 = measure_mlflow(args, root, mlflow_db, 4)
            mlflow_1 = measure_mlflow(args, root, mlflow_db, 1)
    sides = {"loopml": loopml["passes"], "mlflow_workers_4": mlflow_4, "mlflow_workers_1": mlflow_1}
    result["first_page_agrees"] = same_page(expected, sides)
    result["mlflow_workers_4"] = {**summary(args, mlflow_4), "populate_s": populate_s}
    result["mlflow_workers_1"] = summary(args, mlflow_1)
    result["times_faster"] = ratios(args, result)
    emit(result, args.out)


if __name__ == "__main__":
    main()
