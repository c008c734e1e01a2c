"""Folders in the blob store: every file a blob, the folder a manifest; and typed values on top.

`ValueStore` turns a step's return value into an `ArtifactRef` (files written by the value
serializer, stored as blobs, named by the manifest digest) and back, verifying every hash.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from loopml.domain.manifest import Manifest
from loopml.errors import IntegrityError
from loopml.ports import ArtifactRef, BlobStore, ValueSerializer


def store_folder(blobs: BlobStore, folder: Path) -> Manifest:
    """Store every file under `folder`; the manifest names them by relative path."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return Manifest.of((p.relative_to(folder).as_posix(), blobs.put_file(p)) for p in files)


def fetch_folder(blobs: BlobStore, manifest: Manifest, dest: Path) -> None:
    """Write the files of `manifest` under `dest`, each checked against its digest."""
    for rel, blob in manifest.files.items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        blobs.get_file(blob.digest, target)


class ValueStore:
    def __init__(self, blobs: BlobStore, serializer: ValueSerializer) -> None:
        self._blobs = blobs
        self._serializer = serializer

    def store(self, value: Any) -> ArtifactRef:
        with tempfile.TemporaryDirectory(prefix="loopml-value-") as tmp:
            serializer, type_name = self._serializer.dump(value, Path(tmp))
            manifest = store_folder(self._blobs, Path(tmp))
        return ArtifactRef(manifest.digest, serializer, type_name, manifest.to_dict())

    def load(self, ref: ArtifactRef) -> Any:
        manifest = Manifest.from_dict(ref.manifest)
        if manifest.digest != ref.digest:
            raise IntegrityError(
                f"The file list of artifact {ref.digest} does not match its digest.",
                "The record was altered; rerun the step that produced it with --no-cache.",
            )
        with tempfile.TemporaryDirectory(prefix="loopml-value-") as tmp:
            fetch_folder(self._blobs, manifest, Path(tmp))
            return self._serializer.load(ref.serializer, Path(tmp))
