"""Model serving, loopml beside `mlflow models serve`, on the same model and requests in one
invocation.

    python benchmarks/serving.py [--model hist-gradient-boosting|xgboost] [--seconds 10]
                                 [--runs 3] [--quick] [--anchors .anchors] [--skip-mlflow]
                                 [--out F]

The model: scikit-learn's HistGradientBoostingClassifier(random_state=0) (the default), or
XGBClassifier(n_estimators=100, max_depth=4, random_state=0) with `--model xgboost` (loopml's
xgboost flavor beside MLflow's), fitted on the train rows of scikit-learn's bundled
breast_cancer data (a stratified 75/25 split, random_state=0). This script writes
the data and the request bodies once; each tool fits the same model on the same rows (MLflow in
its own venv: competitors/mlflow_model.py). Requests: the first test row, and 1,000 rows drawn
with replacement (seed 0), as `{"rows": [...]}` (records) and `{"columns": ..., "data": ...}`
(split) for loopml and `{"dataframe_split": ...}` for MLflow, the same values. Both servers run
as one process with OMP_NUM_THREADS=1 on 127.0.0.1.

The load: competitors/loadgen.py (in .anchors/loadgen; closed loop, keep-alive connections,
--seconds measured after 2 s of warm-up per scenario) on the same CPUs as the server.
  MLflow:  GET /ping at concurrency 16 (the client's and the HTTP stack's ceiling); 1 row at
           concurrency 1 and 16; 1,000 rows at concurrency 1 and 4
  loopml:  GET /health at concurrency 16; 1 row at concurrency 1, 16 and 64; 1,000 rows as
           records at 1, and split (MLflow's body, unwrapped) at 1 and 4;
           1 row at 16 with prediction logging off (`--no-log`: the cost of logging); and a bare
           endpoint on the same uvicorn/Starlette stack that parses the body and returns a
           constant (the ceiling), at concurrency 16 and 64
Each pass starts every server afresh, MLflow's then loopml's; --runs passes.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
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
    run_json,
    summarise,
)

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# (name, path, body file or None for a GET, concurrency)
Scenario = tuple[str, str, str | None, int]
MLFLOW: list[Scenario] = [
    ("ping_c16", "/ping", None, 16),
    ("1row_c1", "/invocations", "1row_split.json", 1),
    ("1row_c16", "/invocations", "1row_split.json", 16),
    ("1000rows_c1", "/invocations", "1000rows_split.json", 1),
    ("1000rows_c4", "/invocations", "1000rows_split.json", 4),
]
LOOPML: list[Scenario] = [
    ("health_c16", "/health", None, 16),
    ("1row_c1", "/predict", "1row_rows.json", 1),
    ("1row_c16", "/predict", "1row_rows.json", 16),
    ("1row_c64", "/predict", "1row_rows.json", 64),
    ("1000rows_c1", "/predict", "1000rows_rows.json", 1),
    ("1000rows_split_c1", "/predict", "1000rows_columns.json", 1),
    ("1000rows_split_c4", "/predict", "1000rows_columns.json", 4),
]
NO_LOG: list[Scenario] = [("1row_c16_no_log", "/predict", "1row_rows.json", 16)]
BARE: list[Scenario] = [
    ("bare_1row_c16", "/predict", "1row_rows.json", 16),
    ("bare_1row_c64", "/predict", "1row_rows.json", 64),
]

_BARE = """
import orjson, sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

async def predict(request):
    orjson.loads(await request.body())
    return Response(b'{"predictions":[1]}', media_type="application/json")

