"""Quick stores of datasets, models, deployments and the audit trail: their reads in plain SQL
on `sqlite3`, their writes through the full SQL stores (see `loopml.adapters.sql.quick`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from loopml.adapters.sql.quick import QuickDatabase, QuickStore, Reader, placeholders
from loopml.adapters.sql.rows import (
    Clock,
    missing_alias,
    missing_dataset,
    missing_dataset_version,
    missing_deployment,
    missing_model,
    missing_model_version,
    to_dataset_summary,
    to_dataset_version,
    to_deployment,
    to_event,
    to_model_summary,
    to_model_version,
)
from loopml.domain.manifest import Manifest
from loopml.domain.records import (
    DatasetSummary,
    DatasetVersion,
    Deployment,
    Event,
    EventDraft,
    ModelSummary,
    ModelVersion,
)

if TYPE_CHECKING:
    from loopml.adapters.sql.datasets import SqlDatasetStore
    from loopml.adapters.sql.deployments import SqlDeploymentStore
    from loopml.adapters.sql.engine import Database
    from loopml.adapters.sql.events import SqlEventLog
    from loopml.adapters.sql.models import SqlModelStore
    from loopml.ports import NewDatasetVersion, NewModelVersion

_DATASET_VERSION = """
    SELECT d.project, d.name, v.version, v.digest, v.message, v.created_us, v.actor,
           v.file_count, v.total_size, v.table_schema, v.id AS version_id
    FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id
"""
_MODEL_VERSION = """
    SELECT m.project, m.name, v.version, v.run_id, v.flavor, v.flavor_info, v.artifact_digest,
           v.signature, v.metrics, v.created_us, v.actor, v.model_id
    FROM model_versions v JOIN models m ON m.id = v.model_id
