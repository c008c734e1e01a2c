"""Open Inference Protocol (V2) serving per model flavor: loopml beside MLServer, on the same
models, bytes and load in one invocation.

    python benchmarks/serving_v2.py [--flavors sklearn,xgboost,lightgbm,onnx] [--seconds 5]
                                    [--runs 3] [--quick] [--anchors .anchors] [--out F]

The models, fitted in this process on the train rows of scikit-learn's breast_cancer data (a
stratified 75/25 split, random_state=0; 30 numeric features, their names' spaces written as
underscores, two classes):
  sklearn   HistGradientBoostingClassifier(random_state=0)
  xgboost   XGBClassifier(n_estimators=100, max_depth=4, random_state=0)
  lightgbm  LGBMClassifier(n_estimators=100, num_leaves=15, random_state=0)
  onnx      the sklearn model compiled by loopml (`models compile --to onnx`, its parity
            checked on the train rows); loopml only (MLServer has no ONNX runtime): its figures
            beside the sklearn original's give the gain of serving the compiled version
loopml registers each object and serves it with `loopml serve` (prediction logging on, as
shipped); MLServer 1.7 (its sklearn, xgboost and lightgbm runtimes, `.anchors/mlserver`) loads
the same fitted model from its own file (joblib, the booster's JSON, the booster's text).

Requests: one row (the first test row) and 1,000 rows drawn with replacement (seed 0), as one
[n, 30] tensor named `input-0` (FP64; FP32 for onnx, its graph's type), the same bytes to both
servers in three encodings: V2 JSON, V2 binary (the tensor's bytes after the JSON, with
`Inference-Header-Content-Length`), and a gRPC ModelInferRequest with `raw_input_contents`
(what tritonclient sends). No outputs are named, so each server answers its default outputs
(loopml: prediction and probabilities; MLServer: its runtime's prediction).

The load: competitors/loadgen.py (.anchors/loadgen; closed loop, keep-alive HTTP connections or
one gRPC channel per client, --seconds measured after --warmup) on the same CPUs as the server:
1 row at concurrency 1 and 16, and 1,000 rows at concurrency 1, per encoding. Both servers run
as one process with OMP_NUM_THREADS=1. Each pass starts every server afresh; --runs passes.
Each pass also loads a bare grpc.aio server (`bare_grpc`: it reads each single-row request and
answers one fixed response; no model, no log) to show what the gRPC stack itself allows here.
A scenario a server does not support (every request refused) is reported with its status.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
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
    summarise,
)
from serving import _free_port, server

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
FLAVORS = ("sklearn", "xgboost", "lightgbm", "onnx")
MLSERVER_RUNTIMES = {
    "sklearn": ("mlserver_sklearn.SKLearnModel", "model.joblib"),
    "xgboost": ("mlserver_xgboost.XGBoostModel", "model.json"),
    "lightgbm": ("mlserver_lightgbm.LightGBMModel", "model.txt"),
}
LOADS = (("1row_c1", "1row", 1), ("1row_c16", "1row", 16), ("1000rows_c1", "1000rows", 1))
ENCODINGS = ("json", "binary", "grpc")
MODEL = "cancer"

_FIT = """
import json, sys
import joblib
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split

flavors, folder, MODEL = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
features, target = load_breast_cancer(return_X_y=True, as_frame=True)
features.columns = [name.replace(" ", "_") for name in features.columns]
train, test, y_train, _ = train_test_split(
    features, target, test_size=0.25, random_state=0, stratify=target)
picks = np.random.default_rng(0).integers(0, len(features), 1_000)
np.save(f"{folder}/1row.npy", test.to_numpy()[:1])
np.save(f"{folder}/1000rows.npy", features.to_numpy()[picks])
models = {}
hgb = HistGradientBoostingClassifier(random_state=0).fit(train, y_train)
if "sklearn" in flavors:
    models["sklearn"] = hgb
    joblib.dump(hgb, f"{folder}/sklearn-model.joblib")
if "xgboost" in flavors:
    from xgboost import XGBClassifier
    models["xgboost"] = XGBClassifier(n_estimators=100, max_depth=4, random_state=0).fit(
        train, y_train)
    models["xgboost"].save_model(f"{folder}/xgboost-model.json")
