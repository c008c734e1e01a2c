"""The `PipelineStore` and `LineageStore` ports on SQL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from loopml.adapters.sql import tables as t
from loopml.adapters.sql.blob_refs import add_blob_refs
from loopml.adapters.sql.dialect import insert_ignore, upsert
from loopml.adapters.sql.engine import Database
from loopml.adapters.sql.events import Clock, system_clock_us
from loopml.adapters.sql.runs import require_run_in
from loopml.domain.hashing import Digest
from loopml.domain.manifest import Manifest, manifest_digests
from loopml.domain.records import PRODUCES_TAG, RunId, RunStatus
from loopml.errors import InvalidInput
from loopml.ports import ArtifactRef, CachedStep


def _ref(row: Any) -> ArtifactRef:
    return ArtifactRef(Digest(row.digest), row.serializer, row.type_name, row.manifest)


def _checked_manifests(refs: Sequence[ArtifactRef]) -> dict[str, Manifest]:
    """Each artifact's manifest by artifact digest, refused unless the digest is the manifest's
    own: an artifact is stored once for every project, so naming another project's artifact
    digest with other files must never pass for it."""
    manifests: dict[str, Manifest] = {}
    for ref in refs:
        manifest = Manifest.from_dict(ref.manifest)
        if manifest.digest != ref.digest:
            raise InvalidInput(
                f"Artifact {ref.digest} is sent with a manifest whose digest is {manifest.digest}.",
                "Send each step output with the manifest it is named by.",
            )
        manifests[ref.digest] = manifest
    return manifests


class SqlPipelineStore:
    def __init__(self, db: Database, clock: Clock = system_clock_us) -> None:
        self._db = db
        self._clock = clock

    def _write_artifacts(
        self, conn: Connection, refs: Sequence[ArtifactRef], project: str, now: int
    ) -> None:
        manifests = _checked_manifests(refs)
        insert_ignore(
            conn,
            t.artifacts,
            [
                {
                    "digest": r.digest,
                    "serializer": r.serializer,
                    "type_name": r.type_name,
                    "size": manifests[r.digest].total_size,
                    "manifest": manifests[r.digest].to_dict(),
                    "created_us": now,
                }
                for r in {r.digest: r for r in refs}.values()
            ],
        )
        add_blob_refs(conn, project, (d for m in manifests.values() for d in manifest_digests(m)))

    def record_io(
        self,
        run_id: RunId,
        *,
        inputs: Mapping[str, ArtifactRef],
        outputs: Sequence[ArtifactRef],
        project: str,
        cache_key: str | None,
        step_name: str,
    ) -> None:
        with self._db.write() as conn:
            now = self._clock()
            require_run_in(
                conn, run_id, project, "step I/O", "Record it under project {run_project!r}."
            )
            self._write_artifacts(conn, [*inputs.values(), *outputs], project, now)
            rows = [
                {"run_id": run_id, "direction": "in", "name": name, "artifact_digest": ref.digest}
                for name, ref in inputs.items()
            ]
            rows += [
                {
                    "run_id": run_id,
                    "direction": "out",
                    "name": f"output_{i}",
                    "artifact_digest": ref.digest,
                }
                for i, ref in enumerate(outputs)
            ]
            insert_ignore(conn, t.run_io, rows)
            if cache_key is not None:
                upsert(
                    conn,
                    t.step_cache,
                    [
                        {
                            "project": project,
                            "cache_key": cache_key,
                            "step_name": step_name,
                            "run_id": run_id,
                            "outputs": [r.digest for r in outputs],
                            "created_us": now,
                        }
                    ],
                    keys=["project", "cache_key"],
                    update=["run_id", "outputs", "created_us"],
                )

    def cached(self, project: str, cache_key: str) -> CachedStep | None:
        with self._db.read() as conn:
            row = conn.execute(
                select(t.step_cache.c.run_id, t.step_cache.c.outputs)
                .join(t.runs, t.runs.c.id == t.step_cache.c.run_id)
                .where(
                    t.step_cache.c.project == project,
                    t.step_cache.c.cache_key == cache_key,
                    t.runs.c.status == RunStatus.FINISHED.value,
                    t.runs.c.project == project,  # never another project's outputs
                )
            ).first()
            if row is None:
                return None
            found = {
                r.digest: _ref(r)
                for r in conn.execute(
                    select(t.artifacts).where(t.artifacts.c.digest.in_(row.outputs))
                )
            }
        if set(found) != set(row.outputs):
            return None
        return CachedStep(RunId(row.run_id), tuple(found[d] for d in row.outputs))

    def io_of(self, run_id: RunId) -> tuple[dict[str, ArtifactRef], list[ArtifactRef]]:
        stmt = (
            select(t.run_io.c.direction, t.run_io.c.name, t.artifacts)
            .join(t.artifacts, t.artifacts.c.digest == t.run_io.c.artifact_digest)
            .where(t.run_io.c.run_id == run_id)
        )
        inputs: dict[str, ArtifactRef] = {}
        outputs: dict[int, ArtifactRef] = {}
        with self._db.read() as conn:
            for row in conn.execute(stmt):
                if row.direction == "in":
                    inputs[row.name] = _ref(row)
                else:
                    outputs[int(row.name.rsplit("_", 1)[1])] = _ref(row)
        return inputs, [outputs[i] for i in sorted(outputs)]

    def artifact_runs(self, digest: str) -> tuple[list[RunId], list[RunId]]:
        stmt = select(t.run_io.c.run_id, t.run_io.c.direction).where(
            t.run_io.c.artifact_digest == digest
        )
        made: list[RunId] = []
        read: list[RunId] = []
        with self._db.read() as conn:
            for run_id, direction in conn.execute(stmt):
                (made if direction == "out" else read).append(RunId(run_id))
        return sorted(set(made)), sorted(set(read))

    # -- lineage ---------------------------------------------------------------------------

    def runs_using_dataset(self, project: str, name: str, version: int) -> list[RunId]:
        stmt = (
            select(t.run_inputs.c.run_id)
            .join(t.dataset_versions, t.dataset_versions.c.id == t.run_inputs.c.dataset_version_id)
            .join(t.datasets, t.datasets.c.id == t.dataset_versions.c.dataset_id)
            .where(
                t.datasets.c.project == project,
                t.datasets.c.name == name,
                t.dataset_versions.c.version == version,
            )
        )
        with self._db.read() as conn:
            return sorted(RunId(r) for r in conn.execute(stmt).scalars())

    def runs_producing_dataset(self, project: str, ref: str) -> list[RunId]:
        stmt = (
            select(t.tags.c.run_id)
            .join(t.runs, t.runs.c.id == t.tags.c.run_id)
            .where(
                t.runs.c.project == project,
                t.tags.c.key.startswith(PRODUCES_TAG, autoescape=True),
                t.tags.c.value == ref,
            )
        )
        with self._db.read() as conn:
            return sorted(RunId(r) for r in conn.execute(stmt).scalars())

    def model_versions_of(self, run_ids: Sequence[RunId]) -> list[tuple[str, str, int, RunId]]:
        stmt = (
            select(
                t.models.c.project,
                t.models.c.name,
                t.model_versions.c.version,
                t.model_versions.c.run_id,
            )
            .join(t.models, t.models.c.id == t.model_versions.c.model_id)
            .where(t.model_versions.c.run_id.in_(list(run_ids)))
            .order_by(t.models.c.name, t.model_versions.c.version)
        )
        with self._db.read() as conn:
            return [(p, n, v, RunId(r)) for p, n, v, r in conn.execute(stmt)]

    def children_of(self, run_id: RunId) -> list[RunId]:
        stmt = select(t.runs.c.id).where(t.runs.c.parent_id == run_id).order_by(t.runs.c.start_us)
        with self._db.read() as conn:
            return [RunId(r) for r in conn.execute(stmt).scalars()]
