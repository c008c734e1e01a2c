"""Compaction and expiry of the prediction log: one file per hour, every row once for readers
at any moment (also while compaction runs, or after it is killed), older files still read,
lake tools read the same files, and the retention is bounded by the monitors' windows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopml.adapters.prediction_log import (
    PREDICTION_SCHEMA,
    FeedbackRecord,
    PredictionLogWriter,
    PredictionRecord,
)
from loopml.adapters.prediction_log_compaction import LogCompactor
from loopml.adapters.prediction_log_files import LogStorage
from loopml.adapters.prediction_log_reader import PredictionLogReader
from loopml.domain.request_ids import RequestIds
from loopml.testing.seaweed import S3Endpoint

HOUR_US = 3_600_000_000
NOV_27 = 1_795_737_600_000_000  # 2026-11-27T00:00:00Z
LATER = NOV_27 + 30 * 24 * HOUR_US  # a clock a month on: every hour of Nov 27 is closed


def rows(start: int, count: int, time_us: int, deployment: str = "churn") -> list[PredictionRecord]:
    ids = RequestIds(lambda: time_us // 1000, os.urandom).new(count)
    return [
        PredictionRecord(ids[i], time_us + i, deployment, "churn-model", 3,
                         f'{{"tenure":{start + i}}}', "1", 100, "", False)
        for i in range(count)
    ]  # fmt: skip


def write(root: str, batches: list[list[PredictionRecord]], **options: Any) -> None:
    """Each batch its own flush: its own file, as a server writes one per second."""
    writer = PredictionLogWriter(root, flush_interval_s=60.0, **options)
    try:
        for batch in batches:
            writer.append(batch)
            writer.flush()
    finally:
        writer.close()


def files_of(root: Path, kind: str = "predictions") -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in (root / kind).rglob("*.parquet"))


def every_id(reader: PredictionLogReader, deployment: str = "churn") -> list[str]:
    return list(reader.read(deployment, with_feedback=False)["request_id"].to_pylist())


@pytest.fixture
def hour_of_files(tmp_path: Path) -> list[PredictionRecord]:
    """Twelve files in hour 00 of Nov 27, three in hour 01, and a label."""
    made = [rows(i * 10, 10, NOV_27 + i * 60_000_000) for i in range(12)]
    made += [rows(500 + i * 10, 10, NOV_27 + HOUR_US + i * 1000) for i in range(3)]
    write(str(tmp_path), made)
    writer = PredictionLogWriter(str(tmp_path), flush_interval_s=60.0)
    writer.append_feedback([FeedbackRecord(made[0][0].request_id, NOV_27 + 5, "churn", '"yes"')])
    writer.close()
    return [r for batch in made for r in batch]


def test_each_closed_hour_becomes_one_file_and_reads_the_same(
    tmp_path: Path, hour_of_files: list[PredictionRecord]
) -> None:
    reader = PredictionLogReader(str(tmp_path))
    before = reader.read("churn")
    first = hour_of_files[0].request_id
    shown = reader.get(first)
    assert len(files_of(tmp_path)) == 15

    compactor = LogCompactor(LogStorage(str(tmp_path)), clock_us=lambda: LATER)
    report = compactor.compact(min_age_s=600)

    assert report.totals("churn") == {**report.totals("churn"), "folders": 2, "files_before": 15,
                                      "files_after": 2, "rows": 150}  # fmt: skip
    assert [f.rsplit("/", 1)[0] for f in files_of(tmp_path)] == [
        "predictions/deployment=churn/date=2026-11-27/hour=00",
        "predictions/deployment=churn/date=2026-11-27/hour=01",
    ]
    assert reader.read("churn").equals(before)
    assert reader.get(first) == shown
    assert shown is not None
    assert shown["label_json"] == '"yes"'
    assert reader.served_ids("churn", [first, "unknown"]) == {first}
    tail = reader.tail("churn", 3)["request_id"].to_pylist()
    assert tail == [r.request_id for r in hour_of_files[-3:]][::-1]
    # rows in time order inside the merged file, row groups skippable by time
    merged = pq.read_table(tmp_path / files_of(tmp_path)[0])
    assert merged["time_us"].to_pylist() == sorted(merged["time_us"].to_pylist())
    # a second run has nothing left to do
    assert compactor.compact(min_age_s=600).changes == {}


def _pieces(reader: PredictionLogReader, **window: Any) -> pa.Table:
    pieces = list(reader.read_batches("churn", batch_rows=7, **window))
    assert all(piece.num_rows <= 7 for piece in pieces)
    return pa.concat_tables(pieces).sort_by("time_us")


def test_a_window_read_in_pieces_holds_the_rows_and_labels_of_the_whole_read(
    tmp_path: Path, hour_of_files: list[PredictionRecord]
) -> None:
    root = str(tmp_path)
    untimed = PredictionRecord("r-older-loopml", NOV_27 + 9, "churn", "churn-model", 3, "{}",
                               "0", 100, "", False)  # fmt: skip
    event = rows(700, 4, NOV_27 + HOUR_US + 50)
    event = [r._replace(event_time_us=NOV_27 - HOUR_US) for r in event]  # a replayed history
    write(root, [[untimed], event])
    writer = PredictionLogWriter(root, flush_interval_s=60.0)
    writer.append_feedback([FeedbackRecord("r-older-loopml", NOV_27 + 30 * HOUR_US, "churn", "1"),
                            FeedbackRecord(event[2].request_id, NOV_27 + 2 * HOUR_US, "churn",
                                           "0")])  # fmt: skip
    writer.close()
    reader = PredictionLogReader(root)
    for window in ({}, {"since_us": NOV_27 + 3, "until_us": NOV_27 + HOUR_US + 2},
                   {"since_us": NOV_27 - HOUR_US, "until_us": NOV_27}):  # fmt: skip
        whole = reader.read("churn", **window)
        assert _pieces(reader, **window).equals(whole.sort_by("time_us")), window
    assert sorted(_pieces(reader)["label_json"].drop_null().to_pylist()) == ['"yes"', "0", "1"]

    LogCompactor(LogStorage(root), clock_us=lambda: LATER).compact(min_age_s=0)
    assert _pieces(reader).equals(reader.read("churn").sort_by("time_us"))


def test_each_row_of_an_hour_gets_its_label_whatever_the_case_or_clock_of_its_id(
    tmp_path: Path,
) -> None:
    """An hour's labels are read by the range of its ids' times (row groups skipped by their
    statistics): ids in upper or mixed case, and ids made minutes before their row was logged
    (a clock stepped back) or in the neighbouring hours, all find their labels."""
    root = str(tmp_path)
    made_at = [-9 * 60_000_000, -1, 0, 1, HOUR_US - 1, HOUR_US, HOUR_US + 9 * 60_000_000]
    served: list[PredictionRecord] = []
    for n, offset in enumerate(made_at):
        for case in (str.lower, str.upper, lambda text: text[:4].upper() + text[4:]):
            row = rows(10 * n, 1, NOV_27 + HOUR_US + offset)[0]
            logged = NOV_27 + HOUR_US + min(max(offset, 0), HOUR_US - 1)  # served in hour 01
            served.append(row._replace(request_id=case(row.request_id), time_us=logged))
    neighbours = rows(900, 20, NOV_27 + HOUR_US // 2) + rows(950, 20, NOV_27 + 2 * HOUR_US + 5)
    write(root, [served, neighbours])
    writer = PredictionLogWriter(root, flush_interval_s=60.0)
    late = NOV_27 + 30 * HOUR_US
    writer.append_feedback([FeedbackRecord(r.request_id, late, "churn", f'"{r.request_id}"')
                            for r in served + neighbours])  # fmt: skip
    writer.close()
    reader = PredictionLogReader(root)
    hour = {"since_us": NOV_27 + HOUR_US, "until_us": NOV_27 + 2 * HOUR_US}
    for _ in ("as written", "merged"):
        read = _pieces(reader, **hour)
        assert sorted(read["request_id"].to_pylist()) == sorted(r.request_id for r in served)
        assert read["label_json"].to_pylist() == [f'"{i}"' for i in read["request_id"].to_pylist()]
        LogCompactor(LogStorage(root), clock_us=lambda: LATER).compact(min_age_s=0)


def test_a_merged_hour_is_read_by_id_in_small_groups_and_by_window_in_whole_pieces(
    tmp_path: Path,
) -> None:
    root = str(tmp_path)
    made = [rows(i * 10_000, 10_000, NOV_27 + i * 60_000_000) for i in range(4)]
    late = rows(0, 1, NOV_27 + 10 * 60_000_000)[0]  # stamped three minutes after its id
    late = late._replace(time_us=late.time_us + 180_000_000)
    write(root, [*made, [late]])
    writer = PredictionLogWriter(root, flush_interval_s=60.0)
    writer.append_feedback([FeedbackRecord(late.request_id, NOV_27 + HOUR_US, "churn", "1")])
    writer.close()
    LogCompactor(LogStorage(root), clock_us=lambda: LATER).compact(min_age_s=0)
    (merged,) = files_of(tmp_path)
    groups = pq.ParquetFile(tmp_path / merged).metadata
    assert groups.num_row_groups == 3  # 40,001 rows in groups of 16,384, each in time order
    reader = PredictionLogReader(root)
    pieces = list(reader.read_batches("churn", batch_rows=32_768))
    assert [piece.num_rows for piece in pieces] == [2 * 16_384, 7_233]  # groups joined
    assert sorted(pa.concat_tables(pieces)["request_id"].to_pylist()) == sorted(every_id(reader))
    middle = made[2][5_000].request_id
    assert reader.get(middle) == {**made[2][5_000]._asdict(), "label_json": None}
    shown = reader.get(late.request_id)  # not in the seconds its id names: looked for wider
    assert shown is not None
    assert (shown["time_us"], shown["label_json"]) == (late.time_us, "1")


def test_a_compaction_during_a_read_in_pieces_says_so_and_export_starts_over(
    tmp_path: Path, hour_of_files: list[PredictionRecord]
) -> None:
    from loopml.ports.prediction_log import LogChanged

    root = str(tmp_path)
    compact = LogCompactor(LogStorage(root), clock_us=lambda: LATER).compact
    reader = PredictionLogReader(root)
    pieces = reader.read_batches("churn", batch_rows=5)
    next(pieces)
    compact(min_age_s=0)  # the files the read listed are merged and deleted
    with pytest.raises(LogChanged, match="changed while it was read"):
        list(pieces)

    write(root, [rows(900, 10, NOV_27 + 7) for _ in range(3)])  # new parts beside the merge

    class Racing(PredictionLogReader):
        compacted = False

        def read_batches(self, *args: Any, **kwargs: Any) -> Iterator[pa.Table]:
            for piece in super().read_batches(*args, **kwargs):
                yield piece
                if not self.compacted:
                    self.compacted = True
                    compact(min_age_s=0)

    out = tmp_path / "churn.parquet"
    assert Racing(root).export("churn", out) == 180
    exported = pq.read_table(out)
    assert sorted(exported["request_id"].to_pylist()) == sorted(every_id(reader))
    assert exported["label_json"].drop_null().to_pylist() == ['"yes"']


@pytest.mark.parametrize("names", ["in time order", "against it"])
def test_a_merged_hour_is_in_time_order_across_its_row_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, names: str
) -> None:
    """Writers' files of one minute overlap in time; the merged file is sorted throughout, so
    each row group holds a short stretch of time and a lookup reads few of them. A writer that
    fell behind names older rows later: the files go in by their least time, not by name."""
    from loopml.adapters import prediction_log_compaction as compaction

    monkeypatch.setattr(compaction, "ROW_GROUP_ROWS", 7)
    monkeypatch.setattr(compaction, "RELEASE_ROWS", 20)
    minute = 60_000_000
    files = [rows(100 * w + 10 * m, 10, NOV_27 + m * minute + w * 3_000_000 + 1)
             for m in range(6) for w in range(3)]  # fmt: skip
    files = [[r._replace(time_us=r.time_us + (i % 10) * 5_000_000) for i, r in enumerate(f)]
             for f in files]  # each file spans 45 s: they overlap  # fmt: skip
    write(str(tmp_path), files if names == "in time order" else files[::-1])
    LogCompactor(LogStorage(str(tmp_path)), clock_us=lambda: LATER).compact(min_age_s=0)
    (merged,) = files_of(tmp_path)
    parquet = pq.ParquetFile(tmp_path / merged)
    times = parquet.read(columns=["time_us"])["time_us"].to_pylist()
    assert times == sorted(r.time_us for f in files for r in f)
    assert parquet.metadata.num_row_groups == -(-len(times) // 7)
    assert sorted(every_id(PredictionLogReader(str(tmp_path)))) == sorted(
        r.request_id for f in files for r in f
    )


def test_an_hour_still_open_is_left_alone(
    tmp_path: Path, hour_of_files: list[PredictionRecord]
) -> None:
    during_hour_01 = NOV_27 + HOUR_US + 10 * 60_000_000
    compactor = LogCompactor(LogStorage(str(tmp_path)), clock_us=lambda: during_hour_01)
    report = compactor.compact(min_age_s=600)
    assert [c.folder.rsplit("/", 1)[1] for c in report.changes["churn"]] == ["hour=00"]
    # hour 00 ended 10 minutes ago: with --min-age 15m it is still open too
    later = LogCompactor(LogStorage(str(tmp_path)), clock_us=lambda: during_hour_01)
    assert later.compact(min_age_s=900).changes == {}


def test_a_dry_run_changes_nothing(tmp_path: Path, hour_of_files: list[PredictionRecord]) -> None:
    before = files_of(tmp_path)
    report = LogCompactor(LogStorage(str(tmp_path)), clock_us=lambda: LATER).compact(
        min_age_s=0, dry_run=True
    )
    assert report.totals("churn")["files_before"] == 15
    assert files_of(tmp_path) == before


def test_files_of_an_older_schema_and_day_folders_are_merged_too(tmp_path: Path) -> None:
    old_schema = pa.schema(
        [f for f in PREDICTION_SCHEMA if f.name not in ("client_id", "event_time_us", "deployment")]
    )
    day = tmp_path / "predictions" / "deployment=churn" / "date=2026-11-27"
    day.mkdir(parents=True)
    for n, batch in enumerate([rows(0, 5, NOV_27), rows(5, 5, NOV_27 + 7 * HOUR_US)]):
        table = pa.Table.from_pylist([r._asdict() for r in batch]).select(old_schema.names)
        # the second as another tool may write it: without statistics (merged unsorted)
        pq.write_table(table.cast(old_schema), day / f"part-{n}-old.parquet",
                       write_statistics=n == 0)  # fmt: skip
    reader = PredictionLogReader(str(tmp_path))
    before = reader.read("churn")
    report = LogCompactor(LogStorage(str(tmp_path)), clock_us=lambda: LATER).compact(min_age_s=0)
    assert report.totals("churn")["files_after"] == 1
    after = reader.read("churn")
    assert after.equals(before)
    assert after.num_rows == 10
    assert after["client_id"].null_count == 10


def test_rows_written_while_compaction_runs_are_read_once_and_merged_next(tmp_path: Path) -> None:
    root = str(tmp_path)
    writer = PredictionLogWriter(root, flush_interval_s=0.01)
    written: list[str] = []
    stop = threading.Event()
    now = time.time_ns() // 1000

    def serve() -> None:
        n = 0
        while not stop.is_set():
            batch = rows(n, 20, time.time_ns() // 1000)
            writer.append(batch)
            written.extend(r.request_id for r in batch)
            n += 20
            time.sleep(0.005)

    server = threading.Thread(target=serve)
    server.start()
    reader = PredictionLogReader(root)
    compactor = LogCompactor(LogStorage(root), clock_us=lambda: now + 2 * HOUR_US)
    try:
        for _ in range(15):  # the current hour, merged again and again under the writer
            compactor.compact(min_age_s=0)
            seen = every_id(reader)
            assert len(seen) == len(set(seen)), "a row was read twice"
    finally:
        stop.set()
        server.join()
        writer.close()
    compactor.compact(min_age_s=0)
    seen = every_id(reader)
    assert sorted(seen) == sorted(written)  # none lost, none doubled
    assert len(files_of(tmp_path)) <= 2  # one per hour (the run may span two)


def test_readers_racing_compaction_see_every_row_once(
    tmp_path: Path, hour_of_files: list[PredictionRecord]
) -> None:
    root = str(tmp_path)
    base = {r.request_id for r in hour_of_files}
    added: list[str] = []
    errors: list[str] = []
    stop = threading.Event()

    def read() -> None:
        reader = PredictionLogReader(root)
        while not stop.is_set():
            seen = every_id(reader)
            if len(seen) != len(set(seen)):
                errors.append(f"{len(seen) - len(set(seen))} rows read twice")
            if not base <= set(seen):
                errors.append(f"{len(base - set(seen))} rows missed")

    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in readers:
        thread.start()
    try:
        for n in range(10):  # a late file in the merged hour, merged again
            late = rows(9000 + n, 1, NOV_27 + 5)
            write(root, [late])
            added.append(late[0].request_id)
            LogCompactor(LogStorage(root), clock_us=lambda: LATER).compact(min_age_s=0)
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert errors == []
    assert sorted(every_id(PredictionLogReader(root))) == sorted([*base, *added])


_KILLED_RUN = """
import sys, time
from loopml.adapters.prediction_log_compaction import LogCompactor
from loopml.adapters.prediction_log_files import LogStorage

