"""Blobs: the content-addressed store of immutable bytes, the digests remembered for local
files, and what garbage collection and the team server's read rule ask of blobs."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from loopml.domain.hashing import Digest
from loopml.domain.manifest import BlobRef

ProgressFn = Callable[[int], None]
"""Called with the number of bytes just processed."""


class BlobStore(Protocol):
    """Content-addressed, immutable bytes. Writes are atomic; reads are checked against the hash."""

    def put_file(self, path: Path, *, progress: ProgressFn | None = None) -> BlobRef: ...

    def put_bytes(self, data: bytes) -> BlobRef: ...

    def open(self, digest: Digest) -> AbstractContextManager[BinaryIO]:
        """A reader that raises IntegrityError at end of stream if the bytes do not match."""
        ...

    def read_bytes(self, digest: Digest) -> bytes: ...

    def get_file(
        self, digest: Digest, dest: Path, *, progress: ProgressFn | None = None
    ) -> None: ...

    def exists(self, digest: Digest) -> bool: ...

    def url(self) -> str:
        """Where the blobs live, for messages."""
        ...


class HashCache(Protocol):
    """Remembers the digest of a local file by (path, size, mtime) so it is never rehashed."""

    def get(self, path: Path) -> BlobRef | None: ...

    def put(self, path: Path, ref: BlobRef) -> None: ...


@dataclass(frozen=True)
class StoredBlob:
    """A blob as a blob store lists it for garbage collection."""

    digest: Digest
    size: int
    touched_us: int
    """When it was last written or reused (a writer's `exists` that found it): microseconds
    since the epoch, by the store's clock."""
    mark: str = ""
    """What `BlobSweep.set_aside` compares to tell whether the blob was reused since listed."""


@dataclass(frozen=True)
class StrayFile:
    """Something in a blob store that no record can name: a temp file of a write that never
    finished, an abandoned multipart upload, a stale reuse marker."""

    kind: str
    name: str
    """Where it is, under the store's root."""
    size: int
    touched_us: int
    mark: str = ""
    """What `BlobSweep.remove` compares to tell whether it was rewritten since listed."""


class BlobSweep(Protocol):
    """The garbage-collection side of a blob store. A blob to delete is first set aside (out of
    the readers' and writers' way, and checked not to have been reused meanwhile), then either
    purged or put back, so a writer that reuses a blob during a collection never loses it."""

    def recover(self) -> int:
        """Put back every blob an interrupted collection left set aside; how many."""
        ...

    def blobs(self) -> Iterator[StoredBlob]: ...

    def strays(self) -> Iterator[StrayFile]: ...

    def set_aside(self, blob: StoredBlob) -> bool:
        """Move `blob` out of reach; False (and left in place) when it was reused or rewritten
        since it was listed, or is gone."""
        ...

    def put_back(self, digest: Digest) -> None: ...

    def purge(self, digest: Digest) -> None:
        """Delete a blob that was set aside."""
        ...

    def remove(self, stray: StrayFile) -> bool:
        """Delete a stray file; False when it changed since it was listed (then it stays)."""
        ...


class BlobReferences(Protocol):
    """What the metadata says about blobs, for garbage collection."""

    def referenced(self) -> set[str]:
        """Every blob digest any record names."""
        ...

    def uploaded_since(self, since_us: int) -> set[str]:
        """Digests sent to the team server at or after `since_us` (microseconds)."""
        ...


class BlobAccess(Protocol):
    """Who may read a blob on the team server: those of a project that holds it, and who sent
    its bytes."""

    def record_upload(self, digest: str, user: str) -> None:
        """`user` sent the bytes of `digest`."""
        ...

    def unreadable(
        self, digests: Iterable[str], user: str, projects: Collection[str] | None
    ) -> list[str]:
        """Those of `digests` `user` may not read, given the `projects` they may read (None:
        every project). Sorted, each once."""
        ...

    def readable(self, digest: str, user: str, projects: Collection[str] | None) -> bool: ...
