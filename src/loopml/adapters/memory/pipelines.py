"""The `PipelineStore` and `LineageStore` ports (one `PipelineRecords`) in memory."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from loopml.adapters.memory.database import CacheEntry, MemoryDatabase, json_copy
from loopml.domain.manifest import Manifest
from loopml.domain.records import PRODUCES_TAG, RunId, RunStatus
from loopml.errors import InvalidInput
from loopml.ports import ArtifactRef, CachedStep


def _check_manifests(refs: Sequence[ArtifactRef]) -> None:
    """Each artifact is named by its manifest's digest: an artifact is stored once for every
    project, so naming another project's artifact digest with other files must never pass."""
    for ref in refs:
        manifest = Manifest.from_dict(ref.manifest)
        if manifest.digest != ref.digest:
            raise InvalidInput(
                f"Artifact {ref.digest} is sent with a manifest whose digest is {manifest.digest}.",
                "Send each step output with the manifest it is named by.",
            )


def _copy(ref: ArtifactRef) -> ArtifactRef:
    return ArtifactRef(ref.digest, ref.serializer, ref.type_name, json_copy(ref.manifest))


class MemoryPipelineStore:
    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

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
        """Store the artifacts (the first record of a digest stays), what the run read and
        wrote (the first record of each name stays), and point the cache entry at the run."""
        refs = [*inputs.values(), *outputs]
        with self._db.lock:
            self._db.require_run_in(
                run_id, project, "step I/O", "Record it under project {run_project!r}."
            )
            _check_manifests(refs)
            tables = self._db.tables
            for ref in refs:
                tables.artifacts.setdefault(ref.digest, _copy(ref))
            io = tables.run_io.setdefault(run_id, {})
            for name, ref in inputs.items():
                io.setdefault(("in", name), ref.digest)
            for i, ref in enumerate(outputs):
                io.setdefault(("out", f"output_{i}"), ref.digest)
            if cache_key is not None:
                entry = CacheEntry(run_id, tuple(ref.digest for ref in outputs))
                tables.step_cache[project, cache_key] = entry

    def cached(self, project: str, cache_key: str) -> CachedStep | None:
        """The entry's outputs when its run finished (and is of `project`)."""
        with self._db.lock:
            entry = self._db.tables.step_cache.get((project, cache_key))
            run = None if entry is None else self._db.tables.runs.get(entry.run_id)
            if entry is None or run is None or run.project != project:
                return None
            if run.status is not RunStatus.FINISHED:
                return None
            artifacts = self._db.tables.artifacts
            return CachedStep(entry.run_id, tuple(_copy(artifacts[d]) for d in entry.outputs))

    def io_of(self, run_id: RunId) -> tuple[dict[str, ArtifactRef], list[ArtifactRef]]:
        with self._db.lock:
            io = dict(self._db.tables.run_io.get(run_id, {}))
            refs = {digest: _copy(self._db.tables.artifacts[digest]) for digest in io.values()}
        inputs = {name: refs[d] for (direction, name), d in io.items() if direction == "in"}
        outputs = {
            int(name.rsplit("_", 1)[1]): refs[d]
            for (direction, name), d in io.items()
            if direction == "out"
        }
        return inputs, [outputs[i] for i in sorted(outputs)]

    def artifact_runs(self, digest: str) -> tuple[list[RunId], list[RunId]]:
        made: set[RunId] = set()
        read: set[RunId] = set()
        with self._db.lock:
            for run_id, io in self._db.tables.run_io.items():
                for (direction, _), found in io.items():
                    if found == digest:
                        (made if direction == "out" else read).add(run_id)
        return sorted(made), sorted(read)

    # -- lineage ---------------------------------------------------------------------------

    def runs_using_dataset(self, project: str, name: str, version: int) -> list[RunId]:
        with self._db.lock:
            return sorted(
                run.id
                for run in self._db.tables.runs.values()
                if run.project == project and (name, version) in run.inputs
            )

    def runs_producing_dataset(self, project: str, ref: str) -> list[RunId]:
        """Runs tagged `loopml.produces.*` = `ref`: once per such tag."""
        with self._db.lock:
            return sorted(
                run.id
                for run in self._db.tables.runs.values()
                if run.project == project
                for key, value in run.tags.items()
                if key.startswith(PRODUCES_TAG) and value == ref
            )

    def model_versions_of(self, run_ids: Sequence[RunId]) -> list[tuple[str, str, int, RunId]]:
        wanted = set(run_ids)
        with self._db.lock:
            found = [
                (project, name, stored.record.version, stored.record.run_id)
                for (project, name), model in self._db.tables.models.items()
                for stored in model.versions
                if stored.record.run_id in wanted
            ]
        return [
            (project, name, version, run_id)
            for project, name, version, run_id in sorted(found, key=lambda f: (f[1], f[2]))
            if run_id is not None
        ]

    def children_of(self, run_id: RunId) -> list[RunId]:
        with self._db.lock:
            children = [run for run in self._db.tables.runs.values() if run.parent_id == run_id]
        return [run.id for run in sorted(children, key=lambda run: run.start_us)]
