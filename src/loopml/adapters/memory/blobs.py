"""The `BlobStore` port in memory: bytes by digest in a dict, every read checked against its
digest as the file and S3 stores check theirs."""

from __future__ import annotations

import contextlib
import io
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from loopml.domain.hashing import CHUNK_BYTES, Digest, digest_bytes, finish, is_digest, new_hasher
from loopml.domain.manifest import BlobRef
from loopml.errors import IntegrityError, InvalidInput, NotFound
from loopml.ports import ProgressFn

URL = "memory://"


def _check_digest(digest: str) -> None:
    if not is_digest(digest):
        raise InvalidInput(
            f"{digest!r} is not a blob digest.",
            "A digest reads 'blake3:' followed by 64 lowercase hex characters.",
        )


def _require_file(path: Path) -> None:
    if not path.exists():
        raise NotFound(f"File {path} does not exist.", "Check the path, then add it again.")
    if not path.is_file():
        raise InvalidInput(f"{path} is not a regular file.", "Give the path of a file to add.")


class _VerifyingReader(io.RawIOBase):
    """Reads `data`, hashing it; at end of stream checks the hash against `digest`."""

    def __init__(self, data: bytes, digest: Digest) -> None:
        super().__init__()
        self._data, self._digest, self._pos = memoryview(data), digest, 0
        self._hasher = new_hasher()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data[self._pos : self._pos + len(buffer)]
        if not chunk:
            self._verify()
            return 0
        memoryview(buffer).cast("B")[: len(chunk)] = chunk
        self._hasher.update(chunk)
        self._pos += len(chunk)
        return len(chunk)

    def _verify(self) -> None:
        actual = finish(self._hasher)
        if actual != self._digest:
            raise IntegrityError(
                f"Blob {self._digest} at {URL} is corrupted: its bytes hash to {actual}.",
                "Delete the blob and add the original data again.",
            )


class MemoryBlobStore:
    """Blobs in `blobs` (a dict of digest -> bytes the caller may keep, to look behind the
    store's back in a test)."""

    def __init__(self, blobs: dict[Digest, bytes] | None = None) -> None:
        self._blobs = {} if blobs is None else blobs
        self._lock = threading.Lock()

    def url(self) -> str:
        return URL

    def put_file(self, path: Path, *, progress: ProgressFn | None = None) -> BlobRef:
        """Read the file in chunks, hashing them; the blob is what was read, whole."""
        _require_file(path)
        hasher, chunks = new_hasher(), []
        with path.open("rb") as src:
            while chunk := src.read(CHUNK_BYTES):
                hasher.update(chunk)
                chunks.append(chunk)
                if progress is not None:
                    progress(len(chunk))
        return self._keep(finish(hasher), b"".join(chunks))

    def put_bytes(self, data: bytes) -> BlobRef:
        return self._keep(digest_bytes(data), bytes(data))

    def _keep(self, digest: Digest, data: bytes) -> BlobRef:
        with self._lock:
            self._blobs[digest] = data  # rewriting also repairs a corrupted blob
        return BlobRef(digest, len(data))

    @contextlib.contextmanager
    def open(self, digest: Digest) -> Iterator[BinaryIO]:
        """A reader of the blob; reading to the end raises IntegrityError if the bytes changed."""
        with io.BufferedReader(_VerifyingReader(self._bytes(digest), digest), CHUNK_BYTES) as r:
            yield r

    def read_bytes(self, digest: Digest) -> bytes:
        with self.open(digest) as reader:
            return reader.read()

    def get_file(self, digest: Digest, dest: Path, *, progress: ProgressFn | None = None) -> None:
        """Write the blob to `dest` atomically; on an error (corruption too) `dest` is untouched."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        try:
            with self.open(digest) as src, tmp.open("wb") as out:
                while chunk := src.read(CHUNK_BYTES):
                    out.write(chunk)
                    if progress is not None:
                        progress(len(chunk))
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def exists(self, digest: Digest) -> bool:
        _check_digest(digest)
        with self._lock:
            return digest in self._blobs

    def _bytes(self, digest: Digest) -> bytes:
        _check_digest(digest)
        with self._lock:
            data = self._blobs.get(digest)
        if data is None:
            raise NotFound(
                f"Blob {digest} is not in the blob store at {URL}.",
                "Check the digest, or add the data that has it again.",
            )
        return data