uvicorn.run(Starlette(routes=[Route("/predict", predict, methods=["POST"])]), host="127.0.0.1",
            port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def write_inputs(folder: Path) -> None:
    """data.csv (features, target, split) and the request bodies, in both tools' formats."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    train, test = train_test_split(features, test_size=0.25, random_state=0, stratify=target)
    split = np.where(features.index.isin(train.index), "train", "test")
    features.assign(target=target, split=split).to_csv(folder / "data.csv", index=False)
    picks = np.random.default_rng(0).integers(0, len(features), 1_000)
    for name, rows in {"1row": test.iloc[:1], "1000rows": features.iloc[picks]}.items():
        split_body = {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}
        (folder / f"{name}_split.json").write_text(json.dumps({"dataframe_split": split_body}))
        (folder / f"{name}_columns.json").write_text(json.dumps(split_body))  # loopml's split
        records = rows.to_dict(orient="records")
        (folder / f"{name}_rows.json").write_text(json.dumps({"rows": records}))


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 180) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(
                f"the server exited with {proc.returncode}; its log:\n{log.read_text()[-3000:]}"
            )
        try:
            opener.open(url, timeout=1).read()
            return
        except urllib.error.HTTPError as answer:
            if answer.code < 500:  # it answers: up (a bare server has no such route)
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"no answer from {url} after {timeout_s} s; see {log}")


@contextmanager
def server(args: list[str], env: dict[str, str], ready_url: str, log: Path) -> Iterator[None]:
    """Run a server in a process group of its own until the block ends, then stop that group
    (MLflow's server starts uvicorn as a child process)."""
    with log.open("wb") as sink:
        proc = subprocess.Popen(args, env=env, stdout=sink, stderr=sink, start_new_session=True)
    try:
        _wait_ready(ready_url, proc, log)
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def load(args: argparse.Namespace, base: str, scenarios: list[Scenario]) -> dict[str, Any]:
    """Run each scenario with the load generator against `base`; rps and latencies by name."""
    python = str(competitor_python(args.anchors, "loadgen"))
    results: dict[str, Any] = {}
    for name, path, body, concurrency in scenarios:
        command = [python, str(COMPETITORS / "loadgen.py"), base + path, "-c", str(concurrency)]
        command += ["-d", str(args.seconds), "--warmup", str(args.warmup), "--label", name]
        if body is not None:
            command += ["--body", str(args.inputs / body)]
        answer = run_json(command)
        results[name] = {
            "rps": answer["rps"],
            "p50_ms": answer["latency_ms"]["p50"],
            "p99_ms": answer["latency_ms"]["p99"],
            "failed": answer["non_2xx"] + sum(answer["errors"].values()),
        }
    return results


def mlflow_model(args: argparse.Namespace, store: Path) -> dict[str, Any]:
    python = str(competitor_python(args.anchors, "mlflow"))
    script = str(COMPETITORS / "mlflow_model.py")
    command = [python, script, str(args.inputs / "data.csv"), str(store), "--model", args.model]
    return run_json(command, env=ENV)


def mlflow_pass(args: argparse.Namespace, model: dict[str, Any], work: Path) -> dict[str, Any]:
    bin_dir = competitor_python(args.anchors, "mlflow").parent
    # `mlflow models serve` starts `uvicorn` by name: its venv goes first on PATH.
    env = {**ENV, "PATH": f"{bin_dir}{os.pathsep}{ENV.get('PATH', '')}"}
    env |= {"MLFLOW_TRACKING_URI": model["tracking_uri"], "MLFLOW_DISABLE_TELEMETRY": "true"}
    port = _free_port()
    command = [str(bin_dir / "mlflow"), "models", "serve", "-m", model["model_uri"]]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    base = f"http://127.0.0.1:{port}"
    with server(command, env, f"{base}/ping", work / "mlflow-serve.log"):
        return load(args, base, MLFLOW)


MODELS = {
    "hist-gradient-boosting": (
        "from sklearn.ensemble import HistGradientBoostingClassifier",
        "HistGradientBoostingClassifier(random_state=0)",
    ),
    "xgboost": (
        "from xgboost import XGBClassifier",
        "XGBClassifier(n_estimators=100, max_depth=4, random_state=0)",
    ),
}
"""--model: its import, and the estimator as both tools build it."""


def register_loopml(model: str, data_csv: Path, home: Path, rows_body: Path) -> float:
    """Register the model as `cancer@champion`; returns the model's own call on the 1,000 rows
    (milliseconds, the median of 50 calls on a data frame, one thread): the floor under any
    server's answer to that request."""
    imported, built = MODELS[model]
    script = textwrap.dedent(f"""
        import json, time
        import numpy as np
        import pandas as pd
        {imported}
        from loopml.bootstrap import open_workspace
        data = pd.read_csv({str(data_csv)!r})
        train = data[data["split"] == "train"]
        x = train.drop(columns=["target", "split"])
        model = {built}.fit(x, train["target"])
        ws = open_workspace()
        version = ws.registry.register(model, "cancer", project="default", input_example=x.head(5))
        ws.registry.set_alias("cancer", "champion", version.version, project="default")
        ws.close()
        rows = json.load(open({str(rows_body)!r}))["rows"]
        matrix = pd.DataFrame(rows)[list(x.columns)]
        took = []
        for _ in range(50):
            started = time.perf_counter()
            model.predict(matrix)
            took.append(time.perf_counter() - started)
        print(json.dumps({{"predict_ms": sorted(took)[25] * 1000}}))
    """)
    env = {**ENV, "LOOPML_HOME": str(home)}
    done = subprocess.run([sys.executable, "-c", script], env=env, check=True,
                          capture_output=True, text=True)  # fmt: skip
    return float(json.loads(done.stdout.strip().splitlines()[-1])["predict_ms"])


def loopml_pass(args: argparse.Namespace, home: Path, work: Path) -> dict[str, Any]:
    env = {**ENV, "LOOPML_HOME": str(home)}
    results: dict[str, Any] = {}
    for extra, scenarios in (([], LOOPML), (["--no-log"], NO_LOG)):
        port = _free_port()
        command = [sys.executable, "-m", "loopml", "serve", "cancer@champion"]
        command += ["--port", str(port), *extra]
        base = f"http://127.0.0.1:{port}"
        with server(command, env, f"{base}/health", work / "loopml-serve.log"):
            results |= load(args, base, scenarios)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with server([sys.executable, "-c", _BARE, str(port)], ENV, base, work / "bare.log"):
        results |= load(args, base, BARE)
    return results


def checks(ours: dict[str, Any], theirs: dict[str, Any] | None) -> dict[str, float]:
    """Ratios of medians: the cost of logging, the share of the bare ceiling, and vs MLflow."""

    def rps(side: dict[str, Any], name: str) -> float:
        return float(side[name]["rps"]["median"])

    found = {
        "logging_cost": 1 - rps(ours, "1row_c16") / rps(ours, "1row_c16_no_log"),
        "share_of_bare_ceiling_c16": rps(ours, "1row_c16") / rps(ours, "bare_1row_c16"),
        "share_of_bare_ceiling_c64": rps(ours, "1row_c64") / rps(ours, "bare_1row_c64"),
    }
    if theirs is not None:
        for name in ("1row_c1", "1row_c16", "1000rows_c1"):
            found[f"times_mlflow_rps_{name}"] = rps(ours, name) / rps(theirs, name)
        for concurrency in (1, 4):  # the same split body to both
            name = f"1000rows_split_c{concurrency}"
            found[f"times_mlflow_rps_{name}"] = rps(ours, name) / rps(
                theirs, f"1000rows_c{concurrency}"
            )
    return {k: round(v, 3) for k, v in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured per scenario")
    parser.add_argument("--warmup", type=float, default=2.0, help="not counted, per scenario")
    parser.add_argument("--model", choices=list(MODELS), default="hist-gradient-boosting")
    parser.add_argument("--skip-mlflow", action="store_true")
    add_run_options(parser)
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.warmup, args.runs = 1.0, 0.5, 1
    competitor_python(args.anchors, "loadgen")  # needed by both sides: fail early
    tools = {"loopml": loopml_version()}
    libraries = ["scikit-learn", "xgboost", "uvicorn"]
    tools |= {f"loopml venv {n}": version(n) for n in [*libraries, "starlette"]}
    tools |= installed_versions(args.anchors, "loadgen", ["aiohttp"])
    if not args.skip_mlflow:
        found = installed_versions(args.anchors, "mlflow", ["mlflow", *libraries])
        tools |= {"mlflow": found.pop("mlflow", "?")}
        tools |= {f"mlflow venv {n}": v for n, v in found.items()}
    result: dict[str, Any] = {"benchmark": "serving", "machine": machine(tools)}
    result["settings"] = {"seconds": args.seconds, "warmup": args.warmup, "runs": args.runs,
                          "model": args.model}  # fmt: skip
    result["settings"]["OMP_NUM_THREADS"] = "1"
    with tempfile.TemporaryDirectory(prefix="loopml-serving-") as tmp:
        work = Path(tmp)
        args.inputs = work
        write_inputs(work)
        predict_ms = register_loopml(
            args.model, work / "data.csv", work / "loopml-home", work / "1000rows_rows.json"
        )
        result["settings"]["model_call_1000_rows_ms"] = round(predict_ms, 2)
        model = None if args.skip_mlflow else mlflow_model(args, work / "mlflow-store")
        ours, theirs = [], []
        for _ in range(args.runs):
            if model is not None:
                theirs.append(mlflow_pass(args, model, work))
            ours.append(loopml_pass(args, work / "loopml-home", work))
    result["loopml"] = {name: summarise([p[name] for p in ours]) for name in ours[0]}
    if theirs:
        result["mlflow"] = {name: summarise([p[name] for p in theirs]) for name in theirs[0]}
        result["mlflow_model"] = model
    result["checks"] = checks(result["loopml"], result.get("mlflow"))
    emit(result, args.out)


if __name__ == "__main__":
    main()
