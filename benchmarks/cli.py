"""How fast the command line answers, loopml beside DVC and MLflow, on a small workspace.

    python benchmarks/cli.py [--calls 7] [--runs 3] [--quick] [--baseline REV]
                             [--anchors .anchors] [--out results/cli.json]

Each figure is the wall-clock seconds of one command as a user types it (interpreter start-up and
imports included), the median of --calls calls, given as min/median/max over --runs passes. The
commands run in a fresh workspace holding one small dataset version and one run (loopml), a
`dvc init --no-scm` repository tracking the same file (DVC) and a SQLite MLflow store with one
run (MLflow):

  help         loopml --help            dvc --help               mlflow --help
  list         loopml data list         dvc data status          mlflow experiments search
  runs         loopml runs list                                  mlflow runs list
  add_again    loopml data add F        dvc add F                (the file is unchanged)

With --baseline REV, loopml at that git revision (checked out into a temporary worktree with its
own virtual environment under .anchors/) runs the same loopml commands in the same pass: the
figures before and after a change, on one machine in one invocation.

Python writes bytecode caches as usual (PYTHONDONTWRITEBYTECODE is cleared for the commands), so
a figure is what a user sees from the second call on.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import (  # the script's folder is on sys.path
    ROOT,
    add_run_options,
    competitor_python,
    emit,
    installed_versions,
    loopml_version,
    machine,
    median_of,
    seconds,
    summarise,
    times,
)

LOOPML = {
    "help": ["--help"],
    "list": ["data", "list"],
    "runs": ["runs", "list"],
    "add_again": ["data", "add", "data.csv", "--name", "churn"],
}
DVC = {"help": ["--help"], "list": ["data", "status"], "add_again": ["add", "data.csv"]}
MLFLOW = {
    "help": ["--help"],
    "list": ["experiments", "search"],
    "runs": ["runs", "list", "--experiment-id", "0"],
}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPML_", "MLFLOW_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return {**env, **extra}


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")


def _median_call(command: list[str], cwd: Path, env: dict[str, str], calls: int) -> float:
    _run(command, cwd, env)  # the first call writes bytecode caches
    return statistics.median(seconds(lambda: _run(command, cwd, env)) for _ in range(calls))


def _loopml_folder(loopml: Path, folder: Path) -> None:
    folder.mkdir()
    (folder / "data.csv").write_text(
        "tenure,churn\n" + "".join(f"{i},{i % 2}\n" for i in range(200))
    )
    env = _env()
    _run([str(loopml), "data", "add", "data.csv", "--name", "churn"], folder, env)
    python = loopml.parent / "python"
    code = (
        "import loopml\nwith loopml.start_run(name='one') as run:\n    run.log_metric('acc', 0.9)\n"
    )
    _run([str(python), "-c", code], folder, env)


def _dvc_folder(dvc: Path, folder: Path) -> None:
    folder.mkdir()
    shutil.copy(folder.parent / "loopml" / "data.csv", folder / "data.csv")
    _run([str(dvc), "init", "--no-scm"], folder, _env())
    _run([str(dvc), "add", "data.csv"], folder, _env())


def _mlflow_folder(python: Path, folder: Path) -> dict[str, str]:
    folder.mkdir()
    env = _env(MLFLOW_TRACKING_URI=f"sqlite:///{folder / 'mlflow.db'}")
    code = "import mlflow\nwith mlflow.start_run():\n    mlflow.log_metric('acc', 0.9)\n"
    _run([str(python), "-c", code], folder, env)
    return env


def _baseline(revision: str, anchors: Path) -> Path:
    """The `loopml` command of `revision`, in a worktree with a venv of its own (made once)."""
    name = subprocess.run(
        ["git", "rev-parse", "--short", revision], cwd=ROOT, capture_output=True, text=True,
        check=True,
    ).stdout.strip()  # fmt: skip
    home = anchors.absolute() / f"loopml-{name}"
    command = home / "venv" / "bin" / "loopml"
    if command.exists():
        return command
    if not (home / "tree").exists():
        home.mkdir(parents=True, exist_ok=True)
        _run(["git", "worktree", "add", "--detach", str(home / "tree"), name], ROOT, _env())
    _run([sys.executable, "-m", "venv", str(home / "venv")], home, _env())
    pip = [str(home / "venv" / "bin" / "pip"), "install", "--quiet", "-e", str(home / "tree")]
    _run(pip, home, _env())
    return command


def _pass(tools: dict[str, tuple[list[str], dict[str, list[str]], Path, dict[str, str]]],
          calls: int) -> dict[str, float]:  # fmt: skip
    figures: dict[str, float] = {}
    for tool, (command, commands, cwd, env) in tools.items():
        for what, args in commands.items():
            figures[f"{tool}_{what}_s"] = _median_call([*command, *args], cwd, env, calls)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=7, help="calls per figure (median)")
    parser.add_argument("--baseline", help="also time loopml at this git revision")
    add_run_options(parser)
    args = parser.parse_args()
    runs, calls = (1, 2) if args.quick else (args.runs, args.calls)
    loopml = Path(sys.executable).parent / "loopml"
    dvc = competitor_python(args.anchors, "dvc").parent / "dvc"
    mlflow_python = competitor_python(args.anchors, "mlflow")
    with tempfile.TemporaryDirectory(prefix="loopml-bench-cli-") as tmp:
        root = Path(tmp)
        _loopml_folder(loopml, root / "loopml")
        _dvc_folder(dvc, root / "dvc")
        mlflow_env = _mlflow_folder(mlflow_python, root / "mlflow")
        tools: dict[str, Any] = {
            "loopml": ([str(loopml)], LOOPML, root / "loopml", _env()),
            "dvc": ([str(dvc)], DVC, root / "dvc", _env()),
            "mlflow": ([str(mlflow_python.parent / "mlflow")], MLFLOW, root / "mlflow", mlflow_env),
        }
        if args.baseline:
            before = _baseline(args.baseline, args.anchors)
            _loopml_folder(before, root / "before")
            tools["before"] = ([str(before)], LOOPML, root / "before", _env())
        versions = {
            "loopml": loopml_version(),
            **installed_versions(args.anchors, "dvc", ["dvc"]),
            **installed_versions(args.anchors, "mlflow", ["mlflow"]),
        }
        if args.baseline:
            versions["before"] = args.baseline
        result: dict[str, Any] = {"benchmark": "cli", "machine": machine(versions)}
        passes = [_pass(tools, calls) for _ in range(runs)]
    summary = summarise(passes)
    result["figures"] = summary
    result["ratios"] = {
        f"{what}_vs_{other}": times(
            median_of(summary, f"{other}_{what}_s"), median_of(summary, f"loopml_{what}_s")
        )
        for other in ("dvc", "mlflow", "before")
        for what in LOOPML
        if f"{other}_{what}_s" in summary
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
