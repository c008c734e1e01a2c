"""The garbage-collection side of the blob store (`BlobSweep`), on a local folder or S3.

Besides the blobs (`blobs/blake3/…`, see `loopml.adapters.artifacts`) it knows what a write
leaves behind when its process dies: a local temp file (`tmp/<uuid>`), an object store's
unfinished multipart upload, and stale reuse markers (`reused/<hex>`).

How a blob being reused is never lost to a concurrent collection: a writer that skips an upload
because the blob exists has just refreshed it (`FsspecBlobStore.exists`: a local blob's mtime
is set to now; on an object store its reuse marker is rewritten before the blob is looked up
again). The collection lists each blob with that state, and deletes one in two steps: it first
moves the blob aside (`gc-trash/<hex>`), where no writer can refresh it any more, then compares
the state again. Moved and unchanged, no writer relied on it: it is purged (after the caller
has also re-read the references). Changed, a writer found it before the move: it is put back.
A writer that looks after the move does not find it, and uploads it again.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from loopml.adapters.artifacts import BLOB_FOLDER, REUSE_MARKERS, TEMP_FOLDER
from loopml.adapters.local_files import local_root, remote_fs
from loopml.domain.hashing import Digest, hex_part
from loopml.ports import BlobSweep, StoredBlob, StrayFile

TRASH_FOLDER = "gc-trash"
_HEX = re.compile(r"[0-9a-f]{64}")
TEMP_FILE = "temp file"
UNFINISHED_UPLOAD = "unfinished upload"
REUSE_MARKER = "reuse marker"


def blob_sweep(root_url: str, storage_options: dict[str, Any] | None = None) -> BlobSweep:
    """The sweep of the blob store at `root_url` (as `FsspecBlobStore` takes it)."""
    folder = local_root(root_url)
    if folder is not None:
        return LocalBlobSweep(Path(folder))
    fs, root = remote_fs(root_url, storage_options)
    return ObjectStoreBlobSweep(fs, root.rstrip("/"))


def _digest(hex_digest: str) -> Digest:
    return Digest(f"blake3:{hex_digest}")


class LocalBlobSweep:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._trash = root / TRASH_FOLDER

    def _final(self, digest: Digest) -> Path:
        hex_digest = hex_part(digest)
        return self._root / BLOB_FOLDER / hex_digest[:2] / hex_digest[2:]

    def recover(self) -> int:
        names = [e.name for e in _entries(self._trash) if _HEX.fullmatch(e.name)]
        for name in names:
            self.put_back(_digest(name))
        return len(names)

    def blobs(self) -> Iterator[StoredBlob]:
        for folder in _entries(self._root / BLOB_FOLDER):
            for entry in _entries(Path(folder.path)):
                if not _HEX.fullmatch(folder.name + entry.name):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    stat = entry.stat()
                    yield StoredBlob(
                        _digest(folder.name + entry.name),
                        stat.st_size,
                        stat.st_mtime_ns // 1000,
                        str(stat.st_mtime_ns),
                    )

    def strays(self) -> Iterator[StrayFile]:
        for entry in _entries(self._root / TEMP_FOLDER):
            with contextlib.suppress(FileNotFoundError):
                stat = entry.stat()
                name = f"{TEMP_FOLDER}/{entry.name}"
                touched = stat.st_mtime_ns // 1000
                yield StrayFile(TEMP_FILE, name, stat.st_size, touched, str(stat.st_mtime_ns))

    def set_aside(self, blob: StoredBlob) -> bool:
        aside = self._trash / hex_part(blob.digest)
        self._trash.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(self._final(blob.digest), aside)
        except FileNotFoundError:
            return False
        if str(aside.stat().st_mtime_ns) != blob.mark:  # refreshed or rewritten before the move
            self.put_back(blob.digest)
            return False
        return True

    def put_back(self, digest: Digest) -> None:
        aside, final = self._trash / hex_part(digest), self._final(digest)
        if final.exists():  # written again meanwhile: the same bytes
            aside.unlink(missing_ok=True)
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(aside, final)

    def purge(self, digest: Digest) -> None:
        (self._trash / hex_part(digest)).unlink(missing_ok=True)

    def remove(self, stray: StrayFile) -> bool:
        path = self._root / stray.name
        try:
            if str(path.stat().st_mtime_ns) != stray.mark:
                return False  # a write still going on
            path.unlink()
        except FileNotFoundError:
            return False
        return True


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as found:
            return list(found)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _time_us(info: dict[str, Any]) -> int:
    """An object's time: its LastModified, counted at the end of its second when the store
    gives whole seconds (S3 lists times truncated to the second; SeaweedFS does too). Read as
    the start of its second, a reuse marker written at 10.99 s would look 0.99 s older than it
    is, and a writer would have that much less than the grace period between finding its blob
    and naming it in a record."""
    moment = info.get("LastModified") or info.get("mtime")
    time_us = _us(moment)
    if time_us and time_us % 1_000_000 == 0:
        time_us += 999_999
    return time_us


def _us(moment: Any) -> int:
    if isinstance(moment, datetime):
        return int(moment.timestamp() * 1_000_000)
    return int(float(moment or 0) * 1_000_000)


class ObjectStoreBlobSweep:
    """On S3 (and compatibles): copies stand in for moves, reuse markers for mtimes."""

    def __init__(self, fs: Any, root: str) -> None:
        self._fs = fs
        self._root = root
        self._bucket, _, prefix = root.partition("/")
        self._prefix = f"{prefix}/" if prefix else ""

    def _path(self, folder: str, digest: Digest) -> str:
        hex_digest = hex_part(digest)
        if folder == BLOB_FOLDER:
            return f"{self._root}/{BLOB_FOLDER}/{hex_digest[:2]}/{hex_digest[2:]}"
        return f"{self._root}/{folder}/{hex_digest}"

    def _listing(self, folder: str) -> dict[str, dict[str, Any]]:
        """The objects under `folder`, by path. Some stores (SeaweedFS) list a folder as an
        entry of its own: it is left out, or a sweep would take it for a stray and remove it,
        and every reuse marker with it."""
        path = f"{self._root}/{folder}"
        self._fs.invalidate_cache(path)
        found: dict[str, dict[str, Any]] = self._fs.find(path, detail=True)
        return {p: info for p, info in found.items() if info.get("type", "file") == "file"}

    def _mark(self, digest: Digest) -> str:
        """The state of the blob's reuse marker: its ETag, or "" when there is none."""
        path = self._path(REUSE_MARKERS, digest)
        self._fs.invalidate_cache(path)
        try:
            return str(self._fs.info(path).get("ETag", "?"))
        except FileNotFoundError:
            return ""

    def recover(self) -> int:
        names = [p.rsplit("/", 1)[-1] for p in self._listing(TRASH_FOLDER)]
        names = [n for n in names if _HEX.fullmatch(n)]
        for name in names:
            self.put_back(_digest(name))
        return len(names)

    def blobs(self) -> Iterator[StoredBlob]:
        markers = {
            path.rsplit("/", 1)[-1]: info for path, info in self._listing(REUSE_MARKERS).items()
        }
        for path, info in self._listing(BLOB_FOLDER).items():
            hex_digest = "".join(path.rsplit("/", 2)[-2:])
            if not _HEX.fullmatch(hex_digest):
                continue
            marker = markers.get(hex_digest)
            touched = max(_time_us(info), _time_us(marker) if marker else 0)
            mark = str(marker.get("ETag", "?")) if marker else ""
            yield StoredBlob(_digest(hex_digest), int(info.get("size") or 0), touched, mark)

    def strays(self) -> Iterator[StrayFile]:
        for path, info in self._listing(REUSE_MARKERS).items():
            if not _HEX.fullmatch(path.rsplit("/", 1)[-1]):
                continue  # not a marker this store wrote: never removed by a sweep
            name, size = path[len(self._root) + 1 :], int(info.get("size") or 0)
            mark = str(info.get("ETag", "?"))
            yield StrayFile(REUSE_MARKER, name, size, _time_us(info), mark)
        yield from self._unfinished_uploads()

    def _unfinished_uploads(self) -> Iterator[StrayFile]:
        """Multipart uploads of blobs begun and never completed (their writer died)."""
        marker: dict[str, str] = {}
        while True:
            page = self._fs.call_s3(
                "list_multipart_uploads",
                Bucket=self._bucket,
                Prefix=f"{self._prefix}{BLOB_FOLDER}/",
                **marker,
            )
            for upload in page.get("Uploads") or []:
                name = f"{upload['Key'][len(self._prefix) :]}#{upload['UploadId']}"
                yield StrayFile(UNFINISHED_UPLOAD, name, 0, _us(upload.get("Initiated")))
            if not page.get("IsTruncated"):
                return
            marker = {
                "KeyMarker": page["NextKeyMarker"],
                "UploadIdMarker": page["NextUploadIdMarker"],
            }

    def set_aside(self, blob: StoredBlob) -> bool:
        final, aside = self._path(BLOB_FOLDER, blob.digest), self._path(TRASH_FOLDER, blob.digest)
        try:
            self._fs.copy(final, aside)
        except FileNotFoundError:
            return False
        self._fs.rm(final)
        if self._mark(blob.digest) != blob.mark:  # a writer found it before it went
            self.put_back(blob.digest)
            return False
        return True

    def put_back(self, digest: Digest) -> None:
        aside = self._path(TRASH_FOLDER, digest)
        self._fs.copy(aside, self._path(BLOB_FOLDER, digest))
        self._fs.rm(aside)

    def purge(self, digest: Digest) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._fs.rm(self._path(TRASH_FOLDER, digest))

    def remove(self, stray: StrayFile) -> bool:
        if stray.kind == UNFINISHED_UPLOAD:
            key, _, upload_id = stray.name.rpartition("#")
            with contextlib.suppress(FileNotFoundError):
                self._fs.call_s3(
                    "abort_multipart_upload",
                    Bucket=self._bucket,
                    Key=f"{self._prefix}{key}",
                    UploadId=upload_id,
                )
            return True
        path = f"{self._root}/{stray.name}"
        self._fs.invalidate_cache(path)
        try:
            if str(self._fs.info(path).get("ETag", "?")) != stray.mark:
                return False  # rewritten since listed: a writer is reusing its blob
            self._fs.rm(path)
        except FileNotFoundError:
            return False
        return True
