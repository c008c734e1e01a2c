"""Pipelines: step outputs stored as typed artifacts, the step cache, the lineage between
dataset versions, runs and model versions, and the executors that run steps."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from loopml.domain.hashing import Digest
from loopml.domain.records import (
    RunId,
)


@dataclass(frozen=True)
class ArtifactRef:
    """A stored step output: its files (a manifest named by its digest) and how to read them."""

    digest: Digest
    """The manifest digest: the artifact's identity, equal for equal content."""
    serializer: str
    """`parquet`, `numpy`, `json`, `sklearn` (the registry flavor) or `pickle`."""
    type_name: str
    manifest: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "serializer": self.serializer,
            "type_name": self.type_name,
            "manifest": self.manifest,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtifactRef:
        return cls(Digest(data["digest"]), data["serializer"], data["type_name"], data["manifest"])


class ValueSerializer(Protocol):
    """Writes a Python value into an empty folder with a serializer chosen by its type, and
    reads it back. The same value must give the same bytes (content identity for the cache)."""

    def dump(self, value: Any, directory: Path) -> tuple[str, str]:
        """Returns (serializer name, type name)."""
        ...

    def load(self, serializer: str, directory: Path) -> Any: ...

    def may_hold_model(self, serializer: str) -> bool:
        """Whether a value written by `serializer` can be a model (a flavor's, or a pickle)."""
        ...


class Executor(Protocol):
    """Runs picklable tasks: in process, on a process pool, or on a Ray cluster."""

    name: str
    parallelism: int
    """How many tasks may usefully run at once."""

    def submit(self, fn: Callable[[Any], Any], task: Any) -> Future[Any]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class CachedStep:
    run_id: RunId
    """The step run that produced the outputs."""
    outputs: tuple[ArtifactRef, ...]


class PipelineStore(Protocol):
    """Step outputs as typed artifacts, what each run read and wrote, and the step cache."""

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
        """Store artifacts and the run's inputs/outputs, and the cache entry, in one transaction."""
        ...

    def cached(self, project: str, cache_key: str) -> CachedStep | None:
        """Outputs of a finished step run with this key, if any."""
        ...

    def io_of(self, run_id: RunId) -> tuple[dict[str, ArtifactRef], list[ArtifactRef]]:
        """(inputs by argument name, outputs in order) of a run."""
        ...

    def artifact_runs(self, digest: str) -> tuple[list[RunId], list[RunId]]:
        """(runs that produced the artifact, runs that read it)."""
        ...


class LineageStore(Protocol):
    """The links between dataset versions, runs and model versions, both ways."""

    def runs_using_dataset(self, project: str, name: str, version: int) -> list[RunId]: ...

    def model_versions_of(self, run_ids: Sequence[RunId]) -> list[tuple[str, str, int, RunId]]:
        """(project, model, version, run) for every model version made by these runs."""
        ...

    def children_of(self, run_id: RunId) -> list[RunId]: ...

    def runs_producing_dataset(self, project: str, ref: str) -> list[RunId]:
        """Runs that made dataset version `ref` (`name@N`): those tagged `loopml.produces.*`
        with it."""
        ...


class PipelineRecords(PipelineStore, LineageStore, Protocol):
    """Pipeline runs and the lineage between their step runs: one store keeps both."""
