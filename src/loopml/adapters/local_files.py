"""Storage primitives shared by the artifact store, its sweep and the prediction log: which URLs
are a plain folder, the fsspec filesystem of any other, and files that appear whole and survive
a crash (write, fsync, rename, fsync)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any


def local_root(root_url: str) -> str | None:
    """The absolute folder of a local root (a path or `file://`), or None for any other URL."""
    if root_url.startswith("file://"):
        root_url = root_url[len("file://") :]
    elif "://" in root_url or root_url.startswith(("s3:", "gs:", "memory:")):
        return None
    return os.path.abspath(os.path.expanduser(root_url))


def remote_fs(root_url: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """The fsspec filesystem of a non-local root, and the root's path in it.

    Listings are never cached: fsspec shares one filesystem object between every user of the
    same URL and options in a process, so a listing cached by one (a collection, a log reader)
    would make another miss an object written since, and call a blob that exists missing.
    Every lookup asks the store."""
    from fsspec.core import url_to_fs

    options = {"use_listings_cache": False, **(storage_options or {})}
    fs, root = url_to_fs(root_url, **options)
    return fs, str(root)


@contextlib.contextmanager
def new_file(path: str | os.PathLike[str]) -> Iterator[int]:
    """A file descriptor on a new file at `path`, fsynced and closed when the block succeeds."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        yield fd
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename inside `path` durable."""
    if os.name != "posix":  # pragma: no cover - directories cannot be opened on Windows
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
