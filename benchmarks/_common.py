"""Helpers shared by the benchmarks: timing, competitor environments, JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ANCHORS_SCRIPTS = ROOT.parent / "shared" / "anchors"


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_seconds(fn: Callable[[], object], calls: int) -> float:
    return statistics.median(seconds(fn) for _ in range(calls))


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def anchor_python(anchors: Path, venv: str) -> Path:
    """The interpreter of a competitor's environment, or exit with how to create it."""
    python = anchors / venv / "bin" / "python"
    if not python.exists():
        sys.exit(
            f"{python} is missing. Create the competitor environments first: "
            f"bash {ANCHORS_SCRIPTS / 'setup.sh'} {anchors}"
        )
    return python


def run_json(args: list[str], **kwargs: Any) -> dict[str, Any]:
    """Run a command that prints JSON as its last output and return it."""
    done = subprocess.run(args, capture_output=True, text=True, check=True, **kwargs)
    text = done.stdout
    return json.loads(text[text.index("{") :])


def rounded(values: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in values.items()}


def emit(result: dict[str, Any], out: Path | None) -> None:
    text = json.dumps(result, indent=2)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
