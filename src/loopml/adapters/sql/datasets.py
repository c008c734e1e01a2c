"""The `DatasetStore` port on SQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from loopml.adapters.sql import tables as t
from loopml.adapters.sql.blob_refs import add_blob_refs
from loopml.adapters.sql.dialect import lock_or_create_named
from loopml.adapters.sql.engine import Database
from loopml.adapters.sql.events import Clock, append_event, ensure_project, system_clock_us
from loopml.adapters.sql.rows import (
    missing_dataset,
    missing_dataset_version,
    to_dataset_summary,
    to_dataset_version,
)
from loopml.domain.manifest import Manifest, manifest_digests
from loopml.domain.records import DatasetSummary, DatasetVersion, EventDraft
from loopml.ports import NewDatasetVersion

_VERSION_COLUMNS = (
    t.datasets.c.project,
    t.datasets.c.name,
    t.dataset_versions.c.version,
    t.dataset_versions.c.digest,
    t.dataset_versions.c.message,
    t.dataset_versions.c.created_us,
    t.dataset_versions.c.actor,
    t.dataset_versions.c.file_count,
    t.dataset_versions.c.total_size,
    t.dataset_versions.c.table_schema,
)
_JOINED = t.dataset_versions.join(t.datasets, t.datasets.c.id == t.dataset_versions.c.dataset_id)


class SqlDatasetStore:
    def __init__(self, db: Database, clock: Clock = system_clock_us) -> None:
        self._db = db
        self._clock = clock

    def add_version(self, new: NewDatasetVersion, event: EventDraft) -> tuple[DatasetVersion, bool]:
        digest = new.manifest.digest
        with self._db.write() as conn:
            now = self._clock()
            ensure_project(conn, new.project, now)
            dataset_id, latest = lock_or_create_named(
                conn, t.datasets, new.project, new.name, {"created_us": now, "updated_us": now}
            )
            existing = conn.execute(
                select(*_VERSION_COLUMNS)
                .select_from(_JOINED)
                .where(
                    t.dataset_versions.c.dataset_id == dataset_id,
                    t.dataset_versions.c.digest == digest,
                )
            ).first()
            if existing is not None:
                return to_dataset_version(existing), False
            version = latest + 1
            conn.execute(
                t.dataset_versions.insert().values(
                    dataset_id=dataset_id,
                    version=version,
                    digest=digest,
                    message=new.message,
                    actor=event.actor,
                    created_us=now,
                    file_count=len(new.manifest.files),
                    total_size=new.manifest.total_size,
                    manifest=new.manifest.to_dict(),
                    table_schema=new.schema,
                    profile=new.profile,
                )
            )
            conn.execute(
                t.datasets.update()
                .where(t.datasets.c.id == dataset_id)
                .values(latest_version=version, updated_us=now)
            )
            add_blob_refs(conn, new.project, manifest_digests(new.manifest))
            after = {"version": version, "digest": digest, **(event.after or {})}
            append_event(
                self._db,
                conn,
                EventDraft(event.action, event.entity, event.actor, event.before, after),
                now,
            )
        return self.get_version(new.project, new.name, version), True

    def _version_row(self, conn: Connection, project: str, name: str, version: int | None) -> Any:
        ds = conn.execute(
            select(t.datasets.c.id, t.datasets.c.latest_version).where(
                t.datasets.c.project == project, t.datasets.c.name == name
            )
        ).first()
        if ds is None:
            raise missing_dataset(project, name)
        number = ds.latest_version if version is None else version
        row = conn.execute(
            select(*_VERSION_COLUMNS, t.dataset_versions.c.id.label("version_id"))
            .select_from(_JOINED)
            .where(t.dataset_versions.c.dataset_id == ds.id, t.dataset_versions.c.version == number)
        ).first()
        if row is None:
            raise missing_dataset_version(name, number, ds.latest_version)
        return row

    def get_version(self, project: str, name: str, version: int | None) -> DatasetVersion:
        with self._db.read() as conn:
            return to_dataset_version(self._version_row(conn, project, name, version))

    def version_id(self, project: str, name: str, version: int) -> int:
        with self._db.read() as conn:
            return int(self._version_row(conn, project, name, version).version_id)

    def _column(self, project: str, name: str, version: int, column: Any) -> Any:
        with self._db.read() as conn:
            row = self._version_row(conn, project, name, version)
            return conn.execute(
                select(column).where(t.dataset_versions.c.id == row.version_id)
            ).scalar_one()

    def get_manifest(self, project: str, name: str, version: int) -> Manifest:
        return Manifest.from_dict(
            self._column(project, name, version, t.dataset_versions.c.manifest)
        )

    def get_profile(self, project: str, name: str, version: int) -> dict[str, Any] | None:
        profile: dict[str, Any] | None = self._column(
            project, name, version, t.dataset_versions.c.profile
        )
        return profile

    def list_datasets(self, project: str) -> list[DatasetSummary]:
        query = (
            select(t.datasets).where(t.datasets.c.project == project).order_by(t.datasets.c.name)
        )
        with self._db.read() as conn:
            return [to_dataset_summary(row) for row in conn.execute(query)]

    def list_versions(self, project: str, name: str) -> list[DatasetVersion]:
        query = (
            select(*_VERSION_COLUMNS)
            .select_from(_JOINED)
            .where(t.datasets.c.project == project, t.datasets.c.name == name)
            .order_by(t.dataset_versions.c.version)
        )
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        if not rows:
            raise missing_dataset(project, name)
        return [to_dataset_version(row) for row in rows]
