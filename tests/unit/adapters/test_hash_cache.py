"""SqliteHashCache, and FsspecBlobStore.put_file_cached on top of it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from loopml.adapters.artifacts import FsspecBlobStore
from loopml.adapters.hash_cache import SqliteHashCache
from loopml.domain.hashing import digest_bytes
from loopml.domain.manifest import BlobRef

_TEN_S_NS = 10_000_000_000


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[SqliteHashCache]:
    with SqliteHashCache(tmp_path / "cache" / "hashes.sqlite") as opened:
        yield opened


def _settled_file(path: Path, data: bytes, age_ns: int = _TEN_S_NS) -> BlobRef:
    """Write `data` to `path` with an mtime `age_ns` in the past (not on a whole second)."""
    path.write_bytes(data)
    mtime_ns = time.time_ns() - age_ns
    mtime_ns += 123_456 if mtime_ns % 1_000_000_000 == 0 else 0
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return BlobRef(digest_bytes(data), len(data))


def test_unknown_and_missing_files_are_misses(cache: SqliteHashCache, tmp_path: Path) -> None:
    _settled_file(tmp_path / "a", b"a")
    assert cache.get(tmp_path / "a") is None
    assert cache.get(tmp_path / "does-not-exist") is None


def test_a_settled_file_is_remembered(cache: SqliteHashCache, tmp_path: Path) -> None:
    ref = _settled_file(tmp_path / "a", b"abc")
    cache.put(tmp_path / "a", ref)
    assert cache.get(tmp_path / "a") == ref


def test_the_same_file_by_another_spelling_is_a_hit(
    cache: SqliteHashCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = _settled_file(tmp_path / "a", b"abc")
    cache.put(tmp_path / "a", ref)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    assert cache.get(Path("sub/../a")) == ref


def test_a_changed_size_is_a_miss(cache: SqliteHashCache, tmp_path: Path) -> None:
    path = tmp_path / "a"
    cache.put(path, _settled_file(path, b"abc"))
    _settled_file(path, b"abcd")
    assert cache.get(path) is None


def test_a_changed_mtime_is_a_miss(cache: SqliteHashCache, tmp_path: Path) -> None:
    path = tmp_path / "a"
    cache.put(path, _settled_file(path, b"abc"))
    _settled_file(path, b"xyz", age_ns=_TEN_S_NS * 2)
    assert cache.get(path) is None


def test_a_replaced_file_with_the_same_size_and_mtime_is_a_miss(
    cache: SqliteHashCache, tmp_path: Path
) -> None:
    path = tmp_path / "a"
    cache.put(path, _settled_file(path, b"abc"))
    stat = path.stat()
    other = tmp_path / "b"
    other.write_bytes(b"xyz")
    os.utime(other, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(other, path)
    assert path.stat().st_ino != stat.st_ino
    assert cache.get(path) is None


def test_a_file_modified_just_before_recording_is_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "a"
    ref = _settled_file(path, b"abc", age_ns=0)
    mtime_ns = path.stat().st_mtime_ns
    now_ns = [mtime_ns + 10_000_000]  # recorded 10 ms after the last write: same tick
    with SqliteHashCache(tmp_path / "c.sqlite", clock_ns=lambda: now_ns[0]) as cache:
        cache.put(path, ref)
        assert cache.get(path) is None
        now_ns[0] = mtime_ns + 1_000_000_000  # recorded again a second later: trusted
        cache.put(path, ref)
        assert cache.get(path) == ref


def test_whole_second_timestamps_need_two_seconds_to_settle(tmp_path: Path) -> None:
    path = tmp_path / "a"
    path.write_bytes(b"abc")
    mtime_ns = (time.time_ns() // 1_000_000_000 - 100) * 1_000_000_000
    os.utime(path, ns=(mtime_ns, mtime_ns))
    ref = BlobRef(digest_bytes(b"abc"), 3)
    for delay_ns, trusted in [(1_500_000_000, False), (2_500_000_000, True)]:
        with SqliteHashCache(tmp_path / "c.sqlite", clock_ns=lambda d=delay_ns: mtime_ns + d) as c:
            c.put(path, ref)
            assert (c.get(path) == ref) is trusted


def test_put_with_a_size_that_disagrees_is_ignored(cache: SqliteHashCache, tmp_path: Path) -> None:
    ref = _settled_file(tmp_path / "a", b"abc")
    cache.put(tmp_path / "a", BlobRef(ref.digest, 99))
    assert cache.get(tmp_path / "a") is None


def test_entries_survive_reopening(tmp_path: Path) -> None:
    ref = _settled_file(tmp_path / "a", b"abc")
    with SqliteHashCache(tmp_path / "c.sqlite") as cache:
        cache.put(tmp_path / "a", ref)
    with SqliteHashCache(tmp_path / "c.sqlite") as cache:
        assert cache.get(tmp_path / "a") == ref


def test_threads_share_one_cache(cache: SqliteHashCache, tmp_path: Path) -> None:
    refs = {tmp_path / f"f{i}": _settled_file(tmp_path / f"f{i}", b"x" * i) for i in range(40)}

    def put_then_get(path: Path) -> BlobRef | None:
        cache.put(path, refs[path])
        return cache.get(path)

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(put_then_get, refs)) == list(refs.values())


_WRITER = """
import sys
from pathlib import Path
from loopml.adapters.hash_cache import SqliteHashCache
from loopml.domain.hashing import digest_bytes
from loopml.domain.manifest import BlobRef
db, folder, start = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
with SqliteHashCache(db) as cache:
    for i in range(start, start + 25):
        path = folder / f"f{i}"
        cache.put(path, BlobRef(digest_bytes(path.read_bytes()), path.stat().st_size))
