"""Drift detection, loopml beside Evidently's DataDriftPreset, on the same frames in one invocation.

    python benchmarks/monitoring.py [--rows 100000 1000000] [--runs 3] [--quick]
                                    [--anchors .anchors] [--skip-evidently] [--out F]

The data: benchmarks/competitors/drift_data.py, generated once per size and given to both tools
(20 numeric and 5 categorical columns); in the current frame only, num_00, num_03, num_08,
num_11 and num_15 move by 0.1 standard deviations, cat_1 moves 20% of its mass onto its rare
labels, and 5% of cat_3's rows get a label the reference lacks.

Each pass runs each tool in a fresh process of its own (loopml: this venv, `loopml.monitoring
.compare`; Evidently: competitors/evidently_drift.py in .anchors/evidently), loopml then Evidently.
Each process loads the two parquet files and warms up on their first 1,000 rows; then the time of
one check on the whole frames (loopml summarises the reference inside it, as Evidently reads its
raw reference), and its memory: this script samples the process's resident memory from /proc
every 20 ms during the check and reports the peak above what the process held just before it
(frames loaded, warm-up done, and the memory loading freed handed back to the system: a garbage
collection, Arrow's pool released, glibc's `malloc_trim`; else a check can reuse that freed
memory and seem to take none), the same way for both tools.
Also reported: the columns each tool flags, against the generator's ground truth.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from _common import (  # the script's folder is on sys.path
    COMPETITORS,
    RssSampler,
    add_run_options,
    competitor_python,
    emit,
    installed_versions,
    loopml_version,
    machine,
    median_of,
    summarise,
    times,
)

DRIFT = "num_00,num_03,num_08,num_11,num_15,cat_1"
UNSEEN = "cat_3"

_LOOPML = textwrap.dedent("""
    import ctypes, gc, json, sys, time
    import pandas as pd, pyarrow
    from loopml import monitoring

    reference, current = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
    monitoring.compare(reference.head(1000), current.head(1000))  # imports, not the data
    gc.collect()  # hand back what loading freed, so the baseline is what the frames hold
    pyarrow.default_memory_pool().release_unused()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    print(json.dumps({"loaded": True}), flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    report = monitoring.compare(reference, current)
    took = time.perf_counter() - started
    print(json.dumps({
        "run_s": took,
        "drifted_columns": sorted(report.drifted_features),
        "findings": {n: f.findings for n, f in report.features.items() if f.findings},
    }), flush=True)
""")


def generate(rows: int, folder: Path) -> list[str]:
    """Write the two frames for `rows`; the columns the generator drifted (the ground truth)."""
    subprocess.run(
        [
            sys.executable,
            str(COMPETITORS / "drift_data.py"),
            f"--rows={rows}",
            f"--out={folder}",
            f"--drift={DRIFT}",
            f"--unseen={UNSEEN}",
        ],
        check=True,
        capture_output=True,
    )
    columns = json.loads((folder / "truth.json").read_text())["columns"]
    return sorted(name for name, column in columns.items() if column["drifted"])


def measured(command: list[str]) -> dict[str, Any]:
    """Run one drift-check process with the handshake: once it says it has loaded, take its
    resident memory as the baseline, let it go, and sample its memory until it answers. Its
    warnings go to a file, so that a full pipe never blocks it."""
    with (
        tempfile.TemporaryFile("w+") as errors,
        subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True
        ) as proc,
    ):
        assert proc.stdin is not None
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        if not ready.startswith('{"loaded"'):
            proc.kill()
            proc.wait()
            errors.seek(0)
            sys.exit(f"{command[1]} did not load the data:\n{errors.read()[-3000:]}")
        sampler = RssSampler(proc.pid)
        sampler.start()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        answer = proc.stdout.readline()
        peak_mb = sampler.stop()
        proc.stdin.close()
        proc.wait(60)
        if proc.returncode != 0 or not answer:
            errors.seek(0)
            sys.exit(f"{command[1]} failed ({proc.returncode}):\n{errors.read()[-3000:]}")
    result: dict[str, Any] = json.loads(answer)
    return {
        **result,
        "peak_above_loaded_mb": peak_mb,
        "baseline_rss_mb": sampler.baseline / 1e6,
        "rss_samples": sampler.samples,
    }


def loopml_pass(folder: Path) -> dict[str, Any]:
    paths = [str(folder / "reference.parquet"), str(folder / "current.parquet")]
    result = measured([sys.executable, "-c", _LOOPML, *paths])
    result.pop("findings")  # long; the columns flagged say enough here
    return result


def evidently_pass(python: Path, folder: Path) -> dict[str, Any]:
    paths = [str(folder / "reference.parquet"), str(folder / "current.parquet")]
    result = measured([str(python), str(COMPETITORS / "evidently_drift.py"), *paths, "--handshake"])
    for key in ("columns", "evidently", "pandas", "rows"):
        result.pop(key)
    return result


def scored(summary: dict[str, Any], truth: list[str]) -> dict[str, Any]:
    flagged = summary["drifted_columns"]
    if isinstance(flagged, dict):  # the passes disagreed: score the last
        flagged = flagged["each"][-1]
    return {
        **summary,
        "missed": sorted(set(truth) - set(flagged)),
        "false_flags": sorted(set(flagged) - set(truth)),
    }


def one_size(args: argparse.Namespace, python: Path | None, rows: int, tmp: Path) -> dict[str, Any]:
    folder = tmp / str(rows)
    truth = generate(rows, folder)
    ours: list[dict[str, Any]] = []
    theirs: list[dict[str, Any]] = []
    for _ in range(args.runs):
        ours.append(loopml_pass(folder))
        if python is not None:
            theirs.append(evidently_pass(python, folder))
    result: dict[str, Any] = {"truth": truth, "loopml": scored(summarise(ours), truth)}
    if theirs:
        result["evidently"] = scored(summarise(theirs), truth)
        result["times_faster"] = times(
            median_of(result["evidently"], "run_s"), median_of(result["loopml"], "run_s")
        )
        ours_mb = median_of(result["loopml"], "peak_above_loaded_mb")
        theirs_mb = median_of(result["evidently"], "peak_above_loaded_mb")
        result["times_less_memory"] = times(theirs_mb, ours_mb)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--skip-evidently", action="store_true")
    add_run_options(parser)
    args = parser.parse_args()
    if args.quick:
        args.rows, args.runs = [5_000], 1
    python = None if args.skip_evidently else competitor_python(args.anchors, "evidently")
    tools = {"loopml": loopml_version()}
    if python is not None:
        tools |= installed_versions(args.anchors, "evidently", ["evidently", "pandas"])
    result: dict[str, Any] = {"benchmark": "monitoring", "machine": machine(tools)}
    result["settings"] = {"rows": args.rows, "runs": args.runs, "drift": DRIFT, "unseen": UNSEEN}
    with tempfile.TemporaryDirectory(prefix="loopml-drift-") as tmp:
        for rows in args.rows:
            result[f"rows_{rows}"] = one_size(args, python, rows, Path(tmp))
    emit(result, args.out)


if __name__ == "__main__":
    main()
