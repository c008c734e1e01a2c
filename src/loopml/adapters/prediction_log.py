"""The durable prediction log: the model server appends, a background thread writes Parquet.

Layout under the root URL (a local folder, or an fsspec URL such as `s3://bucket/prefix`):

    predictions/deployment=<name>/date=<YYYY-MM-DD>/part-<time_us>-<uuid>.parquet
    feedback/deployment=<name>/date=<YYYY-MM-DD>/part-<time_us>-<uuid>.parquet

`<name>` is URI-quoted and `date` is the UTC day of each record's own `time_us`, so one flush may
write several files. The `deployment` column lives in the path only.

A file appears complete or not at all: locally it is written to a dot-file beside its final name
(readers skip dot-files), fsynced, then `os.replace`d; on an object store it is one PUT.

`append` never blocks on I/O and never raises: rows go to a bounded queue and, when it is full,
are dropped and counted. A write that fails keeps its rows queued and is retried on the next tick.
The appending side takes one lock the writer never needs, so `close()` may be called from a
signal handler (but not while the same thread is inside `flush()`).
"""

from __future__ import annotations

import contextlib
import logging
import operator
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loopml.adapters.local_files import fsync_dir, local_root, new_file
from loopml.errors import Unavailable

PREDICTIONS_DIR = "predictions"
FEEDBACK_DIR = "feedback"
PREDICTION_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("time_us", pa.int64()),
        ("deployment", pa.string()),
        ("model", pa.string()),
        ("model_version", pa.int64()),
        ("inputs_json", pa.string()),
        ("output_json", pa.string()),
        ("latency_us", pa.int64()),
        ("flags", pa.string()),
        ("shadow", pa.bool_()),
        ("proba_json", pa.string()),
    ]
)
FEEDBACK_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("time_us", pa.int64()),
        ("deployment", pa.string()),
        ("label_json", pa.string()),
    ]
)
_POLL_S = 0.05
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One served row. `flags` is comma-separated (may be empty); `shadow` marks a shadow model."""

    request_id: str
    time_us: int
    deployment: str
    model: str
    model_version: int
    inputs_json: str
    output_json: str
    latency_us: int
    flags: str
    shadow: bool
    proba_json: str | None = None
    """Class probabilities the model gave, when the server computed them (else null)."""


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """The true label of a served request, known later."""

    request_id: str
    time_us: int
    deployment: str
    label_json: str


Record = TypeVar("Record", PredictionRecord, FeedbackRecord)


def now_us() -> int:
    """Epoch microseconds, UTC."""
    return time.time_ns() // 1000


def partition_dir(kind: str, deployment: str) -> str:
    """`<kind>/deployment=<quoted name>`, relative to the root."""
    return f"{kind}/deployment={quote(deployment, safe='')}"


class LogStorage:
    """Where the log lives: plain os calls for a local folder, fsspec for any other URL."""

    def __init__(self, root_url: str, storage_options: dict[str, Any] | None = None) -> None:
        folder = local_root(root_url)
        self.fs: Any = None
        if folder is not None:
            self.root = folder
        else:
            from fsspec.core import url_to_fs

            self.fs, root = url_to_fs(root_url, **(storage_options or {}))
            self.root = str(root).rstrip("/")

    def path(self, relative: str) -> str:
        return f"{self.root.rstrip('/')}/{relative}"

    def isdir(self, relative: str) -> bool:
        if self.fs is None:
            return os.path.isdir(self.path(relative))
        self.fs.invalidate_cache()  # s3fs keeps listings of children: drop them all
        return bool(self.fs.isdir(self.path(relative)))

    def put(self, relative: str, data: bytes) -> None:
        """Store `data` at `relative`, atomically: readers see all of it or nothing."""
        if self.fs is not None:
            self.fs.pipe_file(self.path(relative), data)  # one PUT
            return
        final = self.path(relative)
        folder, name = os.path.split(final)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
        try:
            with new_file(tmp) as fd:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_dir(folder)


def _to_table(batch: Sequence[Record], schema: pa.Schema) -> pa.Table:
    """An Arrow table built column by column from the records' attributes."""
    columns = {name: list(map(operator.attrgetter(name), batch)) for name in schema.names}
    return pa.table(columns, schema=schema)


@dataclass(frozen=True)
class _Partition:
    deployment: str
    date: str
    mask: pa.Array


def _partitions(table: pa.Table) -> list[_Partition]:
    """The (deployment, UTC date) groups of `table`, each with its row mask."""
    days = pc.cast(pc.cast(table["time_us"], pa.timestamp("us")), pa.date32())
    keys = pc.binary_join_element_wise(table["deployment"], days.cast(pa.string()), "\x00")
    groups = []
    for key in pc.unique(keys).to_pylist():
        deployment, date = str(key).rsplit("\x00", 1)
        groups.append(_Partition(deployment, date, pc.equal(keys, key)))
    return groups


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())


def _rows_of(batch: Sequence[Record], groups: Sequence[_Partition]) -> list[Record]:
    """The records of `batch` that fall in any of `groups`, in order."""
    keep = np.zeros(len(batch), dtype=bool)
    for group in groups:
        keep |= group.mask.to_numpy(zero_copy_only=False)
    return [batch[int(index)] for index in np.flatnonzero(keep)]


