"""The `ModelStore` port on SQL."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, select

from loopml.adapters.sql import tables as t
from loopml.adapters.sql.blob_refs import add_blob_refs
from loopml.adapters.sql.dialect import lock_or_create_named, upsert
from loopml.adapters.sql.engine import Database
from loopml.adapters.sql.events import Clock, append_event, ensure_project, system_clock_us
from loopml.adapters.sql.rows import (
    missing_alias,
    missing_model,
    missing_model_version,
    to_model_summary,
    to_model_version,
)
from loopml.adapters.sql.runs import require_run_in
from loopml.domain.manifest import Manifest, manifest_digests
from loopml.domain.records import EventDraft, ModelSummary, ModelVersion
from loopml.errors import NotFound
from loopml.ports import NewModelVersion

_JOINED = t.model_versions.join(t.models, t.models.c.id == t.model_versions.c.model_id)
_VERSION_COLUMNS = (
    t.models.c.project,
    t.models.c.name,
    t.model_versions.c.version,
    t.model_versions.c.run_id,
    t.model_versions.c.flavor,
    t.model_versions.c.flavor_info,
    t.model_versions.c.artifact_digest,
    t.model_versions.c.signature,
    t.model_versions.c.metrics,
    t.model_versions.c.created_us,
    t.model_versions.c.actor,
    t.model_versions.c.model_id,
)


class SqlModelStore:
    def __init__(self, db: Database, clock: Clock = system_clock_us) -> None:
        self._db = db
        self._clock = clock

    def register(self, new: NewModelVersion, event: EventDraft) -> ModelVersion:
        version = 0
        with self._db.write() as conn:
            now = self._clock()
            if new.run_id is not None:
                require_run_in(
                    conn, new.run_id, new.project, f"a version of model {new.name!r}",
                    "Register the model in project {run_project!r}, or train it in a run of "
                    "{project!r}.",
                )  # fmt: skip
            ensure_project(conn, new.project, now)
            model_id, latest = lock_or_create_named(
                conn, t.models, new.project, new.name, {"description": "", "created_us": now}
            )
            if new.run_id is not None:  # the same files from the same run: a retried register
                again = conn.execute(
                    select(t.model_versions.c.version).where(
                        t.model_versions.c.model_id == model_id,
                        t.model_versions.c.run_id == new.run_id,
                        t.model_versions.c.artifact_digest == new.manifest.digest,
                    )
                ).scalar()
                version = 0 if again is None else int(again)
            if not version:
                version = self._insert_version(
                    conn, new, event, model_id=model_id, version=latest + 1, now=now
                )
        return self.get_version(new.project, new.name, version)

    def _insert_version(
        self,
        conn: Connection,
        new: NewModelVersion,
        event: EventDraft,
        *,
        model_id: int,
        version: int,
        now: int,
    ) -> int:
        """Add `version` of the model `model_id` with its event; returns the version."""
        conn.execute(
            t.model_versions.insert().values(
                model_id=model_id,
                version=version,
                run_id=new.run_id,
                flavor=new.flavor,
                flavor_info=new.flavor_info,
                artifact_digest=new.manifest.digest,
                manifest=new.manifest.to_dict(),
                signature=new.signature,
                metrics=new.metrics,
                actor=event.actor,
                created_us=now,
            )
        )
        conn.execute(
            t.models.update().where(t.models.c.id == model_id).values(latest_version=version)
        )
        add_blob_refs(conn, new.project, manifest_digests(new.manifest))
        append_event(
            self._db,
            conn,
            EventDraft(
                event.action,
                event.entity,
                event.actor,
                None,
                {
                    "version": version,
                    "run_id": new.run_id,
                    "flavor": new.flavor,
                    "artifact_digest": new.manifest.digest,
                },
            ),
            now,
        )
        return version

    def _model_id(self, conn: Connection, project: str, name: str) -> tuple[int, int]:
        row = conn.execute(
            select(t.models.c.id, t.models.c.latest_version).where(
                t.models.c.project == project, t.models.c.name == name
            )
        ).first()
        if row is None:
            raise missing_model(project, name)
        return int(row.id), int(row.latest_version)

    def _version_row(self, conn: Connection, project: str, name: str, version: int) -> Any:
        model_id, latest = self._model_id(conn, project, name)
        row = conn.execute(
            select(*_VERSION_COLUMNS)
            .select_from(_JOINED)
            .where(t.model_versions.c.model_id == model_id, t.model_versions.c.version == version)
        ).first()
        if row is None:
            raise missing_model_version(name, version, latest)
        return row

    def _aliases(self, conn: Connection, model_ids: list[int]) -> dict[int, dict[str, int]]:
        found: dict[int, dict[str, int]] = defaultdict(dict)
        stmt = select(t.model_aliases).where(t.model_aliases.c.model_id.in_(model_ids))
        for row in conn.execute(stmt):
            found[row.model_id][row.alias] = row.version
        return found

    def get_version(self, project: str, name: str, version: int) -> ModelVersion:
        with self._db.read() as conn:
            row = self._version_row(conn, project, name, version)
            return to_model_version(row, self._aliases(conn, [row.model_id])[row.model_id])

    def get_manifest(self, project: str, name: str, version: int) -> Manifest:
        with self._db.read() as conn:
            self._version_row(conn, project, name, version)
            data = conn.execute(
                select(t.model_versions.c.manifest)
                .select_from(_JOINED)
                .where(
                    t.models.c.project == project,
                    t.models.c.name == name,
                    t.model_versions.c.version == version,
                )
            ).scalar_one()
        return Manifest.from_dict(data)

    def resolve_alias(self, project: str, name: str, alias: str) -> int:
        with self._db.read() as conn:
            model_id, _ = self._model_id(conn, project, name)
            aliases = self._aliases(conn, [model_id])[model_id]
        if alias not in aliases:
            raise missing_alias(name, alias, aliases)
        return aliases[alias]

    def set_alias(
        self, project: str, name: str, alias: str, version: int | None, event: EventDraft
    ) -> int | None:
        with self._db.write() as conn:
            model_id, _ = self._model_id(conn, project, name)
            if version is not None:
                self._version_row(conn, project, name, version)
            before = self._aliases(conn, [model_id])[model_id].get(alias)
            if version is None:
                if before is None:
                    raise NotFound(
                        f"Model {name!r} has no alias {alias!r} to delete.",
                        f"See its aliases with `loopml models versions {name}`.",
                    )
                conn.execute(
                    t.model_aliases.delete().where(
                        t.model_aliases.c.model_id == model_id, t.model_aliases.c.alias == alias
                    )
                )
            else:
                upsert(
                    conn,
                    t.model_aliases,
                    [{"model_id": model_id, "alias": alias, "version": version}],
                    keys=["model_id", "alias"],
                    update=["version"],
                )
            append_event(
                self._db,
                conn,
                EventDraft(
                    event.action,
                    event.entity,
                    event.actor,
                    {"alias": alias, "version": before},
                    {"alias": alias, "version": version},
                ),
                self._clock(),
            )
        return before

    def list_models(self, project: str) -> list[ModelSummary]:
        with self._db.read() as conn:
            rows = conn.execute(
                select(t.models).where(t.models.c.project == project).order_by(t.models.c.name)
            ).all()
            aliases = self._aliases(conn, [r.id for r in rows])
        return [to_model_summary(r, aliases[r.id]) for r in rows]

    def list_versions(self, project: str, name: str) -> list[ModelVersion]:
        with self._db.read() as conn:
            model_id, _ = self._model_id(conn, project, name)
            rows = conn.execute(
                select(*_VERSION_COLUMNS)
                .select_from(_JOINED)
                .where(t.model_versions.c.model_id == model_id)
                .order_by(t.model_versions.c.version)
            )
            aliases = self._aliases(conn, [model_id])[model_id]
            return [to_model_version(row, aliases) for row in rows]
