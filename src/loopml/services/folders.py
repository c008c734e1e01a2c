"""Folders in the blob store: every file a blob, the folder a manifest; a stored manifest
checked before any of its files is written, and every file written inside its folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from loopml.domain.manifest import Manifest, check_manifest_path
from loopml.errors import IntegrityError, InvalidInput
from loopml.ports import BlobStore


def store_folder(blobs: BlobStore, folder: Path) -> Manifest:
    """Store every file under `folder`; the manifest names them by relative path."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return Manifest.of((p.relative_to(folder).as_posix(), blobs.put_file(p)) for p in files)


def stored_manifest(read: Callable[[], Manifest], what: str) -> Manifest:
    """The manifest `read` returns; a stored one that breaks the path rule is an integrity
    error naming `what`, and none of its files is written."""
    try:
        return read()
    except InvalidInput as refused:
        raise IntegrityError(
            f"The stored file list of {what} is refused: {refused.message}",
            "Nothing was written. The record was altered, or written by a faulty client: add "
            "or register it again, and see `loopml audit log` for who changed it.",
        ) from None


def target_inside(folder: Path, relative: str) -> Path:
    """Where file `relative` of a manifest is written under `folder`, checked again here (the
    manifest's own check is the first line): refused unless it stays inside `folder` once the
    symbolic links already there are followed."""
    check_manifest_path(relative)
    root = folder.resolve()
    parent = (root / relative).parent.resolve()
    if parent != root and root not in parent.parents:
        raise InvalidInput(
            f"File {relative!r} would be written outside {str(folder)!r} (a link inside it "
            "points elsewhere); nothing was written there.",
            "Download into an empty folder.",
        )
    return parent / relative.rsplit("/", 1)[-1]


def fetch_folder(blobs: BlobStore, manifest: Manifest, dest: Path) -> list[Path]:
    """Write the files of `manifest` under `dest`, each checked against its digest. Every
    target is checked before the first file is written."""
    targets = [(target_inside(dest, rel), blob) for rel, blob in manifest.files.items()]
    for target, blob in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        blobs.get_file(blob.digest, target)
    return [target for target, _ in targets]
