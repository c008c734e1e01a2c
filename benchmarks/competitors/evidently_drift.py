"""Evidently's data-drift check on two parquet files, timed: the competitor side of monitoring.py.

    .anchors/evidently/bin/python benchmarks/competitors/evidently_drift.py REFERENCE CURRENT
        [--handshake]

Loads both frames, runs the preset once on their first 1,000 rows (so imports and lazy set-up are
not timed: loopml's side warms up the same way), then times
`Report([DataDriftPreset()], include_tests=True).run(...)` with Evidently's defaults, its Dataset
conversion included, on the whole frames. Evidently infers each column's type.

With --handshake (how monitoring.py runs it), it prints {"loaded": true} once the frames are
loaded and warmed up and waits for a line on standard input before the timed run, so that the
caller can take the process's resident memory as the baseline and sample it during the run.

Prints one JSON line: evidently and pandas versions, run_s, the columns whose "Value Drift" test
failed, each column's score, method and threshold, and the preset's dataset-level verdict.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("DO_NOT_TRACK", "1")

import evidently
import pandas as pd
import pyarrow
from evidently import Dataset, Report
from evidently.presets import DataDriftPreset

WARM_UP_ROWS = 1_000


def check(reference: pd.DataFrame, current: pd.DataFrame) -> Any:
    report = Report([DataDriftPreset()], include_tests=True)
    return report.run(
        current_data=Dataset.from_pandas(current), reference_data=Dataset.from_pandas(reference)
    )


def verdicts(snapshot: Any) -> tuple[dict[str, dict[str, Any]], bool | None]:
    """Per column {score, method, threshold, drifted}, and whether the share of drifted columns
    failed its test (the preset's verdict on the whole dataset)."""
    document = snapshot.dict()
    columns: dict[str, dict[str, Any]] = {}
    for metric in document["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith(":ValueDrift"):
            columns[config["column"]] = {
                "score": float(metric["value"]),
                "method": config.get("method"),
                "threshold": config.get("threshold"),
            }
    dataset_drift = None
    for test in document["tests"]:
        params = test.get("metric_config", {}).get("params", {})
        kind = params.get("type", "")
        if kind.endswith(":ValueDrift") and params.get("column") in columns:
            columns[params["column"]]["drifted"] = test["status"] == "FAIL"
        elif kind.endswith(":DriftedColumnsCount"):
            dataset_drift = test["status"] == "FAIL"
    return columns, dataset_drift


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("reference", help="reference parquet file")
    parser.add_argument("current", help="current parquet file")
    parser.add_argument("--handshake", action="store_true", help="wait for a go on stdin")
    args = parser.parse_args()

    reference, current = pd.read_parquet(args.reference), pd.read_parquet(args.current)
    check(reference.head(WARM_UP_ROWS), current.head(WARM_UP_ROWS))
    gc.collect()  # hand back what loading freed, as monitoring.py's loopml side does
    pyarrow.default_memory_pool().release_unused()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    if args.handshake:
        print(json.dumps({"loaded": True}), flush=True)
        sys.stdin.readline()
    started = time.perf_counter()
    snapshot = check(reference, current)
    run_s = time.perf_counter() - started
    columns, dataset_drift = verdicts(snapshot)
    print(
        json.dumps(
            {
                "evidently": evidently.__version__,
                "pandas": pd.__version__,
                "rows": [len(reference), len(current)],
                "run_s": run_s,
                "drifted_columns": sorted(c for c, v in columns.items() if v.get("drifted")),
                "dataset_drift": dataset_drift,
                "columns": columns,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
