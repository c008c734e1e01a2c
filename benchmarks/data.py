"""Adding a large file as a dataset version, loopml beside DVC, on the same file in one invocation.

    python benchmarks/data.py [--size-gib 1] [--runs 3] [--quick] [--anchors .anchors]
                              [--skip-dvc] [--out results/data.json]

Writes one random file of --size-gib GiB, then measures wall-clock seconds of adding it to a fresh
store (first time) and adding it again unchanged, two ways for each tool:
  api: in one Python process, timed inside it (no interpreter start-up):
       loopml `workspace.data.add(FILE)`; DVC `dvc.repo.Repo(DIR).add(FILE)`
  cli: the command a user types, interpreter start-up and imports included:
       `loopml data add FILE`; `dvc add FILE` (in a `dvc init --no-scm` repository)
Each figure is given as min/median/max of --runs fresh tries on the same file (warm in the page
cache for both tools), the four ways taking turns within each try. DVC runs from .anchors/dvc, which
`bash benchmarks/competitors/setup.sh` creates with the DVC version pinned in
competitors/requirements/dvc.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
    median_of,
    seconds,
    spread,
    times,
)

CHUNK = 64 * 1024 * 1024


def _write_file(path: Path, size: int) -> None:
    block = os.urandom(min(size, CHUNK))
    with path.open("wb") as out:
        for start in range(0, size, CHUNK):
            chunk = block[: min(CHUNK, size - start)]
            out.write(chunk[:-8] + os.urandom(8))  # distinct chunks, cheaply


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL, env=env)


def _loopml_cli(data: Path, work: Path) -> tuple[float, float]:
    env = {**os.environ, "LOOPML_HOME": str(work / ".loopml")}
    for name in ("LOOPML_DB_URL", "LOOPML_ARTIFACTS", "LOOPML_CACHE_DIR"):
        env.pop(name, None)
    command = [sys.executable, "-m", "loopml", "data", "add", str(data), "--name", "big"]
    first = seconds(lambda: _run(command, work, env))
    again = seconds(lambda: _run(command, work, env))
    return first, again


def _loopml_api(data: Path, work: Path) -> tuple[float, float]:
    from loopml.bootstrap import open_workspace
    from loopml.settings import Settings

    home = work / ".loopml"
    ws = open_workspace(
        Settings(
            home=home,
            db_url=f"sqlite:///{home / 'loopml.db'}",
            artifacts_url=str(home / "artifacts"),
            cache_dir=home / "cache",
            actor="bench",
        )
    )
    first = seconds(lambda: ws.data.add(data, name="big", project="default"))
    again = seconds(lambda: ws.data.add(data, name="big", project="default"))
    ws.close()
    return first, again


_DVC_API = """
import json, sys, time
from dvc.repo import Repo
repo = Repo(sys.argv[1])
t0 = time.perf_counter(); repo.add(sys.argv[2]); first = time.perf_counter() - t0
t0 = time.perf_counter(); repo.add(sys.argv[2]); again = time.perf_counter() - t0
print(json.dumps([first, again]))
"""


def _dvc_prepare(dvc: Path, data: Path, work: Path) -> tuple[Path, dict[str, str]]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    _run([str(dvc), "init", "--no-scm", "-q"], work, env)
    target = work / data.name
    os.link(data, target)  # DVC adds files inside its repository; a hard link costs nothing
    return target, env


def _dvc_cli(dvc: Path, data: Path, work: Path) -> tuple[float, float]:
    target, env = _dvc_prepare(dvc, data, work)
    command = [str(dvc), "add", "-q", target.name]
    first = seconds(lambda: _run(command, work, env))
    again = seconds(lambda: _run(command, work, env))
    return first, again


def _dvc_api(dvc: Path, data: Path, work: Path) -> tuple[float, float]:
    target, env = _dvc_prepare(dvc, data, work)
    python = dvc.with_name("python")
    done = subprocess.run(
        [str(python), "-c", _DVC_API, str(work), str(target)],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    first, again = json.loads(done.stdout.strip().splitlines()[-1])
    return float(first), float(again)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-gib", type=float, default=1.0)
    parser.add_argument("--skip-dvc", action="store_true")
    add_run_options(parser)
    args = parser.parse_args()
    if args.quick:
        args.size_gib, args.runs = 1 / 64, 1
    dvc = None if args.skip_dvc else competitor_python(args.anchors, "dvc").with_name("dvc")
    tools = {"loopml": loopml_version()}
    if dvc is not None:
        tools |= installed_versions(args.anchors, "dvc", ["dvc", "dvc-data"])
    size = int(args.size_gib * (1 << 30))
    result: dict[str, Any] = {"benchmark": "data", "machine": machine(tools)}
    result["settings"] = {"bytes": size, "runs": args.runs}
    with tempfile.TemporaryDirectory(prefix="loopml-data-bench-", dir=".") as tmp:
        root = Path(tmp).absolute()
        data = root / "big.bin"
        _write_file(data, size)
        ways = {
            ("loopml", "api"): lambda w: _loopml_api(data, w),
            ("loopml", "cli"): lambda w: _loopml_cli(data, w),
        }
        if dvc is not None:
            ways[("dvc", "api")] = lambda w: _dvc_api(dvc, data, w)
            ways[("dvc", "cli")] = lambda w: _dvc_cli(dvc, data, w)
        tries: dict[tuple[str, str], list[tuple[float, float]]] = {k: [] for k in ways}
        for attempt in range(args.runs):
            for (tool, way), measure in ways.items():
                work = root / f"{tool}-{way}-{attempt}"
                work.mkdir()
                tries[(tool, way)].append(measure(work))
                shutil.rmtree(work)
    for (tool, way), pairs in tries.items():
        result.setdefault(tool, {})[way] = {
            "add_s": spread(p[0] for p in pairs),
            "readd_unchanged_s": spread(p[1] for p in pairs),
            "add_gb_per_s": spread(size / p[0] / 1e9 for p in pairs),
        }
    if "dvc" in result:
        result["times_faster_than_dvc"] = {
            f"{way}_{what}": times(
                median_of(result["dvc"][way], f"{what}_s"),
                median_of(result["loopml"][way], f"{what}_s"),
            )
            for way in ("api", "cli")
            for what in ("add", "readd_unchanged")
        }
    emit(result, args.out)


if __name__ == "__main__":
    main()
