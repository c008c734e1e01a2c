"""The `ModelStore` port in memory."""

from __future__ import annotations

import dataclasses

from loopml.adapters.memory.database import (
    MemoryDatabase,
    ModelRow,
    StoredModelVersion,
    json_copy,
    us_to_datetime,
)
from loopml.domain.manifest import Manifest
from loopml.domain.records import EventDraft, ModelSummary, ModelVersion
from loopml.errors import NotFound
from loopml.ports import NewModelVersion


def _missing_model(project: str, name: str) -> NotFound:
    return NotFound(
        f"Model {name!r} does not exist in project {project!r}.",
        "List models with `loopml models list`.",
    )


def _with_aliases(stored: StoredModelVersion, aliases: dict[str, int]) -> ModelVersion:
    record = stored.record
    return dataclasses.replace(
        record,
        signature=json_copy(record.signature),
        metrics=json_copy(record.metrics),
        flavor_info=json_copy(record.flavor_info),
        aliases=tuple(sorted(a for a, v in aliases.items() if v == record.version)),
    )


def _same_files_from_same_run(row: ModelRow, new: NewModelVersion) -> StoredModelVersion | None:
    """The version `new` registered already: the same files from the same run."""
    if new.run_id is None:
        return None
    wanted = (new.run_id, new.manifest.digest)
    found = (s for s in row.versions if (s.record.run_id, s.record.artifact_digest) == wanted)
    return next(found, None)


class MemoryModelStore:
    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    def register(self, new: NewModelVersion, event: EventDraft) -> ModelVersion:
        with self._db.lock:
            now = self._db.clock()
            if new.run_id is not None:
                self._db.require_run_in(
                    new.run_id, new.project, f"a version of model {new.name!r}",
                    "Register the model in project {run_project!r}, or train it in a run of "
                    "{project!r}.",
                )  # fmt: skip
            self._db.ensure_project(new.project, now)
            row = self._db.tables.models.setdefault((new.project, new.name), ModelRow(now))
            digest = new.manifest.digest
            again = _same_files_from_same_run(row, new)
            if again is not None:  # a retried register
                return _with_aliases(again, row.aliases)
            record = ModelVersion(
                project=new.project,
                name=new.name,
                version=len(row.versions) + 1,
                run_id=new.run_id,
                flavor=new.flavor,
                artifact_digest=digest,
                signature=json_copy(new.signature),
                metrics=json_copy(new.metrics),
                created_at=us_to_datetime(now),
                actor=event.actor,
                flavor_info=json_copy(new.flavor_info),
            )
            stored = StoredModelVersion(record, new.manifest.to_dict())
            row.versions.append(stored)
            after = {
                "version": record.version,
                "run_id": new.run_id,
                "flavor": new.flavor,
                "artifact_digest": digest,
            }
            self._db.append_event(
                EventDraft(event.action, event.entity, event.actor, None, after), now
            )
            return _with_aliases(stored, row.aliases)

    def _model(self, project: str, name: str) -> ModelRow:
        row = self._db.tables.models.get((project, name))
        if row is None:
            raise _missing_model(project, name)
        return row

    def _stored(self, project: str, name: str, version: int) -> StoredModelVersion:
        row = self._model(project, name)
        latest = len(row.versions)
        if not 1 <= version <= latest:
            have = f"its versions are 1 to {latest}" if latest else "it has no versions yet"
            raise NotFound(
                f"Model {name!r} has no version {version}; {have}.",
                f"List versions with `loopml models versions {name}`.",
            )
        return row.versions[version - 1]

    def get_version(self, project: str, name: str, version: int) -> ModelVersion:
        with self._db.lock:
            stored = self._stored(project, name, version)
            return _with_aliases(stored, self._model(project, name).aliases)

    def get_manifest(self, project: str, name: str, version: int) -> Manifest:
        with self._db.lock:
            return Manifest.from_dict(self._stored(project, name, version).manifest)

    def resolve_alias(self, project: str, name: str, alias: str) -> int:
        with self._db.lock:
            aliases = self._model(project, name).aliases
            if alias not in aliases:
                known = ", ".join(sorted(aliases)) or "none"
                raise NotFound(
                    f"Model {name!r} has no alias {alias!r} (its aliases: {known}).",
                    f"Set it with `loopml models alias set {name} {alias} VERSION`.",
                )
            return aliases[alias]

    def set_alias(
        self, project: str, name: str, alias: str, version: int | None, event: EventDraft
    ) -> int | None:
        with self._db.lock:
            row = self._model(project, name)
            if version is not None:
                self._stored(project, name, version)
            before = row.aliases.get(alias)
            if version is None:
                if before is None:
                    raise NotFound(
                        f"Model {name!r} has no alias {alias!r} to delete.",
                        f"See its aliases with `loopml models versions {name}`.",
                    )
                del row.aliases[alias]
            else:
                row.aliases[alias] = version
            draft = EventDraft(
                event.action,
                event.entity,
                event.actor,
                {"alias": alias, "version": before},
                {"alias": alias, "version": version},
            )
            self._db.append_event(draft, self._db.clock())
            return before

    def list_models(self, project: str) -> list[ModelSummary]:
        with self._db.lock:
            found = [
                ModelSummary(
                    project=project,
                    name=name,
                    description=row.description,
                    latest_version=len(row.versions),
                    aliases=dict(row.aliases),
                    created_at=us_to_datetime(row.created_us),
                )
                for (owner, name), row in self._db.tables.models.items()
                if owner == project
            ]
        return sorted(found, key=lambda summary: summary.name)

    def list_versions(self, project: str, name: str) -> list[ModelVersion]:
        with self._db.lock:
            row = self._model(project, name)
            return [_with_aliases(stored, row.aliases) for stored in row.versions]
