"""The `DatasetStore` port in memory."""

from __future__ import annotations

import dataclasses
from typing import Any

from loopml.adapters.memory.database import (
    DatasetRow,
    MemoryDatabase,
    StoredDatasetVersion,
    json_copy,
    us_to_datetime,
)
from loopml.domain.manifest import Manifest
from loopml.domain.records import DatasetSummary, DatasetVersion, EventDraft
from loopml.errors import NotFound
from loopml.ports import NewDatasetVersion


def _missing_dataset(project: str, name: str) -> NotFound:
    return NotFound(
        f"Dataset {name!r} does not exist in project {project!r}.",
        "List datasets with `loopml data list`, or add one with `loopml data add FILE --name "
        f"{name}`.",
    )


def _copy(version: DatasetVersion) -> DatasetVersion:
    return dataclasses.replace(version, schema=json_copy(version.schema))


class MemoryDatasetStore:
    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    def add_version(self, new: NewDatasetVersion, event: EventDraft) -> tuple[DatasetVersion, bool]:
        digest = new.manifest.digest
        with self._db.lock:
            now = self._db.clock()
            self._db.ensure_project(new.project, now)
            row = self._db.tables.datasets.setdefault((new.project, new.name), DatasetRow(now, now))
            for stored in row.versions:
                if stored.record.digest == digest:
                    return _copy(stored.record), False
            version = DatasetVersion(
                project=new.project,
                name=new.name,
                version=len(row.versions) + 1,
                digest=digest,
                message=new.message,
                created_at=us_to_datetime(now),
                actor=event.actor,
                file_count=len(new.manifest.files),
                total_size=new.manifest.total_size,
                schema=json_copy(new.schema),
            )
            manifest = new.manifest.to_dict()
            row.versions.append(StoredDatasetVersion(version, manifest, json_copy(new.profile)))
            row.updated_us = now
            after = {"version": version.version, "digest": digest, **(event.after or {})}
            draft = EventDraft(event.action, event.entity, event.actor, event.before, after)
            self._db.append_event(draft, now)
            return _copy(version), True

    def _stored(self, project: str, name: str, version: int | None) -> StoredDatasetVersion:
        row = self._db.tables.datasets.get((project, name))
        if row is None:
            raise _missing_dataset(project, name)
        latest = len(row.versions)
        number = latest if version is None else version
        if not 1 <= number <= latest:
            raise NotFound(
                f"Dataset {name!r} has no version {number}; its latest is {latest}.",
                f"List versions with `loopml data list {name}`.",
            )
        return row.versions[number - 1]

    def get_version(self, project: str, name: str, version: int | None) -> DatasetVersion:
        with self._db.lock:
            return _copy(self._stored(project, name, version).record)

    def get_manifest(self, project: str, name: str, version: int) -> Manifest:
        with self._db.lock:
            return Manifest.from_dict(self._stored(project, name, version).manifest)

    def get_profile(self, project: str, name: str, version: int) -> dict[str, Any] | None:
        with self._db.lock:
            return json_copy(self._stored(project, name, version).profile)

    def list_datasets(self, project: str) -> list[DatasetSummary]:
        with self._db.lock:
            found = [
                DatasetSummary(
                    project=project,
                    name=name,
                    latest_version=len(row.versions),
                    created_at=us_to_datetime(row.created_us),
                    updated_at=us_to_datetime(row.updated_us),
                )
                for (owner, name), row in self._db.tables.datasets.items()
                if owner == project
            ]
        return sorted(found, key=lambda summary: summary.name)

    def list_versions(self, project: str, name: str) -> list[DatasetVersion]:
        with self._db.lock:
            row = self._db.tables.datasets.get((project, name))
            if row is None:
                raise _missing_dataset(project, name)
            return [_copy(stored.record) for stored in row.versions]
