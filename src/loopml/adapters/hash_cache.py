"""Remembered digests of local files, so adding an unchanged file again never reads it.

One SQLite table maps a file's absolute path to the (size, mtime_ns, inode) it had when it was
hashed, and the digest. A file whose size, mtime or inode differs is a miss. WAL mode and a busy
timeout let several CLI processes share the file.

Like git's "racy clean" rule, an entry is not trusted while the file's mtime lies within one
timestamp tick of the moment it was recorded: a write in that same tick, after the hashing, could
leave size and mtime unchanged. The tick is taken as 2 s for whole-second timestamps (FAT, HFS+,
ext3) and 50 ms otherwise (coarse kernel clocks tick every 1-16 ms). Such a file is simply
hashed again next time, and then remembered.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from loopml.adapters.sqlite_wal import enable_wal
from loopml.domain.hashing import Digest, is_digest
from loopml.domain.manifest import BlobRef

_SCHEMA = """
CREATE TABLE IF NOT EXISTS file_digests (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    digest TEXT NOT NULL,
    recorded_ns INTEGER NOT NULL
) WITHOUT ROWID
"""
_SECOND_NS = 1_000_000_000
_COARSE_TICK_NS = 2 * _SECOND_NS
_FINE_TICK_NS = 50_000_000


def _tick_ns(mtime_ns: int) -> int:
    """The timestamp granularity to assume for a file with this mtime."""
    return _COARSE_TICK_NS if mtime_ns % _SECOND_NS == 0 else _FINE_TICK_NS


def _key(path: Path) -> str:
    return os.path.abspath(path)


class SqliteHashCache:
    """A HashCache in the SQLite file `db_path` (created if missing). Close it when done."""

    def __init__(
        self,
        db_path: Path,
        *,
        busy_timeout_ms: int = 10_000,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        enable_wal(self._db, timeout_s=busy_timeout_ms / 1000)
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute(_SCHEMA)

    def get(self, path: Path) -> BlobRef | None:
        """The remembered BlobRef of `path`, or None when unknown, changed, or too fresh."""
        try:
            stat = path.stat()
        except OSError:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT size, mtime_ns, inode, digest, recorded_ns FROM file_digests"
                " WHERE path = ?",
                (_key(path),),
            ).fetchone()
        if row is None:
            return None
        size, mtime_ns, inode, digest, recorded_ns = row
        if (size, mtime_ns, inode) != (stat.st_size, stat.st_mtime_ns, stat.st_ino):
            return None
        if mtime_ns >= recorded_ns - _tick_ns(mtime_ns) or not is_digest(digest):
            return None
        return BlobRef(Digest(digest), size)

    def put(self, path: Path, ref: BlobRef) -> None:
        """Remember that `path`, as it is now, has `ref`; ignored when the sizes disagree."""
        stat = path.stat()
        if stat.st_size != ref.size:
            return
        row = (_key(path), stat.st_size, stat.st_mtime_ns, stat.st_ino, ref.digest)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO file_digests"
                " (path, size, mtime_ns, inode, digest, recorded_ns) VALUES (?, ?, ?, ?, ?, ?)",
                (*row, self._clock_ns()),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SqliteHashCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
