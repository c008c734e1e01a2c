"""Manifests: an immutable map of relative path -> (blob digest, size), named by its own digest."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loopml.domain.hashing import Digest, digest_json, is_digest
from loopml.errors import InvalidInput

MANIFEST_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class BlobRef:
    """Where a file's bytes live: the blob digest and its size."""

    digest: Digest
    size: int


MAX_PATH_CHARS = 1000
"""Longest path a manifest may name (the stores keep paths in 1,000 characters)."""
MAX_SEGMENT_BYTES = 255
"""Longest file or folder name, in UTF-8 bytes (what common file systems allow)."""
_DRIVE = re.compile(r"[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_PATH_HINT = "Name files by a relative path inside the folder, such as 'train/part-0.csv'."


def check_manifest_path(path: object) -> str:
    """`path` if it is a canonical relative path that stays inside its folder; InvalidInput
    naming the problem otherwise. The one rule for every path a manifest names:

    relative (no leading `/`, no drive such as `C:`), forward slashes only (no `\\`), no empty,
    `.` or `..` segment, no NUL or other control character, at most `MAX_PATH_CHARS` characters
    and `MAX_SEGMENT_BYTES` bytes per segment. Applied where a manifest is made, where a server
    accepts one, and again where its files are written.
    """
    if not isinstance(path, str) or not path:
        raise InvalidInput(f"A manifest path must be non-empty text, not {path!r}.", _PATH_HINT)
    shown = repr(path[:80]) + ("..." if len(path) > 80 else "")
    if len(path) > MAX_PATH_CHARS:
        raise InvalidInput(
            f"Path {shown} is {len(path)} characters; at most {MAX_PATH_CHARS} are allowed.",
            _PATH_HINT,
        )
    if _CONTROL.search(path):
        raise InvalidInput(f"Path {shown} holds a control character.", _PATH_HINT)
    if "\\" in path:
        raise InvalidInput(
            f"Path {shown} holds a backslash; write '/' between folders.", _PATH_HINT
        )
    if path.startswith("/") or _DRIVE.match(path):
        raise InvalidInput(f"Path {shown} is absolute; stored names must be relative.", _PATH_HINT)
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidInput(
                f"Path {shown} has an empty, '.' or '..' segment; it must stay inside its "
                "folder and be written in one way.",
                _PATH_HINT,
            )
        if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
            raise InvalidInput(
                f"Path {shown} has a name over {MAX_SEGMENT_BYTES} bytes.", _PATH_HINT
            )
    return path


def safe_relative_path(path: str) -> str:
    """`path` (a local name, maybe with backslashes or `a/./b`) as the canonical relative path
    `check_manifest_path` accepts, or InvalidInput if it is absolute or climbs out with `..`."""
    cleaned = path.replace("\\", "/")
    if not cleaned or cleaned.startswith("/") or _DRIVE.match(cleaned):
        raise InvalidInput(
            f"Path {path!r} is absolute or empty; stored names must be relative.",
            "Give a path relative to the dataset or artifact root, such as 'train/part-0.csv'.",
        )
    normal = posixpath.normpath(cleaned)
    if normal == ".." or normal.startswith("../"):
        raise InvalidInput(
            f"Path {path!r} climbs out of its root with '..'.",
            "Give a path that stays inside the dataset or artifact root.",
        )
    return check_manifest_path(normal)


@dataclass(frozen=True)
class Manifest:
    """Files by relative path. Equal content gives an equal `digest`."""

    files: Mapping[str, BlobRef] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Every manifest, however made (read back from a store, sent to a server), names only
        paths inside its folder and well-formed blobs: a bad record is refused, never followed."""
        for path, ref in self.files.items():
            check_manifest_path(path)
            _check_blob_ref(path, ref)

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
        files = data.get("files", {}) if isinstance(data, Mapping) else None
        if not isinstance(files, Mapping) or not all(
            isinstance(v, Mapping) and "digest" in v and "size" in v for v in files.values()
        ):
            raise InvalidInput(
                "The manifest is malformed: 'files' must map each path to its digest and size.",
                'Send {"files": {"PATH": {"digest": "blake3:...", "size": N}}}.',
            )
        return cls({p: BlobRef(v["digest"], v["size"]) for p, v in files.items()})


def _check_blob_ref(path: str, ref: object) -> None:
    digest, size = getattr(ref, "digest", None), getattr(ref, "size", None)
    if not isinstance(digest, str) or not is_digest(digest):
        raise InvalidInput(
            f"File {path!r} of the manifest names {str(digest)[:80]!r}, not a blob digest.",
            "Write blake3:<64 hex digits>.",
        )
    if type(size) is not int or size < 0:
        raise InvalidInput(
            f"File {path!r} of the manifest has size {size!r}.", "Give a whole number of bytes."
        )


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


def manifest_digests(manifest: Manifest | Mapping[str, Any]) -> list[str]:
    """The blob digests a manifest (or its stored dict form) names."""
    if isinstance(manifest, Manifest):
        return [ref.digest for ref in manifest.files.values()]
    files = manifest.get("files") if isinstance(manifest, Mapping) else None
    if not isinstance(files, Mapping):
        return []  # malformed: the store that reads it refuses it
    return [
        entry["digest"]
        for entry in files.values()
        if isinstance(entry, Mapping) and isinstance(entry.get("digest"), str)
    ]
