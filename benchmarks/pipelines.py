"""Pipeline overhead and parallel speed-up, measured by hand.

    python benchmarks/pipelines.py [--steps 50] [--trials 8] [--work-s 1.5] [--runs 3] [--quick]
                                   [--skip-sweep] [--out F.json]

  step_overhead_ms         a chain of --steps no-op steps run uncached, per step (wall clock)
  cached_step_overhead_ms  the same chain again, every step a cache hit, per step
  sweep_<executor>_s       --trials CPU-bound trials (each ~--work-s of single-core numpy work)
                           as one sweep on local, processes and ray (ray: starting and stopping
                           a local Ray included); speed-up = local / executor
  sweep_ray_running_s      the same on a Ray that is already running (after a warm-up sweep)
Everything runs on a fresh SQLite workspace in a temporary folder; each pass (--runs of them)
on new ones, and each figure is given as min/median/max over the passes. There is no competitor.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from _common import (  # the script's folder is on sys.path
    add_run_options,
    emit,
    loopml_version,
    machine,
    seconds,
    summarise,
)

from loopml.adapters.executors.factory import make_executor
from loopml.bootstrap import Workspace, open_workspace
from loopml.pipelines import run_pipeline, sweep_pipeline
from loopml.settings import Settings
from loopml.steps import load_pipeline

_CHAIN = """
from loopml import pipeline, step

@step
def noop(x: int) -> int:
    return x + 1

@pipeline
def chain(n: int = {steps}):
    value = noop(0)
    for _ in range(n - 1):
        value = noop(value)
    return value
"""

_WORK = """
import time
import numpy as np
from loopml import pipeline, step

@step
def work(seed: int, seconds: float = {work_s}) -> dict:
    rng = np.random.default_rng(seed)
    total, deadline = 0.0, time.process_time() + seconds
    while time.process_time() < deadline:
        a, b = rng.standard_normal((64, 64)), rng.standard_normal((64, 64))
        total += float(np.linalg.norm(a @ b))
    return {{"score": total % 1.0}}

@pipeline
def trial(seed: int = 0):
    return work(seed)
"""


def _workspace(root: Path) -> Workspace:
    return open_workspace(
        Settings(
            home=root,
            db_url=f"sqlite:///{root / 'loopml.db'}",
            artifacts_url=str(root / "artifacts"),
            cache_dir=root / "cache",
            actor="bench",
        )
    )


def _pipeline(root: Path, name: str, source: str, func: str) -> Any:
    path = root / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return load_pipeline(f"{path}:{func}")


def overhead(root: Path, steps: int) -> dict[str, float]:
    ws = _workspace(root / "overhead")
    chain = _pipeline(root, "chain", _CHAIN.format(steps=steps), "chain")
    run_pipeline(chain, {"n": 2}, workspace=ws, use_cache=False)  # warm imports and the schema
    uncached = seconds(lambda: run_pipeline(chain, {}, workspace=ws))
    cached = seconds(lambda: run_pipeline(chain, {}, workspace=ws))
    ws.close()
    return {
        "step_overhead_ms": uncached / steps * 1e3,
        "cached_step_overhead_ms": cached / steps * 1e3,
    }


def sweeps(root: Path, trials: int, work_s: float) -> dict[str, float]:
    results: dict[str, float] = {}
    pipeline = _pipeline(root, "work", _WORK.format(work_s=work_s), "trial")
    params = [{"seed": i} for i in range(trials)]
    for executor in ("local", "processes", "ray"):
        ws = _workspace(root / f"sweep-{executor}")
        start = time.perf_counter()
        sweep_pipeline(pipeline, params, metric="metrics.score", executor=executor, workspace=ws)
        results[f"sweep_{executor}_s"] = time.perf_counter() - start
        ws.close()
    ray = make_executor("ray")  # a Ray that is already up, as a team's cluster would be
    warm = _workspace(root / "sweep-ray-warm-up")  # its own cache: the timed trials all run
    sweep_pipeline(pipeline, params[:2], metric="metrics.score", executor=ray, workspace=warm)
    warm.close()
    ws = _workspace(root / "sweep-ray-running")
    start = time.perf_counter()
    sweep_pipeline(pipeline, params, metric="metrics.score", executor=ray, workspace=ws)
    results["sweep_ray_running_s"] = time.perf_counter() - start
    ray.close()
    ws.close()
    for executor in ("processes", "ray", "ray_running"):
        results[f"speedup_{executor}"] = results["sweep_local_s"] / results[f"sweep_{executor}_s"]
    return results


def one_pass(args: argparse.Namespace, root: Path) -> dict[str, float]:
    root.mkdir()
    result = overhead(root, args.steps)
    if not args.skip_sweep:
        result |= sweeps(root, args.trials, args.work_s)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--work-s", type=float, default=1.5)
    parser.add_argument("--skip-sweep", action="store_true")
    add_run_options(parser, competitor=False)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.trials, args.work_s, args.runs = 5, 2, 0.05, 1
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per trial, as a fair baseline
    tools = {"loopml": loopml_version()}
    if not args.skip_sweep:
        from importlib.metadata import version

        tools["ray"] = version("ray")
    result: dict[str, Any] = {"benchmark": "pipelines", "machine": machine(tools)}
    result["settings"] = {k: getattr(args, k) for k in ("steps", "trials", "work_s", "runs")}
    with tempfile.TemporaryDirectory(prefix="loopml-pipelines-") as tmp:
        passes = [one_pass(args, Path(tmp) / f"pass-{i}") for i in range(args.runs)]
    result |= summarise(passes)
    emit(result, args.out)


if __name__ == "__main__":
    main()
