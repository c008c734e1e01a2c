"""Versioned datasets: add files or folders as immutable, content-addressed versions."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml.domain.manifest import BlobRef, Manifest, ManifestDiff, diff_manifests
from loopml.domain.records import DatasetSummary, DatasetVersion, EventDraft
from loopml.domain.refs import DatasetRef, check_name, parse_dataset_ref
from loopml.errors import InvalidInput, NotFound
from loopml.ports import BlobStore, DatasetStore, HashCache, NewDatasetVersion, TableDescriber
from loopml.services.folders import stored_manifest, target_inside
from loopml.services.tracking import current_run

dataset_pins: ContextVar[dict[str, int] | None] = ContextVar("loopml_dataset_pins", default=None)
"""Dataset name -> version that `name` and `name@latest` resolve to here (a reproduced run)."""

Progress = Callable[[str, int, int], None]
"""Called with (phase, bytes done, bytes total) while files are hashed and stored."""


@dataclass(frozen=True)
class AddResult:
    version: DatasetVersion
    created: bool


@dataclass(frozen=True)
class DatasetDiff:
    old: DatasetVersion
    new: DatasetVersion
    files: ManifestDiff
    schema_changes: list[str]
    profile_changes: list[str]


def _collect_files(path: Path) -> list[tuple[str, Path]]:
    if not path.exists():
        raise NotFound(f"No file or folder at {str(path)!r}.", "Check the path and try again.")
    if path.is_file():
        return [(path.name, path)]
    found = [
        (p.relative_to(path).as_posix(), p)
        for p in sorted(path.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    ]
    if not found:
        raise InvalidInput(f"Folder {str(path)!r} holds no files.", "Add a folder with data in it.")
    return found


class DataService:
    def __init__(
        self,
        store: DatasetStore,
        blobs: BlobStore,
        tables: TableDescriber,
        hash_cache: HashCache | None,
        actor: str,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._tables = tables
        self._cache = hash_cache
        self._actor = actor

    def add(
        self,
        path: Path,
        *,
        name: str | None = None,
        project: str,
        message: str = "",
        profile: bool = True,
        require_table: bool = False,
        progress: Progress | None = None,
    ) -> AddResult:
        """Store `path` (a file or a folder) as a version of dataset `name` (default: its stem).

        Adding the same bytes again returns the existing version. A single CSV/Parquet file gets a
        schema and a profile; with `require_table`, any other file is refused.
        """
        path = Path(path)
        name = check_name(name or path.stem, "dataset")
        files = _collect_files(path)
        tabular = len(files) == 1 and self._tables.is_tabular(files[0][1])
        if require_table and not tabular:
            raise InvalidInput(
                f"{str(path)!r} is not a CSV or Parquet file, and a table was asked for.",
                "Give a single .csv, .tsv or .parquet file.",
            )
        unchanged = self._unchanged(files, project, name)
        if unchanged is not None:
            return AddResult(unchanged, False)
        schema, table_profile = (None, None)
        if tabular and profile:
            schema, table_profile = self._tables.describe(files[0][1])
        manifest = self._store_files(files, progress)
        new = NewDatasetVersion(project, name, manifest, message, schema, table_profile)
        event = EventDraft(
            "dataset.version_added",
            f"dataset:{project}/{name}",
            self._actor,
            after={"message": message},
        )
        version, created = self._store.add_version(new, event)
        return AddResult(version, created)

    def _unchanged(
        self, files: list[tuple[str, Path]], project: str, name: str
    ) -> DatasetVersion | None:
        """The latest version, when every file is one the hash cache knows unchanged on disk
        and together they are that version: an unchanged add then reads, profiles and sends
        nothing (one lookup of the latest version)."""
        if self._cache is None:
            return None
        known = [(rel, self._cache.get(file)) for rel, file in files]
        refs = [(rel, ref) for rel, ref in known if ref is not None]
        if len(refs) < len(files):
            return None
        try:
            latest = self._store.get_version(project, name, None)
        except NotFound:
            return None
        return latest if latest.digest == Manifest.of(refs).digest else None

    def _store_files(self, files: list[tuple[str, Path]], progress: Progress | None) -> Manifest:
        total = sum(os.stat(p).st_size for _, p in files)
        done = 0

        def advance(nbytes: int) -> None:
            nonlocal done
            done += nbytes
            if progress is not None:
                progress("storing", done, total)

        entries = [(rel, self._put_file(file, advance)) for rel, file in files]
        if progress is not None:
            progress("storing", total, total)
        return Manifest.of(entries)

    def _put_file(self, path: Path, advance: Callable[[int], None]) -> BlobRef:
        """Store one file; an unchanged file known to the hash cache is neither read nor sent."""
        known = self._cache.get(path) if self._cache is not None else None
        if known is not None and self._blobs.exists(known.digest):
            advance(known.size)
            return known
        ref = self._blobs.put_file(path, progress=advance)
        if self._cache is not None:
            self._cache.put(path, ref)
        return ref

    def resolve(
        self, ref: str | DatasetRef, project: str, *, record: bool = True
    ) -> DatasetVersion:
        """The version `ref` names. Inside a run (a `with` block or a pipeline step) it is
        recorded as the run's input unless `record` is False; a pinned name resolves to its pin.
        """
        parsed = parse_dataset_ref(ref) if isinstance(ref, str) else ref
        version = parsed.version
        if version is None:
            version = (dataset_pins.get() or {}).get(parsed.name)
        found = self._store.get_version(project, parsed.name, version)
        run = current_run.get()
        if record and run is not None:
            run.use_dataset(found)
        return found

    def datasets(self, project: str) -> list[DatasetSummary]:
        return self._store.list_datasets(project)

    def versions(self, name: str, project: str) -> list[DatasetVersion]:
        return self._store.list_versions(project, check_name(name, "dataset"))

    def manifest(self, version: DatasetVersion) -> Manifest:
        return stored_manifest(
            lambda: self._store.get_manifest(version.project, version.name, version.version),
            f"dataset {version.name}@{version.version}",
        )

    def profile(self, version: DatasetVersion) -> dict[str, Any] | None:
        return self._store.get_profile(version.project, version.name, version.version)

    def get(
        self, ref: str, project: str, dest: Path, progress: Progress | None = None
    ) -> list[Path]:
        """Write the files of a version under `dest`, each verified against its hash."""
        version = self.resolve(ref, project)
        manifest = self.manifest(version)
        targets = [(target_inside(dest, rel), blob) for rel, blob in manifest.files.items()]
        total, done = manifest.total_size, 0
        for target, blob in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._blobs.get_file(blob.digest, target)
            done += blob.size
            if progress is not None:
                progress("fetching", done, total)
        return [target for target, _ in targets]

    def diff(self, old_ref: str, new_ref: str, project: str) -> DatasetDiff:
        """Files added, removed and changed, and how the schema and profile moved."""
        from loopml.domain.profile import TableProfile  # Arrow: only when diffing
        from loopml.domain.profile_diff import diff_profiles, diff_schemas
        from loopml.domain.table_schema import TableSchema

        old, new = self.resolve(old_ref, project), self.resolve(new_ref, project)
        files = diff_manifests(self.manifest(old), self.manifest(new))
        schema_changes: list[str] = []
        profile_changes: list[str] = []
        if old.schema is not None and new.schema is not None:
            schema_diff = diff_schemas(
                TableSchema.from_dict(old.schema), TableSchema.from_dict(new.schema)
            )
            schema_changes = [change.describe() for change in schema_diff.changes]
        old_profile, new_profile = self.profile(old), self.profile(new)
        if old_profile is not None and new_profile is not None:
            changes = diff_profiles(
                TableProfile.from_dict(old_profile), TableProfile.from_dict(new_profile)
            )
            profile_changes = [change.describe() for change in changes]
        return DatasetDiff(old, new, files, schema_changes, profile_changes)