"""


def _sql_datasets(db: Database, clock: Clock) -> SqlDatasetStore:
    from loopml.adapters.sql.datasets import SqlDatasetStore

    return SqlDatasetStore(db, clock)


class QuickDatasetStore(QuickStore["SqlDatasetStore"]):
    """The `DatasetStore` port: versions, manifests, profiles and lists read quickly."""

    def __init__(self, quick: QuickDatabase) -> None:
        super().__init__(quick, _sql_datasets)

    def add_version(self, new: NewDatasetVersion, event: EventDraft) -> tuple[DatasetVersion, bool]:
        return self.full.add_version(new, event)

    @staticmethod
    def _version_row(reader: Reader, project: str, name: str, version: int | None) -> Any:
        found = reader.one(
            "SELECT id, latest_version FROM datasets WHERE project = ? AND name = ?",
            (project, name),
        )
        if found is None:
            raise missing_dataset(project, name)
        number = found.latest_version if version is None else version
        row = reader.one(
            f"{_DATASET_VERSION} WHERE v.dataset_id = ? AND v.version = ?", (found.id, number)
        )
        if row is None:
            raise missing_dataset_version(name, number, found.latest_version)
        return row

    def get_version(self, project: str, name: str, version: int | None) -> DatasetVersion:
        with self._quick.read() as reader:
            return to_dataset_version(self._version_row(reader, project, name, version))

    def _column(self, project: str, name: str, version: int, column: str) -> Any:
        with self._quick.read() as reader:
            row = self._version_row(reader, project, name, version)
            found = reader.one(
                f"SELECT {column} FROM dataset_versions WHERE id = ?", (row.version_id,)
            )
        assert found is not None  # read in the same transaction
        return found[column]

    def get_manifest(self, project: str, name: str, version: int) -> Manifest:
        return Manifest.from_dict(self._column(project, name, version, "manifest"))

    def get_profile(self, project: str, name: str, version: int) -> dict[str, Any] | None:
        profile: dict[str, Any] | None = self._column(project, name, version, "profile")
        return profile

    def list_datasets(self, project: str) -> list[DatasetSummary]:
        with self._quick.read() as reader:
            rows = reader.all("SELECT * FROM datasets WHERE project = ? ORDER BY name", (project,))
        return [to_dataset_summary(row) for row in rows]

    def list_versions(self, project: str, name: str) -> list[DatasetVersion]:
        with self._quick.read() as reader:
            rows = reader.all(
                f"{_DATASET_VERSION} WHERE d.project = ? AND d.name = ? ORDER BY v.version",
                (project, name),
            )
        if not rows:
            raise missing_dataset(project, name)
        return [to_dataset_version(row) for row in rows]


def _sql_models(db: Database, clock: Clock) -> SqlModelStore:
    from loopml.adapters.sql.models import SqlModelStore

    return SqlModelStore(db, clock)


class QuickModelStore(QuickStore["SqlModelStore"]):
    """The `ModelStore` port: versions, aliases and lists read quickly."""

    def __init__(self, quick: QuickDatabase) -> None:
        super().__init__(quick, _sql_models)

    def register(self, new: NewModelVersion, event: EventDraft) -> ModelVersion:
        return self.full.register(new, event)

    def set_alias(
        self, project: str, name: str, alias: str, version: int | None, event: EventDraft
    ) -> int | None:
        return self.full.set_alias(project, name, alias, version, event)

    @staticmethod
    def _model_id(reader: Reader, project: str, name: str) -> tuple[int, int]:
        row = reader.one(
            "SELECT id, latest_version FROM models WHERE project = ? AND name = ?", (project, name)
        )
        if row is None:
            raise missing_model(project, name)
        return int(row.id), int(row.latest_version)

    def _version_row(self, reader: Reader, project: str, name: str, version: int) -> Any:
        model_id, latest = self._model_id(reader, project, name)
        row = reader.one(
            f"{_MODEL_VERSION} WHERE v.model_id = ? AND v.version = ?", (model_id, version)
        )
        if row is None:
            raise missing_model_version(name, version, latest)
        return row

    @staticmethod
    def _aliases(reader: Reader, model_ids: list[int]) -> dict[int, dict[str, int]]:
        found: dict[int, dict[str, int]] = defaultdict(dict)
        rows = reader.all(
            f"SELECT * FROM model_aliases WHERE model_id IN ({placeholders(model_ids)})",
            model_ids,
        )
        for row in rows:
            found[row.model_id][row.alias] = row.version
        return found

    def get_version(self, project: str, name: str, version: int) -> ModelVersion:
        with self._quick.read() as reader:
            row = self._version_row(reader, project, name, version)
            return to_model_version(row, self._aliases(reader, [row.model_id])[row.model_id])

    def get_manifest(self, project: str, name: str, version: int) -> Manifest:
        with self._quick.read() as reader:
            self._version_row(reader, project, name, version)
            data = reader.scalar(
                "SELECT v.manifest FROM model_versions v JOIN models m ON m.id = v.model_id "
                "WHERE m.project = ? AND m.name = ? AND v.version = ?",
                (project, name, version),
            )
        return Manifest.from_dict(data)

    def resolve_alias(self, project: str, name: str, alias: str) -> int:
        with self._quick.read() as reader:
            model_id, _ = self._model_id(reader, project, name)
            aliases = self._aliases(reader, [model_id])[model_id]
        if alias not in aliases:
            raise missing_alias(name, alias, aliases)
        return aliases[alias]

    def list_models(self, project: str) -> list[ModelSummary]:
        with self._quick.read() as reader:
            rows = reader.all("SELECT * FROM models WHERE project = ? ORDER BY name", (project,))
            aliases = self._aliases(reader, [r.id for r in rows])
        return [to_model_summary(r, aliases[r.id]) for r in rows]

    def list_versions(self, project: str, name: str) -> list[ModelVersion]:
        with self._quick.read() as reader:
            model_id, _ = self._model_id(reader, project, name)
            rows = reader.all(
                f"{_MODEL_VERSION} WHERE v.model_id = ? ORDER BY v.version", (model_id,)
            )
            aliases = self._aliases(reader, [model_id])[model_id]
        return [to_model_version(row, aliases) for row in rows]


def _sql_deployments(db: Database, clock: Clock) -> SqlDeploymentStore:
    from loopml.adapters.sql.deployments import SqlDeploymentStore

    return SqlDeploymentStore(db, clock)


class QuickDeploymentStore(QuickStore["SqlDeploymentStore"]):
    """The `DeploymentStore` port: one deployment and the list read quickly."""

    def __init__(self, quick: QuickDatabase) -> None:
        super().__init__(quick, _sql_deployments)

    def save(self, deployment: Deployment, event: EventDraft) -> tuple[Deployment, bool]:
        return self.full.save(deployment, event)

    def delete(self, project: str, name: str, event: EventDraft) -> None:
        self.full.delete(project, name, event)

    def get(self, project: str, name: str) -> Deployment:
        with self._quick.read() as reader:
            row = reader.one(
                "SELECT * FROM deployments WHERE project = ? AND name = ?", (project, name)
            )
        if row is None:
            raise missing_deployment(project, name)
        return to_deployment(row)

    def list(self, project: str) -> list[Deployment]:
        with self._quick.read() as reader:
            rows = reader.all(
                "SELECT * FROM deployments WHERE project = ? ORDER BY name", (project,)
            )
        return [to_deployment(row) for row in rows]


def _sql_events(db: Database, clock: Clock) -> SqlEventLog:
    from loopml.adapters.sql.events import SqlEventLog

    return SqlEventLog(db, clock)


class QuickEventLog(QuickStore["SqlEventLog"]):
    """The `EventLog` port: the trail read quickly, appended to through the full log."""

    def __init__(self, quick: QuickDatabase) -> None:
        super().__init__(quick, _sql_events)

    def append(self, event: EventDraft) -> Event:
        return self.full.append(event)

    def list(
        self, *, entity: str | None = None, action: str | None = None, limit: int = 100
    ) -> list[Event]:
        where, params = ["1 = 1"], []
        if entity is not None:
            # `entity` and what is under it; `_` and `%` are letters (no LIKE), case counts
            prefix = entity + "/"
            where.append("(entity = ? OR substr(entity, 1, ?) = ?)")
            params += [entity, len(prefix), prefix]
        if action is not None:
            where.append("action = ?")
            params.append(action)
        sql = f"SELECT * FROM events WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?"
        with self._quick.read() as reader:
            rows = reader.all(sql, [*params, limit])
        return [to_event(row) for row in rows]

    def iterate(self) -> Iterator[Event]:
        batch, last = 1000, 0
        while True:
            with self._quick.read() as reader:
                rows = reader.all(
                    "SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (last, batch)
                )
            yield from (to_event(row) for row in rows)
            if len(rows) < batch:
                return
            last = rows[-1].seq