"""


def test_processes_write_one_cache_at_the_same_time(tmp_path: Path) -> None:
    refs = {tmp_path / f"f{i}": _settled_file(tmp_path / f"f{i}", b"y" * i) for i in range(100)}
    db = tmp_path / "shared.sqlite"
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(db), str(tmp_path), str(start)])
        for start in range(0, 100, 25)
    ]
    assert [writer.wait(timeout=60) for writer in writers] == [0, 0, 0, 0]
    with SqliteHashCache(db) as cache:
        assert [cache.get(path) for path in refs] == list(refs.values())


# -- put_file_cached ----------------------------------------------------------------------------


def test_put_file_cached_does_not_read_a_known_file(cache: SqliteHashCache, tmp_path: Path) -> None:
    store = FsspecBlobStore(str(tmp_path / "store"))
    path = tmp_path / "data.bin"
    _settled_file(path, b"original")
    first = store.put_file_cached(path, cache)
    stat = path.stat()
    path.write_bytes(b"tampered")  # same size; restore the mtime so the cache cannot tell
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    progress: list[int] = []
    assert store.put_file_cached(path, cache, progress=progress.append) == first
    assert progress == [8]


def test_put_file_cached_hashes_a_changed_file(cache: SqliteHashCache, tmp_path: Path) -> None:
    store = FsspecBlobStore(str(tmp_path / "store"))
    path = tmp_path / "data.bin"
    _settled_file(path, b"version 1")
    store.put_file_cached(path, cache)
    new = _settled_file(path, b"version 22", age_ns=_TEN_S_NS // 2)
    assert store.put_file_cached(path, cache) == new
    assert cache.get(path) == new


def test_put_file_cached_stores_again_a_blob_missing_from_the_store(
    cache: SqliteHashCache, tmp_path: Path
) -> None:
    path = tmp_path / "data.bin"
    ref = _settled_file(path, b"payload")
    FsspecBlobStore(str(tmp_path / "old-store")).put_file_cached(path, cache)
    fresh = FsspecBlobStore(str(tmp_path / "new-store"))
    assert fresh.put_file_cached(path, cache) == ref
    assert fresh.read_bytes(ref.digest) == b"payload"
