"""Content-addressed blobs over any fsspec URL: a local folder, or an S3-compatible bucket.

Layout under the root URL:

    blobs/blake3/<first 2 hex>/<other 62 hex>   the bytes of one blob, never changed in place
    tmp/<uuid>                                  a local write in progress
    reused/<hex>                                on an object store: rewritten on each reuse
    gc-trash/<hex>                              a blob a garbage collection is removing

A blob only ever appears under its final name complete. On a local folder the bytes go to
`tmp/<uuid>` on the same filesystem, are fsynced, then `os.replace`d into place. On an object
store the file is hashed first, skipped if its blob exists, and otherwise uploaded straight to
the final key as one multipart upload that is completed only after the uploaded bytes hashed to
the same digest (and aborted otherwise, should the file have changed in between): S3 makes an
object visible only when its upload completes, so no temporary key and no server-side copy are
needed. That reads the file twice, which is cheap next to the network.

Every read hashes what it returns and raises IntegrityError at the end of the stream when the
bytes no longer match their digest.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from loopml.adapters.local_files import fsync_dir, local_root, new_file, remote_fs
from loopml.domain.hashing import (
    CHUNK_BYTES,
    Digest,
    digest_bytes,
    finish,
    hex_part,
    is_digest,
    new_hasher,
    update,
)
from loopml.domain.manifest import BlobRef
from loopml.errors import Conflict, IntegrityError, InvalidInput, NotFound, Unavailable
from loopml.ports import HashCache, ProgressFn

BLOB_FOLDER = "blobs/blake3"
"""Where blobs are, under the root: `<first 2 hex>/<other 62 hex>`."""
TEMP_FOLDER = "tmp"
REUSE_MARKERS = "reused"
"""On an object store, `reused/<hex>` is rewritten whenever a writer finds blob <hex> and skips
its upload (an object's time cannot be refreshed in place)."""
WriteFn = Callable[[memoryview], object]
"""Consumes a chunk before returning: the chunk's buffer is reused for the next one."""
_PARALLEL_HASH_MIN_BYTES = 1024 * 1024


def _connection_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "the backend did not answer", botocore's ones when installed."""
    builtin: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)
    try:
        boto = importlib.import_module("botocore.exceptions")
    except ImportError:  # pragma: no cover - s3fs is an optional extra
        return builtin
    return (*builtin, boto.ConnectionError, boto.HTTPClientError)


_CONNECTION_ERRORS = _connection_errors()


@contextlib.contextmanager
def _answering(url: str) -> Iterator[None]:
    """Turn a backend's connection failure into Unavailable naming `url`."""
    try:
        yield
    except _CONNECTION_ERRORS as exc:
        raise Unavailable(
            f"The blob store at {url} did not answer: {exc}",
            "Check that the object store is running and reachable (endpoint URL, network, "
            "credentials), then try again; the operation is safe to retry.",
        ) from exc


def _check_digest(digest: str) -> str:
    """The hex of `digest`, or InvalidInput when it is not a well-formed digest."""
    if not is_digest(digest):
        raise InvalidInput(
            f"{digest!r} is not a blob digest.",
            "A digest reads 'blake3:' followed by 64 lowercase hex characters.",
        )
    return hex_part(digest)


_THREAD_BUFFERS = threading.local()


def _chunk_buffer() -> bytearray:
    """This thread's reusable chunk buffer: allocating (and zeroing) 8 MiB per small file
    would cost more than the file."""
    buffer: bytearray | None = getattr(_THREAD_BUFFERS, "buffer", None)
    if buffer is None:
        buffer = _THREAD_BUFFERS.buffer = bytearray(CHUNK_BYTES)
    return buffer


def _pump(
    read_into: Callable[[bytearray], int | None], write: WriteFn, progress: ProgressFn | None
) -> tuple[Digest, int]:
    """Copy everything `read_into` yields to `write` in CHUNK_BYTES chunks, hashing on the way.

    One reused buffer, one pass: the bytes hashed are exactly the bytes written.
    """
    hasher, size = new_hasher(), 0
    buffer = _chunk_buffer()
    with ThreadPoolExecutor(max_workers=1) as helper:  # its thread starts on first use only
        while n := read_into(buffer):
            _hash_while_writing(helper, hasher, memoryview(buffer)[:n], write)
            size += n
            if progress is not None:
                progress(n)
    return finish(hasher), size


def _hash_while_writing(
    helper: ThreadPoolExecutor, hasher: Any, chunk: memoryview, write: WriteFn
) -> None:
    """Hash a big chunk in the helper thread while it is written: both release the GIL."""
    if len(chunk) < _PARALLEL_HASH_MIN_BYTES:
        update(hasher, chunk)
        write(chunk)
        return
    hashed = helper.submit(update, hasher, chunk)
    write(chunk)
    hashed.result()


def _require_file(path: Path) -> None:
    if not path.exists():
        raise NotFound(f"File {path} does not exist.", "Check the path, then add it again.")
    if not path.is_file():
        raise InvalidInput(f"{path} is not a regular file.", "Give the path of a file to add.")