class PredictionLogWriter:
    """Appends prediction and feedback records; a daemon thread writes them as Parquet files."""

    def __init__(
        self,
        root_url: str,
        storage_options: dict[str, Any] | None = None,
        *,
        max_queue_rows: int = 100_000,
        flush_interval_s: float = 1.0,
        flush_rows: int = 10_000,
        clock_us: Callable[[], int] = now_us,
    ) -> None:
        self._storage = LogStorage(root_url, storage_options)
        self._max_queue_rows, self._flush_rows = max_queue_rows, flush_rows
        self._flush_interval_s, self._clock_us = flush_interval_s, clock_us
        self._predictions: list[PredictionRecord] = []
        self._feedback: list[FeedbackRecord] = []
        self._append_lock = threading.Lock()  # appenders only: the writer never takes it
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._closed, self._healthy = False, True
        self._dropped_rows = self._invalid_rows = 0
        self._written_rows = self._write_errors = self._files_written = 0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    # -- appending --------------------------------------------------------------------------------

    def append(self, records: Sequence[PredictionRecord]) -> int:
        """Queue `records` without blocking on I/O; returns how many were accepted."""
        return self._enqueue(self._predictions, records)

    def append_feedback(self, records: Sequence[FeedbackRecord]) -> int:
        """Queue feedback `records` without blocking on I/O; returns how many were accepted."""
        return self._enqueue(self._feedback, records)

    def _enqueue(self, queue: list[Record], records: Sequence[Record]) -> int:
        with self._append_lock:
            room = 0 if self._closed else max(0, self._max_queue_rows - self._depth())
            accepted = min(room, len(records))
            queue.extend(records[:accepted])
            self._dropped_rows += len(records) - accepted
        return accepted

    def _depth(self) -> int:
        return len(self._predictions) + len(self._feedback)

    # -- flushing ---------------------------------------------------------------------------------

    def flush(self, timeout_s: float = 10.0) -> None:
        """Write everything queued now; Unavailable if the store refused it for `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while not self._write_pending(max(0.0, deadline - time.monotonic())):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Unavailable(
                    f"The prediction log at {self._storage.root} could not be written within "
                    f"{timeout_s:g} s; {self._depth()} rows stay queued.",
                    "Check that the folder or object store is writable and reachable; the "
                    "writer retries on its own, and flushing again is safe.",
                )
            time.sleep(min(remaining, 0.1))

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush and stop the writer thread; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(timeout_s)
        try:
            self.flush(timeout_s)
        except Unavailable as exc:
            _log.error("Prediction log closed with rows unwritten: %s", exc)

    def stats(self) -> dict[str, int]:
        return {
            "queue_depth": self._depth(),
            "dropped_rows": self._dropped_rows + self._invalid_rows,
            "written_rows": self._written_rows,
            "write_errors": self._write_errors,
            "files_written": self._files_written,
        }

    # -- the writer thread ------------------------------------------------------------------------

    def _run(self) -> None:
        last_attempt = time.monotonic()
        while not self._stop.wait(_POLL_S):
            due = time.monotonic() - last_attempt >= self._flush_interval_s
            if due or (self._healthy and self._depth() >= self._flush_rows):
                last_attempt = time.monotonic()
                try:
                    self._healthy = self._write_pending(self._flush_interval_s)
                except Exception:  # the thread must outlive any bug in one write
                    _log.exception("Prediction log writer tick failed")
                    self._healthy = False

    def _write_pending(self, timeout_s: float) -> bool:
        """Write all queued rows; False if some could not be written (they stay queued)."""
        if not self._write_lock.acquire(timeout=timeout_s):
            return False
        try:
            predictions = self._drain(self._predictions, PREDICTIONS_DIR, PREDICTION_SCHEMA)
            feedback = self._drain(self._feedback, FEEDBACK_DIR, FEEDBACK_SCHEMA)
            return predictions and feedback
        finally:
            self._write_lock.release()

    def _drain(self, queue: list[Record], kind: str, schema: pa.Schema) -> bool:
        batch = queue[:]  # appenders only ever extend: this prefix stays put
        if not batch:
            return True
        leftover = self._write_batch(batch, kind, schema)
        queue[: len(batch)] = leftover
        return not leftover

    def _write_batch(self, batch: list[Record], kind: str, schema: pa.Schema) -> list[Record]:
        """Write `batch`, one file per partition; returns the records not written."""
        try:
            table = _to_table(batch, schema)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            _log.error("Dropped %d %s rows that do not fit the schema: %s", len(batch), kind, exc)
            self._invalid_rows += len(batch)  # the writer's own counter: no lock to share
            self._write_errors += 1
            return []
        groups = _partitions(table)
        for index, group in enumerate(groups):
            try:
                self._write_partition(kind, table, group)
            except Exception as exc:
                _log.warning("Prediction log write failed, will retry: %s", exc)
                self._write_errors += 1
                return _rows_of(batch, groups[index:])
        return []

    def _write_partition(self, kind: str, table: pa.Table, group: _Partition) -> None:
        rows = table.filter(group.mask).drop_columns(["deployment"])
        name = f"part-{self._clock_us()}-{uuid.uuid4().hex}.parquet"
        relative = f"{partition_dir(kind, group.deployment)}/date={group.date}/{name}"
        self._storage.put(relative, _parquet_bytes(rows))
        self._written_rows += rows.num_rows
        self._files_written += 1
