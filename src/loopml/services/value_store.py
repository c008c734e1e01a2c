"""Step values in the blob store: `ValueStore` turns a step's return value into an
`ArtifactRef` (files written by the value serializer, stored as blobs, named by the manifest
digest) and back, verifying every hash."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from loopml.domain.manifest import Manifest
from loopml.errors import IntegrityError
from loopml.ports import ArtifactRef, BlobStore, ValueSerializer
from loopml.services.folders import fetch_folder, store_folder


class ValueStore:
    """A pipeline's step values, stored as folders of blobs."""

    def __init__(self, blobs: BlobStore, serializer: ValueSerializer) -> None:
        self._blobs = blobs
        self._serializer = serializer

    def may_hold_model(self, ref: ArtifactRef) -> bool:
        """Whether the value `ref` names can be a model, without loading it."""
        return self._serializer.may_hold_model(ref.serializer)

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
