"""Helpers shared by the benchmarks: repeated timing with its spread, the competitors' environments,
the machine's state, and JSON output.

Every benchmark measures loopml and its competitor on the same data in the same invocation, each
measurement `--runs` times (3 unless `--quick`), and prints one JSON document whose `machine` part
says what it ran on: Python, CPUs, the load average before and after, the tools' versions, the date.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
COMPETITORS = Path(__file__).resolve().parent / "competitors"
SETUP = "bash benchmarks/competitors/setup.sh"
DEFAULT_ANCHORS = ROOT / ".anchors"


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_seconds(fn: Callable[[], object], calls: int) -> float:
    return statistics.median(seconds(fn) for _ in range(calls))


def spread(values: Iterable[float]) -> dict[str, Any]:
    """min, median and max of repeated measurements, and each one in the order measured."""
    found = [float(v) for v in values]
    return {
        "min": min(found),
        "median": statistics.median(found),
        "max": max(found),
        "each": found,
    }


def summarise(passes: list[Mapping[str, Any]]) -> dict[str, Any]:
    """One dict out of several passes of the same measurement: a number becomes its spread (an
    integer that every pass agrees on stays as it is); any other value is kept once if every pass
    agrees, else listed per pass."""
    summary: dict[str, Any] = {}
    for key in passes[0]:
        values = [p[key] for p in passes if key in p]
        if all(isinstance(v, int) and v == values[0] for v in values):
            summary[key] = values[0]  # a count that every pass agrees on
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            summary[key] = spread(values)
        elif all(v == values[0] for v in values):
            summary[key] = values[0]
        else:
            summary[key] = {"each": values}
    return summary


def median_of(summary: Mapping[str, Any], key: str) -> float | None:
    """The median of a summarised measurement, or None when it was not measured."""
    value = summary.get(key)
    return float(value["median"]) if isinstance(value, dict) and "median" in value else None


def times(theirs: float | None, ours: float | None) -> float | None:
    """How many times loopml's figure beats theirs (both are durations), from the medians."""
    if theirs is None or ours is None or ours <= 0:
        return None
    return round(theirs / ours, 2)


def make_runs(count: int, seed: int, prefix: str) -> list[dict[str, Any]]:
    """`count` runs to search, the same for a seed, written to both tools: a name, 10 int params,
    9 metrics and `acc` (uniform in 0..1, so "metrics.acc > 0.5" finds about half), 2 tags."""
    rng = random.Random(seed)
    return [
        {
            "name": f"{prefix}{j:05d}",
            "params": {f"p{k}": rng.randint(0, 1000) for k in range(10)},
            "metrics": {**{f"m{k}": rng.random() for k in range(9)}, "acc": rng.random()},
            "tags": {"team": rng.choice("abc"), "stage": "dev"},
        }
        for j in range(count)
    ]


def add_run_options(parser: argparse.ArgumentParser, *, competitor: bool = True) -> None:
    """The options every benchmark has: --runs, --quick, --out and (with a competitor) --anchors."""
    parser.add_argument("--runs", type=int, default=3, help="passes of every measurement")
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: tiny sizes, 1 pass (figures meaningless)"
    )
    parser.add_argument("--out", type=Path, help="also write the JSON document to this file")
    if competitor:
        parser.add_argument(
            "--anchors",
            type=Path,
            default=DEFAULT_ANCHORS,
            help=f"the competitors' venvs, made by `{SETUP}` (default: .anchors/)",
        )


def competitor_python(anchors: Path, venv: str) -> Path:
    """The interpreter of a competitor's environment, or exit saying how to create it."""
    python = anchors.absolute() / venv / "bin" / "python"
    if not (python.parent.parent / "installed.txt").exists():
        sys.exit(f"{python.parent.parent} is missing or unfinished; create it with: {SETUP}")
    return python


def installed_versions(anchors: Path, venv: str, names: Iterable[str]) -> dict[str, str]:
    """The versions of `names` in a competitor venv, from the `pip freeze` setup.sh left there."""
    wanted = {n.lower().replace("_", "-") for n in names}
    found: dict[str, str] = {}
    freeze = anchors.absolute() / venv / "installed.txt"
    for line in freeze.read_text().splitlines() if freeze.exists() else []:
        name, sep, version = line.partition("==")
        if sep and name.lower().replace("_", "-") in wanted:
            found[name.lower()] = version
    return found


def loopml_version() -> str:
    return metadata.version("loopml")


def machine(tools: Mapping[str, str]) -> dict[str, Any]:
    """The state of the machine as the benchmark starts; `emit` adds the load after it."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "tools": dict(tools),
    }


def run_json(args: list[str], **kwargs: Any) -> dict[str, Any]:
    """Run a command whose last line of output is one JSON object and return that object; on
    failure, exit with the command's own error output."""
    done = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args[:3])} ... failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def rounded(value: Any) -> Any:
    """Floats to 4 significant decimals, all the way down, for a readable document."""
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return round(value, 4) if isinstance(value, float) else value


def _scalar_or_flat_list(value: Any) -> bool:
    if isinstance(value, list):
        return not any(isinstance(v, dict | list) for v in value)
    return not isinstance(value, dict)


def _fits_one_line(value: Any) -> bool:
    if not isinstance(value, dict | list):
        return True
    children = value.values() if isinstance(value, dict) else value
    return all(_scalar_or_flat_list(v) for v in children) and len(json.dumps(value)) <= 160


def dumps(value: Any, depth: int = 0) -> str:
    """JSON indented by level, except that a short dict or list of plain values (lists of plain
    values included) stays on one line: a measurement's min/median/max/each reads as one line."""
    if _fits_one_line(value):
        return json.dumps(value)
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {dumps(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    items = [f"{inner}{dumps(v, depth + 1)}" for v in value]
    return "[\n" + ",\n".join(items) + f"\n{pad}]"


def emit(result: dict[str, Any], out: Path | None) -> None:
    """Print the document (and write it to `out`), with the load average after the work."""
    if isinstance(result.get("machine"), dict):
        result["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    text = dumps(rounded(result))
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")


class RssSampler:
    """The peak resident memory of another process, sampled every `interval_s` from /proc
    (Linux), from `start()` until `stop()`; `start()` takes the baseline it is compared with.
    Sampling from outside leaves the measured process alone: no thread of ours competes for its
    interpreter."""

    def __init__(self, pid: int, interval_s: float = 0.02) -> None:
        self._statm = Path(f"/proc/{pid}/statm")
        self._interval_s = interval_s
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.baseline = 0
        self.peak = 0
        self.samples = 0

    def rss(self) -> int:
        try:
            return int(self._statm.read_text().split()[1]) * self._page
        except (OSError, IndexError, ValueError):
            return 0  # the process has exited

    def start(self) -> None:
        self.baseline = self.peak = self.rss()
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self.rss())
            self.samples += 1
            self._done.wait(self._interval_s)

    def stop(self) -> float:
        """Stop sampling; the peak above the baseline, in MB (10^6 bytes)."""
        self.peak = max(self.peak, self.rss())
        self._done.set()
        self._thread.join()
        return (self.peak - self.baseline) / 1e6