def pause(step):
    if step == sys.argv[2]:
        print("paused", flush=True)
        time.sleep(60)

LogCompactor(LogStorage(sys.argv[1]), clock_us=lambda: int(sys.argv[3]), pause=pause).compact(
    min_age_s=0
)
"""


@pytest.mark.parametrize("step", ["merged", "deleted"])
def test_a_compaction_killed_midway_loses_and_doubles_nothing_and_is_finished_next(
    tmp_path: Path, hour_of_files: list[PredictionRecord], step: str
) -> None:
    root = str(tmp_path)
    expected = sorted(r.request_id for r in hour_of_files)
    run = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RUN, root, step, str(LATER)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert run.stdout is not None
        assert run.stdout.readline().strip() == "paused"
    finally:
        run.send_signal(signal.SIGKILL)
        run.communicate()
    reader = PredictionLogReader(root)
    assert sorted(every_id(reader)) == expected
    left = files_of(tmp_path)
    assert any("/compact-" in f for f in left)
    report = LogCompactor(LogStorage(root), clock_us=lambda: LATER).compact(min_age_s=0)
    if step == "merged":  # its parts were left behind, replaced: the next run deletes them
        assert report.finished == 12
    assert len(files_of(tmp_path)) == 2
    assert sorted(every_id(reader)) == expected


def test_a_compaction_killed_at_any_moment_is_safe(tmp_path: Path) -> None:
    root = str(tmp_path)
    write(root, [rows(i * 500, 500, NOV_27 + i) for i in range(40)])
    expected = sorted(every_id(PredictionLogReader(root)))
    for delay in (0.3, 0.6, 0.9, 1.2):
        run = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, root, "never", str(LATER)])
        time.sleep(delay)
        run.send_signal(signal.SIGKILL)
        run.wait()
        assert sorted(every_id(PredictionLogReader(root))) == expected
    LogCompactor(LogStorage(root), clock_us=lambda: LATER).compact(min_age_s=0)
    assert len(files_of(tmp_path)) == 1
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]  # no temp file left visible
    assert sorted(every_id(PredictionLogReader(root))) == expected


def test_expiry_removes_whole_hours_older_than_the_retention(
    tmp_path: Path, hour_of_files: list[PredictionRecord]
) -> None:
    compactor = LogCompactor(LogStorage(str(tmp_path)), clock_us=lambda: LATER)
    report = compactor.expire(before_us=NOV_27 + HOUR_US)  # hour 00 ended by then, 01 not
    assert report.totals("churn")["rows"] == 121  # 120 served rows and their label
    assert report.totals("churn")["folders"] == 2  # its predictions and its labels
    left = PredictionLogReader(str(tmp_path)).read("churn")
    assert left.num_rows == 30
    assert left["label_json"].null_count == 30
    assert not (tmp_path / "predictions/deployment=churn/date=2026-11-27/hour=00").exists()


@pytest.mark.s3
def test_compaction_on_an_object_store(s3_endpoint: S3Endpoint) -> None:
    root = f"s3://{s3_endpoint.bucket}/{uuid.uuid4().hex}"
    options = s3_endpoint.storage_options()
    made = [rows(i * 10, 10, NOV_27 + i) for i in range(6)]
    write(root, made, storage_options=options)
    reader = PredictionLogReader(root, options)
    before = reader.read("churn")
    storage = LogStorage(root, options)
    report = LogCompactor(storage, clock_us=lambda: LATER).compact(min_age_s=0)
    assert report.totals("churn")["files_before"] == 6
    assert report.totals("churn")["files_after"] == 1
    assert reader.read("churn").equals(before)
    folders = storage.folders("predictions/deployment=churn")
    assert [len(f.files) for f in folders] == [1]
    assert reader.get(made[2][3].request_id) is not None


# -- the command line, the retention rule and the lake tools ---------------------------------------


@pytest.fixture
def workspace_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    env = {**os.environ, "LOOPML_HOME": str(tmp_path / "ws"), "LOOPML_ACTOR": "ops"}
    for name in ("LOOPML_DB_URL", "LOOPML_ARTIFACTS", "LOOPML_SERVER"):
        env.pop(name, None)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for name in ("LOOPML_DB_URL", "LOOPML_ARTIFACTS", "LOOPML_SERVER"):
        monkeypatch.delenv(name, raising=False)
    return env


def loopml(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopml", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_compacts_expires_audits_and_exports_for_duckdb_and_polars(
    tmp_path: Path, workspace_env: dict[str, str]
) -> None:
    import duckdb
    import polars as pl

    artifacts = tmp_path / "ws" / "artifacts"
    assert loopml(workspace_env, "init").returncode == 0
    two_months_ago = time.time_ns() // 1000 - 60 * 24 * HOUR_US
    old = [rows(i * 10, 10, two_months_ago + i * 1000) for i in range(5)]
    now = time.time_ns() // 1000
    recent = [rows(100 + i * 10, 10, now - 3 * HOUR_US + i * 1000) for i in range(4)]
    write(str(artifacts), [*old, *recent])

    done = loopml(workspace_env, "log", "compact", "--retain", "30d", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["compacted"]["churn"]["files_before"] == 9
    assert report["compacted"]["churn"]["files_after"] == 2
    assert report["expired"]["churn"]["rows"] == 50
    audit = loopml(workspace_env, "audit", "log", "--action", "predictions.expired", "--json")
    events = json.loads(audit.stdout)
    assert [(e["entity"], e["actor"], e["after"]["rows"]) for e in events] == [
        ("workspace:predictions/churn", "ops", 50)
    ]

    out = tmp_path / "churn.parquet"
    exported = loopml(workspace_env, "predictions", "export", "churn", "--since", "1d", "-o",
                      str(out), "--json")  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["rows"] == 40
    assert pq.read_table(out).num_rows == 40

    # the log as it lies, read by others: plain hive-partitioned Parquet
    pattern = f"{artifacts}/predictions/deployment=*/date=*/hour=*/*.parquet"
    by_duckdb = duckdb.sql(
        f"select deployment, count(*) as n, count(distinct request_id) as ids "
        f"from read_parquet('{pattern}', hive_partitioning = true) group by deployment"
    ).fetchall()
    assert by_duckdb == [("churn", 40, 40)]
    by_polars = (
        pl.scan_parquet(pattern, hive_partitioning=True)
        .group_by("hour")
        .agg(pl.len().alias("n"))
        .collect()
    )
    assert by_polars["n"].sum() == 40


@pytest.mark.parametrize("name", ["../../victim", "..", "churn/../../victim", "nosuch"])
def test_a_deployment_name_never_reaches_outside_the_log(
    tmp_path: Path, workspace_env: dict[str, str], name: str
) -> None:
    artifacts = tmp_path / "ws" / "artifacts"
    assert loopml(workspace_env, "init").returncode == 0
    write(str(artifacts), [rows(0, 5, NOV_27)])
    # hour folders outside the log, where a path joined from the raw name could lead
    write(str(tmp_path / "victim"), [rows(5, 5, NOV_27)])
    write(str(artifacts / "victim"), [rows(10, 5, NOV_27)])
    before = sorted(p.name for p in tmp_path.rglob("*.parquet"))

    out = tmp_path / "out.parquet"
    exported = loopml(workspace_env, "predictions", "export", name, "-o", str(out))
    assert exported.returncode == 1
    assert f"no rows of deployment {name!r}" in exported.stderr
    assert "Deployments in the log: churn" in exported.stderr
    assert not out.exists()
    compacted = loopml(workspace_env, "log", "compact", "--deployment", name, "--retain", "1d",
                       "--min-age", "0s")  # fmt: skip
    assert compacted.returncode == 1
    assert f"nothing of deployment {name!r}" in compacted.stderr
    assert "Traceback" not in exported.stderr + compacted.stderr
    assert sorted(p.name for p in tmp_path.rglob("*.parquet")) == before  # nothing removed


def test_a_retention_shorter_than_a_monitors_window_is_refused(
    tmp_path: Path, workspace_env: dict[str, str]
) -> None:
    from loopml.bootstrap import log_upkeep, open_workspace
    from loopml.errors import InvalidInput

    write(str(tmp_path / "ws" / "artifacts"), [rows(0, 5, NOV_27)])
    ws = open_workspace()
    try:
        ws.monitors.save("churn-up", project="default", deployment="churn", reference=None,
                         summary_digest=None, window_s=7 * 86_400, every_s=60,
                         probe_url="http://127.0.0.1:9")  # fmt: skip
        with pytest.raises(InvalidInput, match=r"shorter than the 7d window of monitor"):
            log_upkeep(ws).run(retain_s=86_400)
    finally:
        ws.close()
    assert files_of(tmp_path / "ws" / "artifacts")  # nothing removed


def test_bad_durations_are_refused_with_the_fix(workspace_env: dict[str, str]) -> None:
    refused = loopml(workspace_env, "log", "compact", "--retain", "ninety days")
    assert refused.returncode == 1
    assert "is not a duration" in refused.stderr
    assert "Traceback" not in refused.stderr
    refused = loopml(workspace_env, "predictions", "export", "churn", "-o", "/nonexistent/x.pq")
    assert refused.returncode == 1
    assert "existing folder" in refused.stderr


def test_labels_days_late_still_join_and_a_label_for_an_expired_hour_is_refused(
    tmp_path: Path,
) -> None:
    import asyncio

    from loopml.serving.feedback import RecentIds, check_served
    from loopml.serving.frames import RequestError

    root = str(tmp_path)
    old, recent = rows(0, 5, NOV_27), rows(5, 5, NOV_27 + 48 * HOUR_US)
    write(root, [old, recent])
    writer = PredictionLogWriter(root, flush_interval_s=60.0)
    three_days_on = NOV_27 + 72 * HOUR_US
    writer.append_feedback([FeedbackRecord(old[1].request_id, three_days_on, "churn", "1")])
    writer.close()
    compactor = LogCompactor(LogStorage(root), clock_us=lambda: LATER)
    compactor.compact(min_age_s=0)
    reader = PredictionLogReader(root)
    day_one = reader.read("churn", since_us=NOV_27, until_us=NOV_27 + HOUR_US)
    assert day_one["label_json"].to_pylist() == [None, "1", None, None, None]

    compactor.expire(before_us=NOV_27 + 24 * HOUR_US)  # Nov 27's rows go; the later ones stay

    class Log:
        settle_s = 2.0
        served_ids = reader.served_ids

    def check(request_id: str) -> None:
        asyncio.run(check_served(RecentIds(), Log(), "churn", [request_id], clock_s=lambda: LATER))

    check(recent[0].request_id)  # still in the log: its label is taken
    with pytest.raises(RequestError, match="never served") as refused:
        check(old[0].request_id)
    assert refused.value.status == 404


def test_a_late_label_sits_in_its_requests_hour_and_expires_with_it(tmp_path: Path) -> None:
    root = str(tmp_path)
    ten = NOV_27 + 10 * HOUR_US
    served = rows(0, 3, ten)
    untimed = PredictionRecord("r-older-loopml", ten + HOUR_US, "churn", "churn-model", 3, "{}",
                               "1", 100, "", False)  # fmt: skip
    write(root, [[*served, untimed]])
    writer = PredictionLogWriter(root, flush_interval_s=60.0)
    writer.append_feedback(
        [
            FeedbackRecord(served[0].request_id, ten + 72 * HOUR_US, "churn", '"yes"'),
            FeedbackRecord("r-older-loopml", ten + 41 * HOUR_US, "churn", '"no"'),
        ]
    )
    writer.close()
    assert [f.rsplit("/", 1)[0] for f in files_of(tmp_path, "feedback")] == [
        "feedback/deployment=churn/date=2026-11-27/hour=10",  # three days late, in its hour
        "feedback/deployment=churn/date=2026-11-29/hour=03",  # an id without a time: as it came
    ]
    # an older log's label, in the day folder of the day it came, still joins
    legacy = tmp_path / "feedback" / "deployment=churn" / "date=2026-11-30"
    legacy.mkdir()
    came = {"request_id": [served[1].request_id], "time_us": [ten + 80 * HOUR_US]}
    pq.write_table(pa.table({**came, "label_json": ['"no"']}), legacy / "part-1-old.parquet")
    # a read of hour 10 opens no other hour's labels: an unreadable file elsewhere is not read
    elsewhere = tmp_path / "feedback" / "deployment=churn" / "date=2026-11-28" / "hour=20"
    elsewhere.mkdir(parents=True)
    (elsewhere / "part-2-torn.parquet").write_bytes(b"not parquet")
    reader = PredictionLogReader(root)
    hour = reader.read("churn", since_us=ten, until_us=ten + HOUR_US)
    assert hour["label_json"].to_pylist() == ['"yes"', '"no"', None]
    assert reader.get(served[0].request_id)["label_json"] == '"yes"'  # type: ignore[index]
    (elsewhere / "part-2-torn.parquet").unlink()  # an id without a time reads every later hour
    later = reader.read("churn", since_us=ten + HOUR_US, until_us=ten + 2 * HOUR_US)
    assert later["label_json"].to_pylist() == ['"no"']

    LogCompactor(LogStorage(root), clock_us=lambda: LATER).expire(before_us=ten + HOUR_US)
    assert reader.get(served[0].request_id) is None
    left = files_of(tmp_path, "feedback")
    assert not any("date=2026-11-27" in name for name in left)  # gone with its predictions
    assert reader.read("churn", since_us=ten, until_us=ten + HOUR_US).num_rows == 0


def test_the_team_servers_schedule_compacts_and_expires_the_log(
    make_settings: Callable[..., Any], postgres_database: str
) -> None:
    from loopml.testing.team_server import live_server, postgres_schema_url

    settings = make_settings(postgres_schema_url(postgres_database), log_retain_s=30 * 86_400)
    now = time.time_ns() // 1000
    old = [rows(i * 10, 10, now - 60 * 24 * HOUR_US + i) for i in range(3)]
    recent = [rows(100 + i * 10, 10, now - 3 * HOUR_US + i) for i in range(4)]
    write(settings.artifacts_url, [*old, *recent])
    root = Path(settings.artifacts_url)
    with live_server(settings, admin="tester", schedule_s=0.2) as server:
        deadline = time.monotonic() + 30
        while len(files_of(root)) != 1:
            assert time.monotonic() < deadline, f"not compacted: {files_of(root)}"
            time.sleep(0.2)
        events = server.workspace.audit.log(entity="workspace:predictions/churn")
    assert [(e.action, e.after and e.after["rows"]) for e in events] == [
        ("predictions.expired", 30)
    ]
    assert len(every_id(PredictionLogReader(str(root)))) == 40


def test_labels_coming_late_to_a_merged_hour_are_merged_beside_it_not_into_it(
    tmp_path: Path,
) -> None:
    root = str(tmp_path)
    served = rows(0, 20_000, NOV_27)  # a merged hour far larger than a small file's footer
    write(root, [served])
    writer = PredictionLogWriter(root, flush_interval_s=60.0)

    def label(first: int, count: int, hours_late: int) -> None:
        came = NOV_27 + hours_late * HOUR_US
        labels = [FeedbackRecord(r.request_id, came, "churn", '"yes"') for r in served]
        writer.append_feedback(labels[first : first + count])
        writer.flush()

    for batch in range(6):  # the hour's labels, as they came in its first hours
        label(batch * 2_000, 2_000, batch + 1)
    compactor = LogCompactor(LogStorage(root), clock_us=lambda: LATER)
    compactor.compact(min_age_s=0)
    (hour,) = files_of(tmp_path, "feedback")
    for day in range(1, 4):  # a few labels days late, one file a day, merged daily
        label(12_000 + day * 10, 10, 24 * day)
        label(12_500 + day * 10, 10, 24 * day + 1)
        compactor.compact(min_age_s=0)
        assert hour in files_of(tmp_path, "feedback")  # the hour's file is not rewritten
    assert len(files_of(tmp_path, "feedback")) == 2
    label(15_000, 5_000, 100)  # then more than a quarter of the hour's labels: one file again
    compactor.compact(min_age_s=0)
    assert len(files_of(tmp_path, "feedback")) == 1
    writer.close()
    labelled = PredictionLogReader(root).read("churn")["label_json"].drop_null()
    assert len(labelled) == 12_000 + 60 + 5_000
