"""Where the prediction log's files are, and which of them hold its rows.

Layout under the root URL (a local folder, or an fsspec URL such as `s3://bucket/prefix`):

    predictions/deployment=<name>/date=<YYYY-MM-DD>/hour=<HH>/<file>.parquet
    predictions/_event_time/deployment=<name>/served=<YYYY-MM-DD>/hour=<HH>/date=<YYYY-MM-DD>/...
    feedback/deployment=<name>/date=<YYYY-MM-DD>/hour=<HH>/<file>.parquet

`<name>` is URI-quoted; `date` and `hour` are the UTC day and hour a row was served, `served`
the same for rows that carry an event time, whose `date` is then the event's day (see
`loopml.adapters.prediction_log`). A label sits in the hour its request was made, which its
UUIDv7 request id carries (`request_times_us`), however late it came: a read joins the labels of
an hour's rows from that hour's folders alone, and a label expires with its prediction. A label
of an id without a time (an older loopml's) sits in the hour it came.
Logs written before hour folders existed keep their files in the day folder itself
(`date=<day>/part-...`), labels by the day they came; those read as one partition of a day.

A folder holds two kinds of file: `part-<time_us>-<uuid>.parquet`, written by a server process
at each flush, and `compact-<time_us>-<uuid>.parquet`, written by compaction
(`loopml.adapters.prediction_log_compaction`), which merges other files of its folder and names
them in its footer (`loopml.replaces`). The rows of a folder are those of its files that no
compact file beside them replaces. A compact file appears whole (a rename, or one PUT) before
the files it replaces are deleted, so a reader sees every row once, whenever it lists the
folder; a file deleted between a listing and its reading makes the reader list again
(`read_live`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, unquote

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds

from loopml.adapters.local_files import fsync_dir, local_root, remote_fs
from loopml.domain.request_ids import UUID7_TEXT
from loopml.errors import IntegrityError, Unavailable

PREDICTIONS_DIR = "predictions"
EVENT_TIME_DIR = f"{PREDICTIONS_DIR}/_event_time"
"""Predictions that carry an event time, by serving day and hour, then by event day."""
FEEDBACK_DIR = "feedback"
KINDS = (PREDICTIONS_DIR, EVENT_TIME_DIR, FEEDBACK_DIR)
REPLACES = b"loopml.replaces"
"""The footer key of a compact file: the JSON list of the files of its folder it replaces."""
COMPACT_PREFIX = "compact-"
SCHEMAS_DIR = "_schemas"
"""Under `predictions/deployment=<name>/`: one small Arrow schema file per set of typed input
columns the deployment's rows were written with (named by its digest, so writers in several
processes write the same file, never a different one); a reader takes their union."""
HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
READ_ATTEMPTS = 5
"""How many times a read lists again after a file went away under it (compaction, expiry)."""

Keys = Mapping[str, str]
"""The partition keys along a folder's path (`date`, `hour`, `served`) and their values."""
Keep = Callable[[Keys], bool]
T = TypeVar("T")


def partition_dir(kind: str, deployment: str) -> str:
    """`<kind>/deployment=<quoted name>`, relative to the root."""
    return f"{kind}/deployment={quote(deployment, safe='')}"


