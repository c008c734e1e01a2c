"""`loopml import mlflow` of an MLflow store, beside MLflow's own client reading the same store
whole (what any importer must read: the floor), in one invocation on the same store.

    python benchmarks/mlflow_import.py [--store-runs 1000] [--points 100] [--runs 3] [--quick]
                                       [--anchors .anchors] [--out F]

The store is built once with MLflow 3.17.2 (competitors/mlflow_store.py in .anchors/mlflow): a
SQLite database and its ./mlruns folder, one experiment of --store-runs runs, each with 5
params, 2 tags, --points metric points (2 keys) and 2 artifacts (22 KB). Then, --runs times:
  import_s        `loopml import mlflow --tracking-uri sqlite:///... --json` into a fresh
                  embedded workspace (SQLite and a local folder), start to end as a user runs it
                  (the interpreter's start included); checked to bring every run, point and file
  import_again_s  the same command again on that workspace: every run is already whole
  mlflow_read_s   MLflow's client reading everything the import reads (runs, metric histories,
                  artifact downloads), in its own process
Target (the MLflow-import issue): import_s under 60 s for 1,000 runs x 100 points with artifacts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import (  # the script's folder is on sys.path
    add_run_options,
    competitor_python,
    emit,
    installed_versions,
    loopml_version,
    machine,
    run_json,
    seconds,
    summarise,
)

LOOPML = str(Path(sys.executable).parent / "loopml")
CLIENT = str(Path(__file__).parent / "competitors" / "mlflow_store.py")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPML_", "MLFLOW_"))}
    return {**env, **extra}


def _import(uri: str, home: Path) -> dict[str, Any]:
    command = [LOOPML, "import", "mlflow", "--tracking-uri", uri, "--json"]
    done = subprocess.run(command, env=_env(LOOPML_HOME=str(home)), capture_output=True,
                          text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"loopml import failed:\n{done.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def one_pass(python: Path, uri: str, folder: Path, expected: dict[str, int]) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="ws-", dir=folder))
    reports: list[dict[str, Any]] = []
    took = seconds(lambda: reports.append(_import(uri, home)))
    first = reports[-1]
    got = {"runs": first["runs"], "points": first["metric_points"], "files": first["artifacts"]}
    if got != expected:
        sys.exit(f"the import brought {got}, the store holds {expected}")
    again = seconds(lambda: reports.append(_import(uri, home)))
    if reports[-1]["runs_skipped"] != expected["runs"]:
        sys.exit(f"the second import did not skip every run: {reports[-1]}")
    with tempfile.TemporaryDirectory(dir=folder) as out:
        read = run_json([str(python), CLIENT, "read", uri, out], cwd=folder)
    return {"import_s": took, "import_again_s": again, "mlflow_read_s": read["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store-runs", type=int, default=1000)
    parser.add_argument("--points", type=int, default=100, help="metric points per run")
    add_run_options(parser)
    args = parser.parse_args()
    if args.quick:
        args.store_runs, args.points, args.runs = 20, 10, 1
    python = competitor_python(args.anchors, "mlflow")
    tools = {"loopml": loopml_version(), **installed_versions(args.anchors, "mlflow", ["mlflow"])}
    result: dict[str, Any] = {"machine": machine(tools), "store_runs": args.store_runs,
                              "points_per_run": args.points}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="loopml-bench-import-") as tmp:
        folder = Path(tmp)
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        built = run_json([str(python), CLIENT, "build", uri, str(args.store_runs),
                          str(args.points)], cwd=folder)  # fmt: skip
        result["build_s"] = built["seconds"]
        with tempfile.TemporaryDirectory(dir=folder) as out:
            read = run_json([str(python), CLIENT, "read", uri, out], cwd=folder)
        expected = {"runs": read["runs"], "points": read["points"], "files": read["files"]}
        result["store"] = expected
        passes = [one_pass(python, uri, folder, expected) for _ in range(args.runs)]
    result["passes"] = summarise(passes)
    emit(result, args.out)


if __name__ == "__main__":
    main()
