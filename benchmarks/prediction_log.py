"""The prediction log at scale: hour folders and compaction beside the day-folder layout of an
earlier loopml, on SeaweedFS (S3), the same simulated traffic written to both in one invocation.

    python benchmarks/prediction_log.py [--rows 1000000] [--hours 3] [--writers 8]
                                        [--flush-s 60] [--baseline bfdb9d6] [--runs 3]
                                        [--quick] [--local] [--out results/prediction_log.json]
                                        [--skip-before] [--stream-only]

Traffic: --writers server processes, each writing what it served every --flush-s seconds of a
simulated clock (one file per flush, as a server writes one per second) over --hours hours
starting at midnight UTC: --rows rows in all, 12 features of mixed types (numbers, strings,
booleans) as the model server logs them, 30% of rows labelled half an hour later. The same rows
(seeded) go to both layouts; the writers of each run at once, in their own processes.

Then, each in a fresh process, --runs times:
  newest_hour_s        a monitor's read of the newest hour (its columns, labels joined)
  whole_window_s       the same read of every hour written, and its peak memory (MB, sampled
                       from /proc above the process's baseline)
  show_ms              `predictions show ID` of one id of the middle hour (median of 5, or
                       of as many as ran in 20 s)
  tail_ms              `predictions tail -n 20` (median of 3, likewise)
  monitor_s            a drift monitor's whole run (`monitors.run`: read, parse, quality, drift,
                       performance) over the newest hour and over every hour, and its peak
                       memory (monitor_memory_mb), before and now (after compaction); and
                       now, the monitor's next run over every hour, which takes the hours
                       its first run kept (`loopml.monitoring.window_cache`) and reads the
                       newest
for `before` (the earlier loopml, --baseline, its code from a git worktree in --anchors, run
with this interpreter), `hours` (this loopml, as written) and `compacted` (after `log compact`,
also timed), with the files per hour and the bytes stored (predictions and labels apart), and
for scale the bytes of one zstd Parquet file of the same predictions and one of the labels.
--local writes to a temporary folder instead of SeaweedFS. For a day at 100M rows
(`--rows 100000000 --hours 24 --runs 1`), --skip-before measures this loopml alone and
--stream-only leaves out the whole-window read into one table and the one-file comparison of
storage (both hold every row in memory).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import DEFAULT_ANCHORS, ROOT, RssSampler, emit, loopml_version, machine, summarise

HOUR_US = 3_600_000_000
START_US = 1_796_515_200_000_000  # 2026-12-06T00:00:00Z
DEPLOYMENT = "churn-prod"
LABEL_DELAY_US = 1_800_000_000
COLUMNS = ["request_id", "time_us", "model", "model_version", "inputs_json", "output_json",
           "proba_json", "shadow"]  # fmt: skip
TYPED_COLUMNS = [*COLUMNS, "input.*", "output", "proba"]
"""What a monitor reads of a log with typed columns (this loopml's)."""


# -- the worker: runs in its own process, with the layout's code on PYTHONPATH ------------------


def _batch(writer: int, flush: int, rows: int, seed: int, typed: bool) -> Any:
    """One flush of one writer: rows with 12 features, in the log's columns: typed columns
    (`input.<feature>`, `output`), as this loopml's server writes them, or JSON text, as the
    earlier one did (`typed` False). The same values either way."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng([seed, writer, flush])
    base = START_US + flush * FLUSH_US + writer  # every row inside its flush's minute
    times = base + np.sort(rng.integers(0, FLUSH_US - 64, rows))
    ids = [_uuid7(int(t) // 1000, rng) for t in times]
    numbers = rng.normal(size=(rows, 8)).round(4)
    plans = rng.choice(["basic", "plus", "family", "student"], rows)
    regions = rng.choice(["eu", "us", "apac"], rows)
    flags = rng.random((rows, 2)) < 0.3
    out = rng.integers(0, 2, rows)
    columns: dict[str, Any] = {
        "request_id": ids,
        "time_us": pa.array(times, pa.int64()),
        "deployment": [DEPLOYMENT] * rows,
        "model": ["churn"] * rows,
        "model_version": pa.array([3] * rows, pa.int64()),
        "latency_us": pa.array(rng.integers(300, 3000, rows), pa.int64()),
        "flags": [""] * rows,
        "shadow": [False] * rows,
    }
    if typed:
        features = {f"x{k}": numbers[:, k] for k in range(8)}
        features |= {"plan": plans, "region": regions, "promo": flags[:, 0], "paper": flags[:, 1]}
        columns |= {f"input.{name}": pa.array(values) for name, values in features.items()}
        columns["output"] = pa.array(out, pa.int64())
        return pa.table(columns)
    columns["inputs_json"] = [
        json.dumps({**{f"x{k}": float(numbers[i, k]) for k in range(8)}, "plan": str(plans[i]),
                    "region": str(regions[i]), "promo": bool(flags[i, 0]),
                    "paper": bool(flags[i, 1])}, separators=(",", ":"))
        for i in range(rows)
    ]  # fmt: skip
    columns["output_json"] = [str(int(v)) for v in out]
    return pa.table(columns)


def _uuid7(unix_ms: int, rng: Any) -> str:
    value = (unix_ms << 80) | (0x7 << 76) | (int(rng.integers(0, 1 << 62)) & ((1 << 76) - 1))
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


FLUSH_US = 10_000_000
NOW = ROOT / "src"
"""This loopml's code: its servers write typed columns (the earlier one's, JSON text)."""


def worker_write(args: argparse.Namespace) -> dict[str, Any]:
    """Write writer `args.writer`'s share of the traffic, one file per flush."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from loopml.adapters.prediction_log import PredictionLogWriter

    global FLUSH_US
    FLUSH_US = int(args.flush_s * 1_000_000)
    flushes = int(args.hours * 3600 / args.flush_s)
    per_flush = max(1, args.rows // (args.writers * flushes))
    writer = PredictionLogWriter(args.root, _options(args), flush_interval_s=3600.0,
                                 max_queue_rows=10_000_000)  # fmt: skip
    labels: list[Any] = []
    started = time.perf_counter()
    for flush in range(flushes):
        batch = _batch(args.writer, flush, per_flush, args.seed, args.typed)
        writer.append(batch)
        chosen = batch.filter(pc.less(pc.random(batch.num_rows, initializer=flush), 0.3))
        said = pc.cast(chosen["output"], pa.string()) if args.typed else chosen["output_json"]
        labels.append(
            pa.table(
                {
                    "request_id": chosen["request_id"],
                    "time_us": pc.add(chosen["time_us"], LABEL_DELAY_US),
                    "deployment": chosen["deployment"],
                    "label_json": said,
                }
            )
        )
        due = [t for t in labels if pc.min(t["time_us"]).as_py() <= batch["time_us"][-1].as_py()]
        for table in due:
            writer.append_feedback(table)
        labels = [t for t in labels if not any(t is d for d in due)]
        writer.flush(timeout_s=120)
    for table in labels:
        writer.append_feedback(table)
    writer.close(timeout_s=120)
    return {"seconds": time.perf_counter() - started, "rows": per_flush * flushes}


def worker_measure(args: argparse.Namespace) -> dict[str, Any]:
    """The reads of one pass, in this process."""
    from loopml.adapters.prediction_log_reader import PredictionLogReader

    end = START_US + int(args.hours * 3600) * 1_000_000
    reader = PredictionLogReader(args.root, _options(args))
    columns = TYPED_COLUMNS if args.typed else COLUMNS
    figures: dict[str, Any] = {}
    started = time.perf_counter()
    hour = reader.read(DEPLOYMENT, since_us=end - HOUR_US, until_us=end, columns=columns)
    figures["newest_hour_s"] = time.perf_counter() - started
    figures["newest_hour_rows"] = hour.num_rows
    middle = START_US + int(args.hours * 3600 / 2) * 1_000_000
    some = reader.read(DEPLOYMENT, since_us=middle, until_us=middle + 60_000_000,
                       columns=["request_id"], with_feedback=False)  # fmt: skip
    request_id = some["request_id"][0].as_py()
    found = reader.get(request_id)
    assert found is not None
    assert found["request_id"] == request_id
    figures["show_ms"] = _median_ms(lambda: reader.get(request_id), 5)
    assert reader.tail(DEPLOYMENT, 20).num_rows == 20
    figures["tail_ms"] = _median_ms(lambda: reader.tail(DEPLOYMENT, 20), 3)
    print(json.dumps(figures), flush=True)
    sys.stdin.readline()  # the parent takes the memory baseline here
    if args.no_whole:
        return figures
    started = time.perf_counter()
    everything = reader.read(DEPLOYMENT, columns=columns)
    figures["whole_window_s"] = time.perf_counter() - started
    figures["whole_window_rows"] = everything.num_rows
    figures["labelled_rows"] = everything.num_rows - everything["label_json"].null_count
    return figures


def worker_monitor(args: argparse.Namespace) -> dict[str, Any]:
    """A drift monitor's run (`monitors.run`, as the team server runs it) over the newest
    --window-hours hours, in a workspace of its own whose artifacts are the log's root; the
    parent samples the run's memory."""
    import dataclasses

    import numpy as np
    import pandas as pd

    from loopml.bootstrap import open_workspace
    from loopml.monitoring import monitors
    from loopml.settings import Settings

    home = Path(args.home or tempfile.mkdtemp(prefix="loopml-logbench-ws-"))
    settings = Settings.from_env(env={"LOOPML_HOME": str(home), "LOOPML_ARTIFACTS": args.root})
    settings = dataclasses.replace(settings, storage_options=_options(args) or {})
    ws = open_workspace(settings)
    end = START_US + int(args.hours * 3600) * 1_000_000
    if (home / "reference.parquet").exists():  # the monitor's next run: its hours are kept
        print(json.dumps({"ready": True}), flush=True)
        sys.stdin.readline()
        started = time.perf_counter()
        result = monitors.run("drift", now_us=end, workspace=ws)
        return {"monitor_s": time.perf_counter() - started, "monitor_rows": result.run.rows}
    rng = np.random.default_rng(args.seed)
    rows = 20_000
    numbers = rng.normal(size=(rows, 8)).round(4)
    reference = pd.DataFrame({f"x{k}": numbers[:, k] for k in range(8)})
    reference["plan"] = rng.choice(["basic", "plus", "family", "student"], rows)
    reference["region"] = rng.choice(["eu", "us", "apac"], rows)
    reference["promo"], reference["paper"] = rng.random(rows) < 0.3, rng.random(rows) < 0.3
    reference.to_parquet(home / "reference.parquet")
    ws.data.add(home / "reference.parquet", name="reference", project="default")
    window_s = int(args.window_hours * 3600)
    monitors.create("drift", deployment=DEPLOYMENT, reference="reference", window=window_s,
                    workspace=ws)  # fmt: skip
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()  # the parent takes the memory baseline here
    started = time.perf_counter()
    result = monitors.run("drift", now_us=end, workspace=ws)
    took = time.perf_counter() - started
    if not args.home:
        shutil.rmtree(home, ignore_errors=True)
    return {"monitor_s": took, "monitor_rows": result.run.rows}


def _median_ms(call: Any, calls: int) -> float:
    """The median of `calls` calls in ms (fewer once they have taken 20 s: a slow layout)."""
    took: list[float] = []
    while len(took) < calls and sum(took) < 20:
        started = time.perf_counter()
        call()
        took.append(time.perf_counter() - started)
    return sorted(took)[len(took) // 2] * 1000


def worker_compact(args: argparse.Namespace) -> dict[str, Any]:
    from loopml.adapters.prediction_log_compaction import LogCompactor
    from loopml.adapters.prediction_log_files import LogStorage

    end = START_US + int(args.hours * 3600) * 1_000_000
    started = time.perf_counter()
    report = LogCompactor(LogStorage(args.root, _options(args)), clock_us=lambda: end + HOUR_US)
    done = report.compact(min_age_s=0)
    return {"compact_s": time.perf_counter() - started, **done.totals(DEPLOYMENT)}


def worker_layout(args: argparse.Namespace) -> dict[str, Any]:
    """Files per hour folder, bytes stored, and the bytes of one Parquet file of the rows."""
    import io

    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    from loopml.adapters.local_files import local_root, remote_fs

    folder = local_root(args.root)
    fs, root = (None, folder) if folder else remote_fs(args.root, _options(args))
    names = (
        [str(p) for p in Path(root).rglob("*.parquet")]
        if fs is None
        else [str(p) for p in fs.find(root) if p.endswith(".parquet")]
    )
    sizes = {n: os.path.getsize(n) if fs is None else fs.size(n) for n in names}
    predictions = [n for n in names if "/predictions/" in n]
    labels = [n for n in names if "/feedback/" in n]
    hours = int(args.hours) or 1

    def one_file(paths: list[str]) -> int:
        one = io.BytesIO()
        table = ds.dataset(paths, format="parquet", filesystem=fs).to_table()
        pq.write_table(table, one, compression="zstd")
        return one.tell()

    layout = {
        "prediction_files": len(predictions),
        "files_per_hour": len(predictions) / hours,
        "bytes_stored": sum(sizes.values()),
        "prediction_bytes": sum(sizes[n] for n in predictions),
        "label_bytes": sum(sizes[n] for n in labels),
    }
    if args.no_whole:  # one file of every row is made in memory
        return layout
    return {
        **layout,
        "one_file_bytes": one_file(predictions),
        "one_label_file_bytes": one_file(labels),
    }


def _options(args: argparse.Namespace) -> dict[str, Any] | None:
    return json.loads(args.options) if args.options else None


# -- the parent ---------------------------------------------------------------------------------


def _run_worker(code: Path, mode: str, root: str, args: argparse.Namespace,
                **extra: Any) -> dict[str, Any]:  # fmt: skip
    command = [sys.executable, __file__, "--worker", mode, "--root", root,
               "--options", json.dumps(args.storage_options or {}), "--rows", str(args.rows),
               "--hours", str(args.hours), "--writers", str(args.writers),
               "--flush-s", str(args.flush_s)]  # fmt: skip
    for key, value in extra.items():
        command += [f"--{key}", str(value)]
    command += ["--no-whole"] if args.stream_only else []
    env = {**os.environ, "PYTHONPATH": str(code)}
    command += ["--typed"] if code == NOW else []
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{mode} failed ({code}):\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _measure(
    code: Path,
    root: str,
    args: argparse.Namespace,
    mode: str = "measure",
    window_hours: float = 1,
    *,
    home: str | None = None,
) -> dict[str, Any]:
    """One pass of reads (or a monitor's run) in a fresh process, the whole-window read's (the
    run's) memory sampled. A monitor in `home` runs again there when it ran before."""
    options = json.dumps(args.storage_options or {})
    command = [sys.executable, __file__, "--worker", mode, "--root", root,
               "--options", options, "--hours", str(args.hours), "--seed", str(args.seed),
               "--window-hours", str(window_hours)]  # fmt: skip
    command += ["--home", home] if home else []
    command += ["--typed"] if code == NOW else []
    command += ["--no-whole"] if args.stream_only else []
    env = {**os.environ, "PYTHONPATH": str(code)}
    process = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)  # fmt: skip
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdout.readline()  # the first reads are done
    sampler = RssSampler(process.pid)
    sampler.start()
    process.stdin.write("\n")
    process.stdin.flush()
    out, _ = process.communicate()
    memory = sampler.stop()
    if process.returncode:
        raise SystemExit(f"measure failed ({code})")
    figures = json.loads(out.strip().splitlines()[-1])
    if mode == "monitor":
        return {**figures, "monitor_memory_mb": memory}
    return figures if args.stream_only else {**figures, "whole_window_memory_mb": memory}


def _write(code: Path, root: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every writer at once, each in its own process."""
    started = time.perf_counter()
    command = [sys.executable, __file__, "--worker", "write", "--root", root,
               "--options", json.dumps(args.storage_options or {}), "--rows", str(args.rows),
               "--hours", str(args.hours), "--writers", str(args.writers),
               "--flush-s", str(args.flush_s)]  # fmt: skip
    command += ["--typed"] if code == NOW else []
    env = {**os.environ, "PYTHONPATH": str(code)}
    workers = [
        subprocess.Popen([*command, "--writer", str(n)], env=env, stdout=subprocess.PIPE, text=True)
        for n in range(args.writers)
    ]
    rows = 0
    for process in workers:
        out, _ = process.communicate()
        if process.returncode:
            raise SystemExit(f"a writer failed ({code})")
        rows += json.loads(out.strip().splitlines()[-1])["rows"]
    return {"write_s": time.perf_counter() - started, "rows_written": rows}


def _baseline_code(revision: str, anchors: Path) -> Path:
    name = subprocess.run(["git", "rev-parse", "--short", revision], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    tree = anchors.absolute() / f"loopml-{name}" / "tree"
    if not tree.exists():
        tree.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), name], cwd=ROOT,
                       check=True, capture_output=True)  # fmt: skip
    return tree / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--hours", type=float, default=3)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--flush-s", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--baseline", default="bfdb9d6", help="the earlier loopml's revision")
    parser.add_argument("--anchors", type=Path, default=DEFAULT_ANCHORS)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a small run, to check the script")
    parser.add_argument("--local", action="store_true", help="a local folder, not SeaweedFS")
    parser.add_argument("--skip-before", action="store_true",
                        help="measure this loopml alone (for a day's traffic, which the earlier "
                             "layout takes hours over)")  # fmt: skip
    parser.add_argument("--stream-only", action="store_true",
                        help="leave out the whole-window read into one table (a day of rows "
                             "does not fit in memory); monitors stream theirs")  # fmt: skip
    parser.add_argument("--out", type=Path)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--writer", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--options", help=argparse.SUPPRESS)
    parser.add_argument("--window-hours", type=float, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--typed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-whole", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        work = {"write": worker_write, "measure": worker_measure, "compact": worker_compact,
                "layout": worker_layout, "monitor": worker_monitor}[args.worker]  # fmt: skip
        print(json.dumps(work(args)))
        return
    if args.quick:
        args.rows, args.hours, args.writers, args.flush_s, args.runs = 60_000, 2, 2, 60.0, 1
    before = _baseline_code(args.baseline, args.anchors)
    now = NOW
    with tempfile.TemporaryDirectory(prefix="loopml-logbench-") as scratch:
        if args.local:
            args.storage_options = None
            _compare(args, before, now, lambda name: str(Path(scratch) / name))
            return
        from loopml.testing.seaweed import run_seaweedfs

        with run_seaweedfs(Path(scratch)) as s3:
            args.storage_options = s3.storage_options()
            _compare(args, before, now, lambda name: f"s3://{s3.bucket}/{name}")


def _compare(args: argparse.Namespace, before: Path, now: Path, root_of: Any) -> None:
    result: dict[str, Any] = {
        "benchmark": "prediction_log",
        "machine": machine({"loopml": loopml_version(), "before": args.baseline}),
        "store": "local folder" if args.local else "SeaweedFS (S3)",
        "traffic": {
            "rows": args.rows,
            "hours": args.hours,
            "writers": args.writers,
            "flush_s": args.flush_s,
            "labelled": 0.3,
        },
    }
    layouts = (("hours", now),) if args.skip_before else (("before", before), ("hours", now))
    for name, code in layouts:
        root = root_of(name)
        result[name] = {**_write(code, root, args), **_run_worker(code, "layout", root, args)}
        result[name]["reads"] = summarise([_measure(code, root, args) for _ in range(args.runs)])
    result["compacted"] = _run_worker(now, "compact", root_of("hours"), args)
    result["compacted"].update(_run_worker(now, "layout", root_of("hours"), args))
    result["compacted"]["reads"] = summarise(
        [_measure(now, root_of("hours"), args) for _ in range(args.runs)]
    )
    # a drift monitor's whole run, over the newest hour and over every hour written; now, also
    # its next run over every hour, which takes the settled hours the first one kept
    result["monitor"] = {}
    for name, code, tree in (("before", before, "before"), ("now", now, "hours")):
        for hours in [] if args.skip_before and name == "before" else sorted({1, args.hours}):
            if name == "now" and hours > 1:
                pairs = [_monitor_twice(code, root_of(tree), args) for _ in range(args.runs)]
                result["monitor"][f"now {hours:g}h"] = summarise([p[0] for p in pairs])
                result["monitor"][f"now {hours:g}h, next run"] = summarise([p[1] for p in pairs])
                continue
            runs = [_measure(code, root_of(tree), args, "monitor", hours) for _ in range(args.runs)]
            result["monitor"][f"{name} {hours:g}h"] = summarise(runs)
    emit(result, args.out)


def _monitor_twice(code: Path, root: str, args: argparse.Namespace) -> tuple[Any, Any]:
    """A monitor's first run over every hour written, and its next, in one workspace: the
    settled hours the first run folded (all but the newest) are taken from what it kept."""
    home = tempfile.mkdtemp(prefix="loopml-logbench-ws-")
    try:
        first = _measure(code, root, args, "monitor", args.hours, home=home)
        return first, _measure(code, root, args, "monitor", args.hours, home=home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