def day_of(time_us: int) -> str:
    return datetime.fromtimestamp(time_us // 1_000_000, UTC).strftime("%Y-%m-%d")


def start_us(day: str, hour: str | None = None) -> int:
    """The first microsecond of UTC `day` (YYYY-MM-DD), or of its `hour` (HH)."""
    midnight = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    return int(midnight.timestamp()) * 1_000_000 + (int(hour) * HOUR_US if hour else 0)


def _span(day: str | None, hour: str | None) -> tuple[int, int] | None:
    """The time range a `date` (and `hour`) folder holds; None for a name that is not one."""
    if day is None:
        return None
    try:
        start = start_us(day, hour)
    except ValueError:  # a folder another tool made
        return None
    return start, start + (HOUR_US if hour else DAY_US)


def _overlaps(span: tuple[int, int] | None, since_us: int | None, until_us: int | None) -> bool:
    if span is None:
        return True  # never skip what cannot be dated
    return (until_us is None or span[0] < until_us) and (since_us is None or span[1] > since_us)


def served_between(since_us: int | None, until_us: int | None, *, day_key: str = "date") -> Keep:
    """Folders that may hold rows served (or labels that came) in `[since_us, until_us)`;
    `day_key` is `served` in the event-time tree, whose `date` is the event's day."""

    def keep(keys: Keys) -> bool:
        return _overlaps(_span(keys.get(day_key), keys.get("hour")), since_us, until_us)

    return keep


def labels_between(since_us: int, until_us: int | None) -> Keep:
    """Feedback folders that may hold labels of requests made in `[since_us, until_us)` (all
    made since `since_us` when `until_us` is None): the hour folders of those requests, and
    every day folder of an older log from `since_us` on, where labels sit by the day they came.
    """

    def keep(keys: Keys) -> bool:
        hour = keys.get("hour")
        span = _span(keys.get("date"), hour)
        return _overlaps(span, since_us, until_us if hour else None)

    return keep


def request_times_us(request_ids: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The time (epoch microseconds) each UUIDv7 request id carries; null for an id that is not
    one. Vectorised: the valid ids are 36 ASCII bytes each, so their text is one byte matrix
    whose 12 hex digits of the time are read as one number per row."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = request_ids.combine_chunks() if isinstance(request_ids, pa.ChunkedArray) else request_ids
    if ids.type != pa.string():
        ids = ids.cast(pa.string())
    valid = pc.fill_null(pc.match_substring_regex(ids, UUID7_TEXT, ignore_case=True), False)
    timed = valid.to_numpy(zero_copy_only=False)
    times = np.zeros(len(ids), np.int64)
    if timed.any():
        picked = ids if timed.all() else ids.filter(valid)
        first = np.frombuffer(picked.buffers()[1], np.int32, 1, picked.offset * 4)[0]
        text = np.frombuffer(picked.buffers()[2], np.uint8, len(picked) * 36, first)
        digits = _hex_values()[text.reshape(-1, 36)[:, _TIME_DIGITS]]
        times[timed] = (digits @ 16.0 ** np.arange(11, -1, -1)).astype(np.int64) * 1000
    return pa.array(times, pa.int64(), mask=~timed)


def all_timed(request_ids: pa.ChunkedArray) -> bool:
    """Whether every id is a UUIDv7, so carries the time its request was made."""
    import pyarrow.compute as pc

    valid = pc.match_substring_regex(request_ids, UUID7_TEXT, ignore_case=True)
    return valid.null_count == 0 and bool(pc.all(valid).as_py())


_TIME_DIGITS = [*range(8), *range(9, 13)]
"""Where a UUIDv7's 48-bit millisecond time sits in its text (`tttttttt-tttt-7...`)."""


@functools.cache
def _hex_values() -> Any:
    """The value of each hex digit (either case), indexed by its byte, as floats: twelve digits
    make at most 2**48, exact in a float64, so the digits meet their weights in one matrix
    product."""
    import numpy as np

    table = np.zeros(256, np.float64)
    for value, digit in enumerate(b"0123456789abcdef"):
        table[digit] = value
    for value, digit in enumerate(b"ABCDEF", start=10):
        table[digit] = value
    return table


def events_between(since_us: int | None, until_us: int | None) -> Keep:
    """Folders of the event-time tree that may hold rows whose event lies in the range."""

    def keep(keys: Keys) -> bool:
        return _overlaps(_span(keys.get("date"), None), since_us, until_us)

    return keep


def everything(keys: Keys) -> bool:
    return True


@dataclass(frozen=True)
class Folder:
    """A folder of the log that holds files, with the partition keys its path names."""

    relative: str
    keys: Keys
    files: tuple[str, ...]
    """Its Parquet files, by name, oldest first (names start with their time)."""
    scratch: tuple[str, ...] = ()
    """Unfinished files of a compaction that was killed while writing (readers skip them)."""

    @property
    def served_span(self) -> tuple[int, int] | None:
        """When the folder's rows were served (or labels came): an hour, or a day for a folder
        written before hour folders (None: a name loopml did not make)."""
        return _span(self.keys.get("served", self.keys.get("date")), self.keys.get("hour"))

    def path(self, name: str) -> str:
        return f"{self.relative}/{name}"


class LogStorage:
    """Where the log lives: plain os calls for a local folder, fsspec for any other URL."""

    def __init__(self, root_url: str, storage_options: dict[str, Any] | None = None) -> None:
        folder = local_root(root_url)
        self.fs: Any = None
        if folder is not None:
            self.root = folder
        else:
            self.fs, root = remote_fs(root_url, storage_options)
            self.root = root.rstrip("/")
        self._options = storage_options or {}
        self._replaced: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()
        self._schemas_written: set[str] = set()
        self._typed: dict[tuple[str, tuple[str, ...]], pa.Schema] = {}

    @functools.cached_property
    def reading_fs(self) -> Any:
        """The filesystem Arrow reads Parquet through: its own S3 client for an S3-compatible
        endpoint (3 to 5 times faster than fsspec's, measured on SeaweedFS: many small requests
        for footers and row groups), else the fsspec one (None: a local folder)."""
        if self.fs is None or "s3" not in _protocols(self.fs):
            return self.fs
        endpoint = (self._options.get("client_kwargs") or {}).get("endpoint_url")
        known = {"key", "secret", "token", "client_kwargs", "use_listings_cache"}
        if not endpoint or set(self._options) - known:
            return self.fs  # AWS itself, or options Arrow's client does not take: fsspec's
        import pyarrow.fs as pafs

        scheme, _, host = str(endpoint).partition("://")
        return pafs.S3FileSystem(
            access_key=self._options.get("key"),
            secret_key=self._options.get("secret"),
            session_token=self._options.get("token"),
            endpoint_override=host.rstrip("/"),
            scheme=scheme,
            region=(self._options.get("client_kwargs") or {}).get("region_name") or "us-east-1",
        )

    def path(self, relative: str) -> str:
        return f"{self.root.rstrip('/')}/{relative}"

    def isdir(self, relative: str) -> bool:
        if self.fs is None:
            return os.path.isdir(self.path(relative))
        self.fs.invalidate_cache()  # s3fs keeps listings of children: drop them all
        return bool(self.fs.isdir(self.path(relative)))

    def listdir(self, relative: str) -> list[tuple[str, bool]]:
        """The names in folder `relative`, each with whether it is a folder; [] when missing."""
        if self.fs is None:
            try:
                with os.scandir(self.path(relative)) as entries:
                    return [(e.name, e.is_dir()) for e in entries]
            except (FileNotFoundError, NotADirectoryError):
                return []
        self.fs.invalidate_cache()
        try:
            found = self.fs.ls(self.path(relative), detail=True)
        except FileNotFoundError:
            return []
        return [
            (str(e["name"]).rstrip("/").rsplit("/", 1)[-1], e["type"] == "directory") for e in found
        ]

    def put(self, relative: str, data: bytes) -> None:
        """Store `data` at `relative`, atomically: readers see all of it or nothing."""
        if self.fs is not None:
            self.fs.pipe_file(self.path(relative), data)  # one PUT
            return
        with self.writing(relative) as local, open(local, "wb") as out:
            out.write(data)

    @contextlib.contextmanager
    def writing(self, relative: str) -> Iterator[str]:
        """A local path to write a new file at; when the block ends without error the file
        appears at `relative` whole (fsynced and renamed, or uploaded in one PUT)."""
        if self.fs is None:
            final = self.path(relative)
            folder, name = os.path.split(final)
            os.makedirs(folder, exist_ok=True)
            tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")  # readers skip it
            try:
                yield tmp
                _fsync(tmp)
                os.replace(tmp, final)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            fsync_dir(folder)
            return
        with tempfile.TemporaryDirectory(prefix="loopml-log-") as scratch:
            local = os.path.join(scratch, "file.parquet")
            yield local
            self.fs.put_file(local, self.path(relative))  # one PUT, or a completed multipart

    def delete(self, relative: str) -> None:
        """Remove file `relative` (nothing if it is gone already)."""
        with contextlib.suppress(FileNotFoundError):
            if self.fs is None:
                os.unlink(self.path(relative))
            else:
                self.fs.rm_file(self.path(relative))
        self._replaced.pop(relative, None)

    def remove_empty(self, relative: str) -> None:
        """Remove folder `relative` and its parents up to the root while they are empty
        (object stores have no folders to remove)."""
        if self.fs is not None:
            return
        folder = self.path(relative)
        while os.path.abspath(folder) != os.path.abspath(self.root):
            try:
                os.rmdir(folder)
            except OSError:  # not empty, or gone
                return
            folder = os.path.dirname(folder)

    def size(self, relative: str) -> int:
        if self.fs is None:
            return os.path.getsize(self.path(relative))
        return int(self.fs.size(self.path(relative)))

    def dataset(self, paths: Sequence[str], schema: pa.Schema) -> ds.Dataset:
        """The Parquet files `paths` (full paths, from `path`) as one dataset of `schema` (a
        file without a column, written before it existed, reads it as null)."""
        import pyarrow.dataset as ds

        return ds.dataset(list(paths), schema=schema, format="parquet",
                          filesystem=self.reading_fs)  # fmt: skip

    def rows_in(self, paths: Sequence[str]) -> int:
        """How many rows the Parquet files `paths` hold, from their footers."""
        import pyarrow.parquet as pq

        return sum(pq.read_metadata(p, filesystem=self.reading_fs).num_rows for p in paths)

    def replaced_by(self, relative: str) -> frozenset[str]:
        """The files the compact file `relative` replaces (remembered: files never change)."""
        known = self._replaced.get(relative)
        if known is not None:
            return known
        import pyarrow.parquet as pq

        found = pq.read_metadata(self.path(relative), filesystem=self.reading_fs)
        metadata = found.metadata or {}
        names = frozenset(json.loads(metadata.get(REPLACES, b"[]")))
        with self._lock:
            if len(self._replaced) > 100_000:
                self._replaced.clear()
            self._replaced[relative] = names
        return names

    # -- typed columns ------------------------------------------------------------------------

    def add_typed(self, deployment: str, typed: pa.Schema) -> None:
        """Record that `deployment` has rows with the typed columns `typed` (inputs, output,
        probabilities; once per process and set of columns)."""
        data = typed.serialize().to_pybytes()
        name = f"{hashlib.sha256(data).hexdigest()[:32]}.arrow"
        relative = f"{partition_dir(PREDICTIONS_DIR, deployment)}/{SCHEMAS_DIR}/{name}"
        if relative in self._schemas_written:
            return
        self.put(relative, data)
        self._schemas_written.add(relative)

    def typed(self, deployment: str) -> pa.Schema:
        """The typed columns `deployment`'s rows were written with, all versions' together
        (a column typed differently by two versions reads as float64 when both are numbers,
        else as text; files without a column read it as null)."""
        import pyarrow as pa

        folder = f"{partition_dir(PREDICTIONS_DIR, deployment)}/{SCHEMAS_DIR}"
        names = sorted(name for name, is_dir in self.listdir(folder) if name.endswith(".arrow"))
        if not names:
            return pa.schema([])
        key = (deployment, tuple(names))
        known = self._typed.get(key)
        if known is None:
            from loopml.adapters.prediction_log_typed import union_typed  # imports Arrow

            schemas = [self._read_schema(f"{folder}/{name}") for name in names]
            known = self._typed[key] = union_typed(schemas)
        return known

    def _read_schema(self, relative: str) -> pa.Schema:
        import pyarrow as pa
        import pyarrow.ipc

        try:
            return pyarrow.ipc.read_schema(pa.py_buffer(self.read_bytes(relative)))
        except pa.ArrowInvalid:
            raise IntegrityError(
                f"The prediction log's record of typed columns {self.path(relative)} cannot be "
                "read (cut short or damaged), so no read or merge of that deployment's rows "
                "can know all their columns; nothing was read or changed.",
                "Move the file out of the _schemas folder: each server process writes its "
                "record again with its first rows, and `loopml log compact` records the columns "
                "of the files it merges.",
            ) from None

    def read_bytes(self, relative: str) -> bytes:
        if self.fs is None:
            with open(self.path(relative), "rb") as file:
                return file.read()
        return bytes(self.fs.cat_file(self.path(relative)))

    # -- finding the files ---------------------------------------------------------------------

    def folders(self, relative: str, keep: Keep = everything) -> list[Folder]:
        """The folders under `relative` (itself included) that hold Parquet files and whose
        partition keys `keep` accepts at every level, in path order."""
        found: list[Folder] = []
        self._walk(relative, {}, keep, found)
        return found

    def _walk(self, relative: str, keys: Keys, keep: Keep, found: list[Folder]) -> None:
        entries = sorted(self.listdir(relative))
        files = tuple(
            name
            for name, is_dir in entries
            if not is_dir and name.endswith(".parquet") and not name.startswith((".", "_"))
        )
        scratch = tuple(
            name for name, is_dir in entries if not is_dir and name.startswith(f".{COMPACT_PREFIX}")
        )
        if files or scratch:
            found.append(Folder(relative, dict(keys), files, scratch))
        for name, is_dir in entries:
            if not is_dir or name.startswith((".", "_")) or "=" not in name:
                continue
            key, value = name.split("=", 1)
            deeper = {**keys, key: unquote(value)}
            if keep(deeper):
                self._walk(f"{relative}/{name}", deeper, keep, found)

    def deployments(self, kind: str) -> list[str]:
        """The deployments with a folder under `kind`."""
        return [
            unquote(name.split("=", 1)[1])
            for name, is_dir in sorted(self.listdir(kind))
            if is_dir and name.startswith("deployment=")
        ]

    def live(self, folder: Folder) -> list[str]:
        """The files of `folder` that hold its rows: all but those a compact file replaces."""
        if len(folder.files) < 2:  # nothing to replace: no footer to read
            return list(folder.files)
        replaced: set[str] = set()
        for name in folder.files:
            if name.startswith(COMPACT_PREFIX):
                replaced |= self.replaced_by(folder.path(name))
        return [name for name in folder.files if name not in replaced]

    def read_live(self, find: Callable[[], Sequence[Folder]], read: Callable[[list[str]], T]) -> T:
        """`read(paths)` of the live files of the folders `find()` lists, listed again when a
        file went away between the listing and the reading (a compaction, or an expiry)."""
        for _ in range(READ_ATTEMPTS):
            try:
                paths = [self.path(f.path(n)) for f in find() for n in self.live(f)]
                return read(paths)
            except FileNotFoundError:
                continue
        raise Unavailable(
            f"The prediction log at {self.root} kept changing while it was read.",
            "Try again; if it persists, check that one compaction runs at a time.",
        )


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = getattr(fs, "protocol", ())
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