def _identity(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns, stat.st_ino


def _abandon(upload: Any) -> None:
    """Abort an unfinished upload so nothing appears; best effort, the caller's error matters."""
    with contextlib.suppress(Exception):
        upload.discard()
    upload.closed = True  # aborted: closing (or garbage collection) must not upload the rest


def _touch(path: str) -> bool:
    """Set a local blob's mtime to now (its reuse); False when it is not there."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    except OSError:  # read-only store, or another user's file: it is there, not refreshed
        return os.path.isfile(path)
    return True


def _hash_file(path: Path) -> tuple[Digest, int]:
    with path.open("rb", buffering=0) as src:
        return _pump(src.readinto, lambda chunk: None, None)


class _LocalWriter:
    """os-level writes that start the writeback of each finished chunk, so `fsync` is short."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._offset = 0
        self._started = 0

    def write(self, chunk: memoryview) -> None:
        written = 0
        while written < len(chunk):
            written += os.write(self._fd, chunk[written:])
        if hasattr(os, "posix_fadvise") and self._offset > self._started:
            # On Linux, DONTNEED on dirty pages starts their writeback without waiting for it.
            pending = self._offset - self._started
            os.posix_fadvise(self._fd, self._started, pending, os.POSIX_FADV_DONTNEED)
            self._started = self._offset
        self._offset += written


class _VerifyingReader(io.RawIOBase):
    """Passes reads through, hashing them; at end of stream checks the hash against `digest`."""

    def __init__(self, raw: Any, digest: Digest, location: str, url: str) -> None:
        super().__init__()
        self._raw, self._digest, self._location, self._url = raw, digest, location, url
        self._hasher = new_hasher()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with _answering(self._url):
            n = int(self._raw.readinto(buffer) or 0)
        if n:
            update(self._hasher, memoryview(buffer).cast("B")[:n])
        else:
            self._verify()
        return n

    def readall(self) -> bytes:
        with _answering(self._url):
            data = bytes(self._raw.read())  # one allocation of the right size, no chunk copies
        update(self._hasher, data)
        self._verify()
        return data

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()

    def _verify(self) -> None:
        actual = finish(self._hasher)
        if actual != self._digest:
            raise IntegrityError(
                f"Blob {self._digest} at {self._location} is corrupted: "
                f"its bytes hash to {actual}.",
                "Delete the blob and add the original data again, or restore the blob from a "
                "backup.",
            )


class FsspecBlobStore:
    """A BlobStore under `root_url`: a local path, `file://…`, `s3://bucket/prefix`, …

    `storage_options` go to fsspec, for S3 e.g. `{"key": …, "secret": …,
    "client_kwargs": {"endpoint_url": …}}`.
    """

    def __init__(self, root_url: str, storage_options: dict[str, Any] | None = None) -> None:
        folder = local_root(root_url)
        self._local = folder is not None
        self._filesystem: Any = None
        if folder is not None:  # plain os calls: fsspec is imported only if ever needed
            root = folder
        else:
            self._filesystem, root = remote_fs(root_url, storage_options)
        self._root = root.rstrip("/") if root != "/" else root
        self._url = self._root if self._local else str(self._fs.unstrip_protocol(self._root))

    @property
    def _fs(self) -> Any:
        if self._filesystem is None:
            from fsspec.implementations.local import LocalFileSystem

            self._filesystem = LocalFileSystem()
        return self._filesystem

    def url(self) -> str:
        return self._url

    def location(self, digest: Digest) -> str:
        """Where the blob `digest` is (or would be) stored: a path, or a URL such as s3://…."""
        return self._url.rstrip("/") + "/" + self._relative(digest)

    # -- writes ---------------------------------------------------------------------------------

    def put_file(self, path: Path, *, progress: ProgressFn | None = None) -> BlobRef:
        """Store the file at `path` (streamed, never whole in memory) and return its BlobRef."""
        _require_file(path)
        if self._local:
            return self._put_local(path, progress)
        with _answering(self._url):
            return self._put_remote(path, progress)

    def put_bytes(self, data: bytes) -> BlobRef:
        ref = BlobRef(digest_bytes(data), len(data))
        if self._local:

            def write(fd: int) -> BlobRef:
                _LocalWriter(fd).write(memoryview(data))
                return ref

            return self._install_local(write)
        with _answering(self._url):
            if not self._remote_exists(ref.digest):
                self._fs.pipe_file(self._path(ref.digest), data)  # one PUT: atomic
        return ref

    def put_file_cached(
        self, path: Path, cache: HashCache, *, progress: ProgressFn | None = None
    ) -> BlobRef:
        """`put_file`, but a file the cache knows (same size, mtime, inode) is not read again.

        The cache is only updated when the file did not change while it was being stored.
        """
        known = cache.get(path)
        if known is not None and self.exists(known.digest):
            if progress is not None:
                progress(known.size)
            return known
        before = _identity(path)
        ref = self.put_file(path, progress=progress)
        if _identity(path) == before and before[0] == ref.size:
            cache.put(path, ref)
        return ref

    # -- reads ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def open(self, digest: Digest) -> Iterator[io.BufferedReader[_VerifyingReader]]:
        """A reader of the blob; reading to the end raises IntegrityError if the bytes changed."""
        with _answering(self._url):
            try:
                raw = self._open_raw(self._path(digest))
            except FileNotFoundError:
                raise self._not_found(digest) from None
        reader = _VerifyingReader(raw, digest, self.location(digest), self._url)
        with io.BufferedReader(reader, CHUNK_BYTES) as buffered:
            yield buffered

    def read_bytes(self, digest: Digest) -> bytes:
        with self.open(digest) as reader:
            return reader.read()

    def get_file(self, digest: Digest, dest: Path, *, progress: ProgressFn | None = None) -> None:
        """Write the blob to `dest` atomically; on an error (corruption too) `dest` is untouched."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        try:
            with self.open(digest) as src, new_file(tmp) as fd:
                _pump(src.readinto, _LocalWriter(fd).write, progress)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def exists(self, digest: Digest) -> bool:
        """Whether the blob is stored. A writer asks this to skip an upload and then names the
        blob in a record, so a blob found is marked as reused now: a garbage collection running
        meanwhile then keeps it (see `loopml.adapters.blob_sweep`)."""
        if self._local:
            return _touch(self._path(digest))
        with _answering(self._url):
            return self._remote_exists(digest)

    # -- internals ------------------------------------------------------------------------------

    def _relative(self, digest: Digest) -> str:
        hex_digest = _check_digest(digest)
        return f"{BLOB_FOLDER}/{hex_digest[:2]}/{hex_digest[2:]}"

    def _path(self, digest: Digest) -> str:
        return f"{self._root.rstrip('/')}/{self._relative(digest)}"

    def _open_raw(self, path: str) -> Any:
        if self._local:
            return open(path, "rb", buffering=0)  # closed with the _VerifyingReader around it
        return self._fs.open(path, "rb")

    def _not_found(self, digest: Digest) -> NotFound:
        return NotFound(
            f"Blob {digest} is not in the blob store at {self._url}.",
            "Check the digest, or add the data that has it again.",
        )

    def _put_local(self, path: Path, progress: ProgressFn | None) -> BlobRef:
        with path.open("rb", buffering=0) as src:
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(src.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)

            def write(fd: int) -> BlobRef:
                return BlobRef(*_pump(src.readinto, _LocalWriter(fd).write, progress))

            return self._install_local(write)

    def _install_local(self, write: Callable[[int], BlobRef]) -> BlobRef:
        """Run `write(fd)` into a fresh temp file, fsync it, and move it to its blob name.

        Replacing an existing blob is harmless (same bytes) and repairs one that was corrupted.
        """
        tmp_dir = Path(self._root, TEMP_FOLDER)
        tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = tmp_dir / uuid.uuid4().hex
        try:
            with new_file(tmp) as fd:
                ref = write(fd)
            final = Path(self._path(ref.digest))
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(final.parent)
        return ref

    def _remote_exists(self, digest: Digest) -> bool:
        """Whether the blob is stored; if so, its reuse marker is rewritten first and the blob
        looked up again after it: an answer "yes" then means the blob was still there after
        the marker moved, which a collection deleting it would see (see `blob_sweep`)."""
        if not self._look_up(digest):
            return False
        with contextlib.suppress(PermissionError):  # read-only credentials write nothing
            self._fs.pipe_file(self._reuse_marker(digest), uuid.uuid4().bytes)
        return self._look_up(digest)

    def _look_up(self, digest: Digest) -> bool:
        path = self._path(digest)
        self._fs.invalidate_cache(path)  # a listing cached by anyone sharing `fs` may be stale
        return bool(self._fs.exists(path))

    def _reuse_marker(self, digest: Digest) -> str:
        return f"{self._root.rstrip('/')}/{REUSE_MARKERS}/{_check_digest(digest)}"

    def _put_remote(self, path: Path, progress: ProgressFn | None) -> BlobRef:
        """Hash first; upload only a missing blob, re-hashing the upload to catch a changed file."""
        digest, size = _hash_file(path)
        if self._remote_exists(digest):
            if progress is not None:
                progress(size)
            return BlobRef(digest, size)
        upload = self._fs.open(self._path(digest), "wb", autocommit=False)
        try:
            with path.open("rb", buffering=0) as src:
                uploaded, _ = _pump(src.readinto, upload.write, progress)
            if uploaded != digest:
                raise Conflict(
                    f"File {path} changed while it was being added ({digest} then {uploaded}).",
                    "Add it again once nothing is writing to it.",
                )
            upload.close()  # sends the last part; the object is not visible before commit
            upload.commit()
        except BaseException:
            _abandon(upload)
            raise
        return BlobRef(digest, size)