if "lightgbm" in flavors:
    from lightgbm import LGBMClassifier
    models["lightgbm"] = LGBMClassifier(
        n_estimators=100, num_leaves=15, random_state=0, verbose=-1).fit(train, y_train)
    models["lightgbm"].booster_.save_model(f"{folder}/lightgbm-model.txt")
if "onnx" in flavors:
    models["onnx"] = hgb  # registered, then compiled by loopml: the compiled version is served

from loopml.bootstrap import open_workspace
for flavor, model in models.items():
    ws = open_workspace()
    registered = ws.registry.register(model, MODEL, project="default", input_example=train.head())
    if flavor == "onnx":
        registered = ws.compiler.compile(registered.ref, project="default", rows=train).version
    ws.registry.set_alias(MODEL, "champion", registered.version, project="default")
    ws.close()
    json.dump({"flavor": registered.flavor}, open(f"{folder}/{flavor}-registered.json", "w"))
"""


_BARE_GRPC = """
import asyncio, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import grpc, uvloop
from loopml.serving.grpc_messages import messages

port, ready_port = int(sys.argv[1]), int(sys.argv[2])
found = messages()
answer = found["ModelInferResponse"](model_name="cancer", model_version="1")
answer.outputs.add(name="prediction", datatype="INT64", shape=[1])
answer.raw_output_contents.append(bytes(8))

async def infer(request, context):
    return answer

class Ready(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers()

async def main():
    handler = grpc.unary_unary_rpc_method_handler(
        infer, request_deserializer=found["ModelInferRequest"].FromString,
        response_serializer=found["ModelInferResponse"].SerializeToString)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "inference.GRPCInferenceService", {"ModelInfer": handler}),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    http = ThreadingHTTPServer(("127.0.0.1", ready_port), Ready)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    await server.wait_for_termination()

