"""Drift detection, loopml beside Evidently's DataDriftPreset, in one invocation.

    python benchmarks/monitoring.py [--rows 100000 1000000] [--anchors .anchors] [--out F]

The data: ../shared/anchors/drift_data.py (20 numeric and 5 categorical columns), drift in the
current frame only: num_00, num_03, num_08, num_11 and num_15 moved by 0.1 standard deviations,
cat_1 reweighted (20%), and an unseen value on 5% of cat_3's rows. Both tools read the same two
parquet files in a fresh process; the time is `compare(reference, current)` from DataFrames in
memory (the reference summarised inside it, as Evidently reads its raw reference), after loading;
memory is the process's peak RSS beyond what it held after loading the two frames.
Also reported: the columns each tool flags against the generator's ground truth.
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

from _common import ANCHORS_SCRIPTS, emit, machine  # the script's folder is on sys.path

DRIFT_COLUMNS = ["num_00", "num_03", "num_08", "num_11", "num_15", "cat_1"]
NEW_CATEGORY_COLUMNS = ["cat_3"]

_LOOPML = textwrap.dedent("""
    import json, resource, sys, time
    import pandas as pd
    from loopml import monitoring

    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    reference = pd.read_parquet(sys.argv[1])
    current = pd.read_parquet(sys.argv[2])
    monitoring.compare(reference.head(1000), current.head(1000))  # imports, not the data
    before = peak_mb()
    started = time.perf_counter()
    report = monitoring.compare(reference, current)
    took = time.perf_counter() - started
    print(json.dumps({
        "run_s": round(took, 3),
        "own_rss_mb": round(peak_mb() - before, 1),
        "drifted_columns": report.drifted_features,
        "findings": {n: f.findings for n, f in report.features.items() if f.findings},
    }))
""")


def _generate(anchors: Path, rows: int, folder: Path) -> None:
    subprocess.run(
        [
            str(anchors / "evidently" / "bin" / "python"),
            str(ANCHORS_SCRIPTS / "drift_data.py"),
            "--n",
            str(rows),
            "--out",
            str(folder),
            "--drift-cols",
            *DRIFT_COLUMNS,
            "--shift-std",
            "0.1",
            "--cat-shift",
            "0.2",
            "--new-category-cols",
            *NEW_CATEGORY_COLUMNS,
        ],
        check=True,
        capture_output=True,
    )


def _truth(folder: Path) -> list[str]:
    """The columns the generator drifted (spec.json's `columns.<name>.drifted`)."""
    columns = json.loads((folder / "spec.json").read_text())["columns"]
    return sorted(name for name, column in columns.items() if column.get("drifted"))


def _evidently(anchors: Path, folder: Path) -> dict[str, Any]:
    out = folder / "evidently.json"
    subprocess.run(
        [
            str(anchors / "evidently" / "bin" / "python"),
            str(ANCHORS_SCRIPTS / "evidently_drift.py"),
            "--ref",
            str(folder / "ref.parquet"),
            "--cur",
            str(folder / "cur.parquet"),
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    result = json.loads(out.read_text())
    drifted = result["drifted_columns"]
    names = sorted(drifted) if isinstance(drifted, list | dict) else drifted
    return {
        "run_s": result["run_s"],
        "own_rss_mb": result.get("evidently_rss_mb"),
        "drifted_columns": names,
    }


def _loopml(folder: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _LOOPML, str(folder / "ref.parquet"), str(folder / "cur.parquet")],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["drifted_columns"] = sorted(result["drifted_columns"])
    return result


def _score(flagged: list[str], truth: list[str]) -> dict[str, Any]:
    return {
        "missed": sorted(set(truth) - set(flagged)),
        "false_flags": sorted(set(flagged) - set(truth)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--anchors", type=Path, default=Path(".anchors"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    anchors = args.anchors.absolute()
    result: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="loopml-drift-") as tmp:
        for rows in args.rows:
            folder = Path(tmp) / str(rows)
            _generate(anchors, rows, folder)
            truth = _truth(folder)
            ours, theirs = _loopml(folder), _evidently(anchors, folder)
            ours |= _score(ours["drifted_columns"], truth)
            theirs |= _score(theirs["drifted_columns"], truth)
            result[f"rows_{rows}"] = {
                "truth": truth,
                "loopml": ours,
                "evidently": theirs,
                "times_faster": round(theirs["run_s"] / ours["run_s"], 1),
            }
    emit(result, args.out)


if __name__ == "__main__":
    main()
