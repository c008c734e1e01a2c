"""Manifests: an immutable map of relative path -> (blob digest, size), named by its own digest."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loopml.domain.hashing import Digest, digest_json
from loopml.errors import InvalidInput

MANIFEST_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class BlobRef:
    """Where a file's bytes live: the blob digest and its size."""

    digest: Digest
    size: int


def safe_relative_path(path: str) -> str:
    """`path` as a forward-slash relative path, or InvalidInput if it escapes its root."""
    cleaned = path.replace("\\", "/")
    if not cleaned or cleaned.startswith("/") or (len(cleaned) > 1 and cleaned[1] == ":"):
        raise InvalidInput(
            f"Path {path!r} is absolute or empty; stored names must be relative.",
            "Give a path relative to the dataset or artifact root, such as 'train/part-0.csv'.",
        )
    normal = posixpath.normpath(cleaned)
    if normal == ".." or normal.startswith("../") or "/../" in f"/{normal}/":
        raise InvalidInput(
            f"Path {path!r} climbs out of its root with '..'.",
            "Give a path that stays inside the dataset or artifact root.",
        )
    return normal


@dataclass(frozen=True)
class Manifest:
    """Files by relative path. Equal content gives an equal `digest`."""

    files: Mapping[str, BlobRef] = field(default_factory=dict)

    @classmethod
    def of(cls, entries: Iterable[tuple[str, BlobRef]]) -> Manifest:
        files: dict[str, BlobRef] = {}
        for path, ref in entries:
            files[safe_relative_path(path)] = ref
        return cls(dict(sorted(files.items())))

    @property
    def digest(self) -> Digest:
        return digest_json(self.to_dict())

    @property
    def total_size(self) -> int:
        return sum(ref.size for ref in self.files.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": MANIFEST_SCHEMA_VERSION,
            "files": {p: {"digest": r.digest, "size": r.size} for p, r in self.files.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        files = data.get("files", {})
        return cls({p: BlobRef(Digest(v["digest"]), int(v["size"])) for p, v in files.items()})


@dataclass(frozen=True)
class ManifestDiff:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def diff_manifests(old: Manifest, new: Manifest) -> ManifestDiff:
    """Files added, removed and changed from `old` to `new`."""
    old_paths, new_paths = set(old.files), set(new.files)
    changed = [p for p in old_paths & new_paths if old.files[p].digest != new.files[p].digest]
    return ManifestDiff(
        added=tuple(sorted(new_paths - old_paths)),
        removed=tuple(sorted(old_paths - new_paths)),
        changed=tuple(sorted(changed)),
    )