uvloop.install()
asyncio.run(main())
"""
"""The ceiling: a grpc.aio ModelInfer server (on uvloop, as loopml's) that reads each request
into its message and answers one fixed response, with no model and no log."""


def fit_and_register(flavors: list[str], folder: Path) -> None:
    """Fit every model, write MLServer's files and the request rows, register in loopml (one
    workspace per flavor, so each server serves only its flavor's model)."""
    for flavor in flavors:
        home = folder / f"loopml-{flavor}"
        env = {**ENV, "LOOPML_HOME": str(home)}
        command = [sys.executable, "-c", _FIT, flavor, str(folder), MODEL]
        subprocess.run(command, env=env, check=True)


def write_bodies(folder: Path, flavor: str) -> dict[str, dict[str, Path]]:
    """Each load's request in each encoding (the same tensor), and the JSON header's length
    for the binary one: {load: {encoding: file}}."""
    import numpy as np
    from tritonclient.grpc import service_pb2 as pb

    datatype, dtype = ("FP32", "<f4") if flavor == "onnx" else ("FP64", "<f8")
    bodies: dict[str, dict[str, Path]] = {}
    for rows in ("1row", "1000rows"):
        matrix = np.load(folder / f"{rows}.npy").astype(dtype)
        tensor = {"name": "input-0", "shape": list(matrix.shape), "datatype": datatype}
        files = bodies[rows] = {}
        files["json"] = folder / f"{flavor}-{rows}.json"
        json_body = {"inputs": [{**tensor, "data": matrix.reshape(-1).tolist()}]}
        files["json"].write_text(json.dumps(json_body))
        raw = matrix.tobytes()
        header = json.dumps(
            {"inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}]}
        ).encode()
        files["binary"] = folder / f"{flavor}-{rows}-{len(header)}.bin"
        files["binary"].write_bytes(header + raw)
        request = pb.ModelInferRequest(model_name=MODEL)
        request.inputs.add(**tensor)
        request.raw_input_contents.append(raw)
        files["grpc"] = folder / f"{flavor}-{rows}.grpc"
        files["grpc"].write_bytes(request.SerializeToString())
    return bodies


def load(
    args: argparse.Namespace,
    http: str,
    grpc: str,
    bodies: dict[str, dict[str, Path]],
    encodings: tuple[str, ...] = ENCODINGS,
) -> dict[str, Any]:
    """Every load in every encoding against one server: rps, latencies, failures by name."""
    python = str(competitor_python(args.anchors, "loadgen"))
    results: dict[str, Any] = {}
    for encoding in encodings:
        for name, rows, concurrency in LOADS:
            body = bodies[rows][encoding]
            command = [python, str(COMPETITORS / "loadgen.py"), "-c", str(concurrency)]
            command += ["-d", str(args.seconds), "--warmup", str(args.warmup)]
            command += ["--body", str(body), "--label", f"{encoding}_{name}"]
            if encoding == "grpc":
                command += [grpc, "--grpc", "/inference.GRPCInferenceService/ModelInfer"]
            else:
                command += [f"{http}/v2/models/{MODEL}/infer"]
            if encoding == "binary":
                length = body.stem.rsplit("-", 1)[1]
                command += ["--header", f"Inference-Header-Content-Length:{length}"]
            answer = subprocess.run(command, capture_output=True, text=True, env=ENV, check=False)
            found = json.loads(answer.stdout.strip().splitlines()[-1])
            latency = found["latency_ms"] or {}
            results[f"{encoding}_{name}"] = {
                "rps": found["rps"],
                "p50_ms": latency.get("p50"),
                "p99_ms": latency.get("p99"),
                "failed": found["non_2xx"] + sum(found["errors"].values()),
                **({"statuses": found["statuses"]} if not found["ok"] else {}),
            }
    return results


def loopml_pass(args: argparse.Namespace, folder: Path, flavor: str) -> dict[str, Any]:
    env = {**ENV, "LOOPML_HOME": str(folder / f"loopml-{flavor}")}
    port, grpc_port = _free_port(), _free_port()
    command = [sys.executable, "-m", "loopml", "serve", f"{MODEL}@champion"]
    command += ["--port", str(port), "--grpc-port", str(grpc_port)]
    base = f"http://127.0.0.1:{port}"
    with server(command, env, f"{base}/health", folder / f"loopml-{flavor}.log"):
        return load(args, base, f"127.0.0.1:{grpc_port}", write_bodies(folder, flavor))


def bare_pass(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """The bare gRPC server under the single-row gRPC loads."""
    port, ready_port = _free_port(), _free_port()
    command = [sys.executable, "-c", _BARE_GRPC, str(port), str(ready_port)]
    bodies = write_bodies(folder, "sklearn")
    with server(command, ENV, f"http://127.0.0.1:{ready_port}/", folder / "bare-grpc.log"):
        found = load(args, "", f"127.0.0.1:{port}", bodies, encodings=("grpc",))
    return {name: value for name, value in found.items() if "1row" in name}


def mlserver_pass(args: argparse.Namespace, folder: Path, flavor: str) -> dict[str, Any]:
    implementation, file_name = MLSERVER_RUNTIMES[flavor]
    models = folder / f"mlserver-{flavor}"
    (models / MODEL).mkdir(parents=True, exist_ok=True)
    (models / MODEL / file_name).write_bytes((folder / f"{flavor}-{file_name}").read_bytes())
    port, grpc_port, metrics_port = _free_port(), _free_port(), _free_port()
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "parallel_workers": 0,  # its worker pool fails to start on this machine (README)
    }
    (models / "settings.json").write_text(json.dumps(settings))
    model_settings = {"name": MODEL, "implementation": implementation,
                      "parameters": {"uri": f"./{file_name}"}}  # fmt: skip
    (models / MODEL / "model-settings.json").write_text(json.dumps(model_settings))
    command = [str(competitor_python(args.anchors, "mlserver").parent / "mlserver"), "start"]
    base = f"http://127.0.0.1:{port}"
    with server([*command, str(models)], ENV, f"{base}/v2/models/{MODEL}/ready",
                folder / f"mlserver-{flavor}.log"):  # fmt: skip
        return load(args, base, f"127.0.0.1:{grpc_port}", write_bodies(folder, flavor))


def checks(result: dict[str, Any]) -> dict[str, float]:
    """loopml's rps over MLServer's per flavor and encoding (1 row at 16: target 2x), and the
    onnx model's over its sklearn original's (1 row: target 1.5x)."""

    def rps(flavor: str, side: str, scenario: str) -> float | None:
        return _rps(result, flavor, side, scenario)

    found: dict[str, float] = {}
    for flavor in MLSERVER_RUNTIMES:
        for encoding in ENCODINGS:
            for scenario in (f"{encoding}_{name}" for name, _, _ in LOADS):
                ours, theirs = rps(flavor, "loopml", scenario), rps(flavor, "mlserver", scenario)
                if ours and theirs:
                    found[f"{flavor}_times_mlserver_{scenario}"] = round(ours / theirs, 3)
    for encoding in ENCODINGS:
        for concurrency in (1, 16):
            scenario = f"{encoding}_1row_c{concurrency}"
            onnx, original = rps("onnx", "loopml", scenario), rps("sklearn", "loopml", scenario)
            if onnx and original:
                found[f"onnx_times_sklearn_{scenario}"] = round(onnx / original, 3)
    return found | _shares_of_bare(result)


def _rps(result: dict[str, Any], flavor: str, side: str, scenario: str) -> float | None:
    found = result.get(flavor, {}).get(side, {}).get(scenario)
    value = (found or {}).get("rps")
    value = value["median"] if isinstance(value, dict) else value
    return float(value) if value else None


def _shares_of_bare(result: dict[str, Any]) -> dict[str, float]:
    """loopml's gRPC rps at concurrency 16 over the bare gRPC server's, per flavor."""
    ceiling = (result.get("bare_grpc", {}).get("grpc_1row_c16") or {}).get("rps")
    found: dict[str, float] = {}
    for flavor in FLAVORS:
        ours = _rps(result, flavor, "loopml", "grpc_1row_c16")
        if ours and ceiling:
            found[f"{flavor}_share_of_bare_grpc_c16"] = round(ours / ceiling["median"], 3)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--flavors", default=",".join(FLAVORS), help="comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured per scenario")
    parser.add_argument("--warmup", type=float, default=1.5, help="not counted, per scenario")
    add_run_options(parser)
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.warmup, args.runs = 1.0, 0.5, 1
    flavors = [name for name in args.flavors.split(",") if name]
    unknown = sorted(set(flavors) - set(FLAVORS))
    if unknown:
        sys.exit(f"unknown flavors {unknown}; choose from {', '.join(FLAVORS)}")
    competitor_python(args.anchors, "loadgen")
    competitor_python(args.anchors, "mlserver")
    tools = {"loopml": loopml_version()}
    tools |= {f"loopml venv {n}": version(n) for n in ("scikit-learn", "xgboost", "lightgbm",
                                                        "onnxruntime", "grpcio")}  # fmt: skip
    tools |= installed_versions(args.anchors, "loadgen", ["aiohttp", "grpcio"])
    found = installed_versions(args.anchors, "mlserver", ["mlserver", "scikit-learn", "xgboost",
                                                          "lightgbm"])  # fmt: skip
    tools |= {"mlserver": found.pop("mlserver", "?")}
    tools |= {f"mlserver venv {n}": v for n, v in found.items()}
    result: dict[str, Any] = {"benchmark": "serving_v2", "machine": machine(tools)}
    result["settings"] = {"seconds": args.seconds, "warmup": args.warmup, "runs": args.runs,
                          "OMP_NUM_THREADS": "1", "flavors": flavors}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="loopml-serving-v2-") as tmp:
        folder = Path(tmp)
        fit_and_register(flavors, folder)
        passes: dict[str, dict[str, list[dict[str, Any]]]] = {f: {} for f in flavors}
        bare: list[dict[str, Any]] = []
        for _ in range(args.runs):
            bare.append(bare_pass(args, folder))
            for flavor in flavors:
                sides = passes[flavor]
                if flavor in MLSERVER_RUNTIMES:
                    sides.setdefault("mlserver", []).append(mlserver_pass(args, folder, flavor))
                sides.setdefault("loopml", []).append(loopml_pass(args, folder, flavor))
        for flavor, sides in passes.items():
            registered = json.loads((folder / f"{flavor}-registered.json").read_text())
            result[flavor] = {"loopml_flavor": registered["flavor"]}
            for side, runs in sides.items():
                result[flavor][side] = {
                    name: summarise([r[name] for r in runs]) for name in runs[0]
                }
        result["bare_grpc"] = {name: summarise([r[name] for r in bare]) for name in bare[0]}
    result["checks"] = checks(result)
    emit(result, args.out)


if __name__ == "__main__":
    main()
