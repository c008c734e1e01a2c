"""The BlobStore contract: what every blob store must do, as plain pytest test functions.

A test module runs the suite against its backends by providing two fixtures and importing the
tests, which pytest then collects there:

    @pytest.fixture
    def blob_store() -> BlobStore: ...

    @pytest.fixture
    def blob_probe() -> BlobProbe: ...   # reaches the stored bytes behind the store's back

    from loopml.testing.blobstore_contract import *  # noqa: F403

`FsspecBlobProbe` is the probe for `FsspecBlobStore` roots.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import pytest
from fsspec.core import url_to_fs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopml.domain.hashing import CHUNK_BYTES, Digest, digest_bytes, hex_part
from loopml.errors import Conflict, IntegrityError, InvalidInput, NotFound
from loopml.ports import BlobStore

__all__ = [
    "BlobProbe",
    "FsspecBlobProbe",
    "test_a_file_changing_while_added_never_leaves_a_mismatched_blob",
    "test_concurrent_puts_of_the_same_file_all_succeed",
    "test_corrupted_blob_is_detected",
    "test_empty_file_roundtrips",
    "test_file_roundtrips_through_put_file_and_get_file",
    "test_get_file_leaves_no_file_behind_on_corruption",
    "test_get_file_on_corruption_keeps_the_old_dest",
    "test_large_file_streams_in_chunks_with_progress",
    "test_malformed_digest_is_invalid_input",
    "test_missing_blob_is_not_found",
    "test_partial_reads_return_the_bytes_in_order",
    "test_put_bytes_roundtrips_any_bytes",
    "test_same_bytes_are_stored_once",
]

_LARGE_BYTES = 20 * 1024 * 1024


class BlobProbe(Protocol):
    """Direct access to what a store keeps, for tests that must tamper with or count it."""

    def overwrite(self, digest: Digest, data: bytes) -> None:
        """Replace the stored bytes of `digest` with `data`, as disk rot or a bad copy would."""
        ...

    def stored_digests(self) -> list[Digest]:
        """Every digest with a stored blob, sorted."""
        ...


class FsspecBlobProbe:
    """A BlobProbe on the `blobs/blake3/<2 hex>/<62 hex>` layout under an fsspec root."""

    def __init__(self, root_url: str, storage_options: dict[str, Any] | None = None) -> None:
        options = {**(storage_options or {}), "skip_instance_cache": True}
        self._fs, root = url_to_fs(root_url, **options)
        self._blobs = f"{root.rstrip('/')}/blobs/blake3"

    def overwrite(self, digest: Digest, data: bytes) -> None:
        hex_digest = hex_part(digest)
        self._fs.pipe_file(f"{self._blobs}/{hex_digest[:2]}/{hex_digest[2:]}", data)

    def stored_digests(self) -> list[Digest]:
        self._fs.invalidate_cache()
        found = self._fs.find(self._blobs) if self._fs.exists(self._blobs) else []
        return sorted(Digest("blake3:" + "".join(str(p).split("/")[-2:])) for p in found)


def _write_chunked(path: Path, size: int, seed: int = 7) -> bytes:
    """Write `size` pseudo-random bytes to `path` 1 MiB at a time, and return them."""
    rng, written = random.Random(seed), bytearray()
    with path.open("wb") as out:
        while len(written) < size:
            chunk = rng.randbytes(min(1024 * 1024, size - len(written)))
            out.write(chunk)
            written += chunk
    return bytes(written)


def _flip_first_byte(data: bytes) -> bytes:
    return bytes([data[0] ^ 0xFF]) + data[1:]


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=2048))
def test_put_bytes_roundtrips_any_bytes(blob_store: BlobStore, data: bytes) -> None:
    ref = blob_store.put_bytes(data)
    assert (ref.digest, ref.size) == (digest_bytes(data), len(data))
    assert blob_store.exists(ref.digest)
    assert blob_store.read_bytes(ref.digest) == data


def test_file_roundtrips_through_put_file_and_get_file(
    blob_store: BlobStore, tmp_path: Path
) -> None:
    source = tmp_path / "model.bin"
    data = _write_chunked(source, 300_000)
    ref = blob_store.put_file(source)
    assert (ref.digest, ref.size) == (digest_bytes(data), len(data))
    dest = tmp_path / "out" / "nested" / "model.bin"
    blob_store.get_file(ref.digest, dest)
    assert dest.read_bytes() == data
    with blob_store.open(ref.digest) as reader:
        assert reader.read() == data


def test_same_bytes_are_stored_once(
    blob_store: BlobStore, blob_probe: BlobProbe, tmp_path: Path
) -> None:
    source = tmp_path / "a.txt"
    source.write_bytes(b"same content")
    refs = [blob_store.put_bytes(b"same content"), blob_store.put_file(source)]
    refs.append(blob_store.put_bytes(b"same content"))
    assert len(set(refs)) == 1
    assert blob_probe.stored_digests() == [digest_bytes(b"same content")]


def test_empty_file_roundtrips(blob_store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "empty"
    source.touch()
    ref = blob_store.put_file(source)
    assert (ref.digest, ref.size) == (digest_bytes(b""), 0)
    assert blob_store.read_bytes(ref.digest) == b""
    blob_store.get_file(ref.digest, tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == b""


def test_large_file_streams_in_chunks_with_progress(blob_store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "large.bin"
    data = _write_chunked(source, _LARGE_BYTES)
    put_calls: list[int] = []
    ref = blob_store.put_file(source, progress=put_calls.append)
    assert ref.digest == digest_bytes(data)
    assert sum(put_calls) == _LARGE_BYTES
    get_calls: list[int] = []
    blob_store.get_file(ref.digest, tmp_path / "copy.bin", progress=get_calls.append)
    assert sum(get_calls) == _LARGE_BYTES
    assert len(get_calls) > 1
    assert max(get_calls) <= CHUNK_BYTES
    assert (tmp_path / "copy.bin").read_bytes() == data


def test_partial_reads_return_the_bytes_in_order(blob_store: BlobStore) -> None:
    data = bytes(range(256)) * 100
    ref = blob_store.put_bytes(data)
    with blob_store.open(ref.digest) as reader:
        parts = [reader.read(1000) for _ in range(26)]
        assert reader.read() == b""
    assert b"".join(parts) == data


_READ_PATHS: dict[str, Callable[[BlobStore, Digest, Path], object]] = {
    "open": lambda store, digest, tmp: _read_all_via_open(store, digest),
    "read_bytes": lambda store, digest, tmp: store.read_bytes(digest),
    "get_file": lambda store, digest, tmp: store.get_file(digest, tmp / "dest.bin"),
}


def _read_all_via_open(store: BlobStore, digest: Digest) -> None:
    with store.open(digest) as reader:
        while reader.read(4096):
            pass


_CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "flipped-byte": _flip_first_byte,
    "truncated": lambda data: data[:-1],
    "extended": lambda data: data + b"!",
}


@pytest.mark.parametrize("read_path", sorted(_READ_PATHS))
@pytest.mark.parametrize("corruption", sorted(_CORRUPTIONS))
def test_corrupted_blob_is_detected(
    blob_store: BlobStore, blob_probe: BlobProbe, tmp_path: Path, read_path: str, corruption: str
) -> None:
    data = b"weights " * 1000
    ref = blob_store.put_bytes(data)
    blob_probe.overwrite(ref.digest, _CORRUPTIONS[corruption](data))
    with pytest.raises(IntegrityError) as caught:
        _READ_PATHS[read_path](blob_store, ref.digest, tmp_path)
    assert ref.digest in caught.value.message
    assert caught.value.hint


def test_get_file_leaves_no_file_behind_on_corruption(
    blob_store: BlobStore, blob_probe: BlobProbe, tmp_path: Path
) -> None:
    ref = blob_store.put_bytes(b"a" * 50_000)
    blob_probe.overwrite(ref.digest, b"b" * 50_000)
    out = tmp_path / "out"
    with pytest.raises(IntegrityError):
        blob_store.get_file(ref.digest, out / "data.bin")
    assert list(out.iterdir()) == []


def test_get_file_on_corruption_keeps_the_old_dest(
    blob_store: BlobStore, blob_probe: BlobProbe, tmp_path: Path
) -> None:
    ref = blob_store.put_bytes(b"new" * 10_000)
    blob_probe.overwrite(ref.digest, b"bad" * 10_000)
    dest = tmp_path / "checkout" / "data.bin"
    dest.parent.mkdir()
    dest.write_bytes(b"old contents")
    with pytest.raises(IntegrityError):
        blob_store.get_file(ref.digest, dest)
    assert dest.read_bytes() == b"old contents"
    assert [p.name for p in dest.parent.iterdir()] == ["data.bin"]


@pytest.mark.parametrize("read_path", sorted(_READ_PATHS))
def test_missing_blob_is_not_found(blob_store: BlobStore, tmp_path: Path, read_path: str) -> None:
    missing = digest_bytes(b"never stored")
    assert not blob_store.exists(missing)
    with pytest.raises(NotFound) as caught:
        _READ_PATHS[read_path](blob_store, missing, tmp_path)
    assert missing in caught.value.message
    assert not (tmp_path / "dest.bin").exists()


_MALFORMED = {
    "empty": "",
    "no-prefix": "ab" * 32,
    "other-algorithm": "sha256:" + "ab" * 32,
    "short": "blake3:abcd",
    "uppercase": "blake3:" + "AB" * 32,
    "parent-dirs": "blake3:../../../../etc/passwd",
    "absolute": "blake3:/etc/passwd",
    "trailing-slash": "blake3:" + "ab" * 32 + "/",
}


_DIGEST_CALLS: dict[str, Callable[[BlobStore, Digest, Path], object]] = {
    **_READ_PATHS,
    "exists": lambda store, digest, tmp: store.exists(digest),
}


@pytest.mark.parametrize("call", sorted(_DIGEST_CALLS))
@pytest.mark.parametrize("malformed", sorted(_MALFORMED))
def test_malformed_digest_is_invalid_input(
    blob_store: BlobStore, tmp_path: Path, call: str, malformed: str
) -> None:
    with pytest.raises(InvalidInput):
        _DIGEST_CALLS[call](blob_store, Digest(_MALFORMED[malformed]), tmp_path)


def test_concurrent_puts_of_the_same_file_all_succeed(
    blob_store: BlobStore, blob_probe: BlobProbe, tmp_path: Path
) -> None:
    source = tmp_path / "shared.bin"
    data = _write_chunked(source, 3 * 1024 * 1024 + 17)
    start = threading.Barrier(8)

    def put(i: int) -> object:
        start.wait()
        return blob_store.put_file(source) if i % 2 else blob_store.put_bytes(data)

    with ThreadPoolExecutor(max_workers=8) as pool:
        refs = set(pool.map(put, range(8)))
    assert len(refs) == 1
    assert blob_probe.stored_digests() == [digest_bytes(data)]
    assert blob_store.read_bytes(digest_bytes(data)) == data


def test_a_file_changing_while_added_never_leaves_a_mismatched_blob(
    blob_store: BlobStore, blob_probe: BlobProbe, tmp_path: Path
) -> None:
    """A store may take the mix it read, or refuse with Conflict; it never stores a lie."""
    source = tmp_path / "changing.bin"
    _write_chunked(source, CHUNK_BYTES + 1000)

    def rewrite_tail(nbytes: int) -> None:
        with source.open("r+b") as out:
            out.seek(-1000, os.SEEK_END)
            out.write(bytes(1000))

    with contextlib.suppress(Conflict):
        blob_store.put_file(source, progress=rewrite_tail)
    for digest in blob_probe.stored_digests():
        blob_store.read_bytes(digest)  # raises IntegrityError for a blob that is not its digest
