"""Model serving, loopml beside `mlflow models serve`, in one invocation.

    python benchmarks/serving.py [--seconds 10] [--anchors .anchors] [--skip-mlflow] [--out F]

The model: scikit-learn's HistGradientBoostingClassifier (random_state=0) on the bundled
breast_cancer data, exactly as ../shared/anchors/mlflow_serve.sh trains it (that script runs
first, measures MLflow and writes the data and request bodies). Both servers get
OMP_NUM_THREADS=1 and one process; the load generator (anchors/loadgen.py, keep-alive, closed
loop) shares the 2 CPUs with the server, as the anchors' README says.

loopml scenarios (POST /predict, `{"rows": [...]}` bodies): 1 row at concurrency 1, 16 and 64;
1,000 rows at concurrency 1; 1 row at concurrency 16 with prediction logging off (the cost of
logging); and a bare endpoint on the same uvicorn/Starlette stack that parses the body and
returns a constant (the ceiling), at concurrency 16 and 64.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from _common import ANCHORS_SCRIPTS, emit, machine  # the script's folder is on sys.path

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

_BARE = """
import orjson, uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

async def predict(request):
    orjson.loads(await request.body())
    return Response(b'{{"predictions":[1]}}', media_type="application/json")

uvicorn.run(Starlette(routes=[Route("/predict", predict, methods=["POST"])]), host="127.0.0.1",
            port={port}, log_level="warning", access_log=False)
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit("the server did not start")


def _load(
    anchors: Path, url: str, body: Path, concurrency: int, seconds: int, *, label: str
) -> dict[str, Any]:
    done = subprocess.run(
        [
            str(anchors / "loadgen" / "bin" / "python"),
            str(ANCHORS_SCRIPTS / "loadgen.py"),
            url,
            str(body),
            "-c",
            str(concurrency),
            "-d",
            str(seconds),
            "--label",
            label,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "rps": result["rps"],
        "p50_ms": result["latency_ms"]["p50"],
        "p99_ms": result["latency_ms"]["p99"],
        "non_2xx": result["non_2xx"],
        "exceptions": result["exceptions"],
    }


def _register_model(home: Path, data_csv: Path) -> None:
    script = textwrap.dedent(f"""
        import pandas as pd
        from sklearn.ensemble import HistGradientBoostingClassifier
        from loopml.bootstrap import open_workspace
        data = pd.read_csv({str(data_csv)!r})
        train = data[data["split"] == "train"]
        x = train.drop(columns=["target", "split"])
        model = HistGradientBoostingClassifier(random_state=0).fit(x, train["target"])
        ws = open_workspace()
        version = ws.registry.register(model, "cancer", project="default",
                                       input_example=x.head(5))
        ws.registry.set_alias("cancer", "champion", version.version, project="default")
        ws.close()
    """)
    subprocess.run(
        [sys.executable, "-c", script], env={**ENV, "LOOPML_HOME": str(home)}, check=True
    )


def _serve(home: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "loopml", "serve", "cancer@champion", "--port", str(port), *extra],
        env={**ENV, "LOOPML_HOME": str(home)},
        stderr=subprocess.DEVNULL,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure_loopml(args: argparse.Namespace, bodies: Path) -> dict[str, Any]:
    one, thousand = bodies / "body_1row_rows.json", bodies / "body_1000rows_rows.json"
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="loopml-serving-") as tmp:
        home = Path(tmp) / ".loopml"
        _register_model(home, bodies / "data.csv")
        for logging_on in (True, False):
            port = _free_port()
            proc = _serve(home, port, *([] if logging_on else ["--no-log"]))
            try:
                _wait(port, proc)
                url = f"http://127.0.0.1:{port}/predict"
                if logging_on:
                    for c in (1, 16, 64):
                        results[f"1row_c{c}"] = _load(
                            args.anchors, url, one, c, args.seconds, label=f"loopml_1row_c{c}"
                        )
                    results["1000rows_c1"] = _load(
                        args.anchors, url, thousand, 1, args.seconds, label="loopml_1000rows_c1"
                    )
                else:
                    results["1row_c16_no_log"] = _load(
                        args.anchors, url, one, 16, args.seconds, label="loopml_1row_c16_no_log"
                    )
            finally:
                _stop(proc)
        port = _free_port()
        bare = subprocess.Popen([sys.executable, "-c", _BARE.format(port=port)], env=ENV)
        try:
            _wait(port, bare)
            for c in (16, 64):
                results[f"bare_1row_c{c}"] = _load(
                    args.anchors,
                    f"http://127.0.0.1:{port}/predict",
                    one,
                    c,
                    args.seconds,
                    label=f"bare_1row_c{c}",
                )
        finally:
            _stop(bare)
    return results


def measure_mlflow(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    subprocess.run(
        [
            "bash",
            str(ANCHORS_SCRIPTS / "mlflow_serve.sh"),
            "--seconds",
            str(args.seconds),
            "--venvs",
            str(args.anchors),
            "--out",
            str(out),
        ],
        env=ENV,
        check=True,
        capture_output=True,
    )
    results: dict[str, Any] = {}
    for line in (out / "results.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "rps" in row:
            results[row["label"].removeprefix("mlflow_")] = {
                "rps": row["rps"],
                "p50_ms": row["latency_ms"]["p50"],
                "p99_ms": row["latency_ms"]["p99"],
                "non_2xx": row["non_2xx"],
            }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--anchors", type=Path, default=Path(".anchors"))
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.anchors = args.anchors.absolute()
    bodies = args.anchors / "results" / "mlflow_serve"
    result: dict[str, Any] = {"machine": machine(), "OMP_NUM_THREADS": "1"}
    if not args.skip_mlflow:
        result["mlflow"] = measure_mlflow(args, bodies)
    if not (bodies / "body_1row_rows.json").exists():
        sys.exit(f"{bodies} has no request bodies: run without --skip-mlflow once")
    ours = measure_loopml(args, bodies)
    result["loopml"] = ours
    checks = {
        "logging_cost": 1 - ours["1row_c16"]["rps"] / ours["1row_c16_no_log"]["rps"],
        "share_of_bare_ceiling_c16": ours["1row_c16"]["rps"] / ours["bare_1row_c16"]["rps"],
        "share_of_bare_ceiling_c64": ours["1row_c64"]["rps"] / ours["bare_1row_c64"]["rps"],
    }
    if "mlflow" in result and "1row_c16" in result["mlflow"]:
        checks["times_mlflow_rps_c16"] = (
            ours["1row_c16"]["rps"] / result["mlflow"]["1row_c16"]["rps"]
        )
    result["checks"] = {k: round(v, 3) for k, v in checks.items()}
    emit(result, args.out)


if __name__ == "__main__":
    main()
