"""Runs: the store of tracked runs, its optional capabilities (heartbeats, ending silent
runs), and the probe of the environment a run records."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from loopml.domain.filters import RunQuery
from loopml.domain.records import (
    EventDraft,
    MetricPoint,
    Run,
    RunArtifact,
    RunId,
    RunStatus,
)


@dataclass(frozen=True)
class RunPage:
    runs: list[Run]
    total: int


@dataclass(frozen=True)
class NewRun:
    project: str
    name: str
    environment: dict[str, Any]
    tags: dict[str, str]
    parent_id: RunId | None = None
    artifacts: tuple[RunArtifact, ...] = ()
    params: dict[str, str] = field(default_factory=dict)
    finished: bool = False
    """Record a run that is already over (a pipeline step served from the cache)."""
    run_id: RunId | None = None
    """The id to give the run (chosen by the caller so a retried create makes one run); a new
    one when None."""
    started: datetime | None = None
    """When the run began, if not now (a run imported from another tracker keeps its time)."""


class RunStore(Protocol):
    def create_run(self, new: NewRun, event: EventDraft) -> Run: ...

    def get_run(self, run_id: RunId) -> Run: ...

    def end_run(
        self,
        run_id: RunId,
        status: RunStatus,
        error: str | None,
        now: datetime,
        event: EventDraft,
        *,
        final_metrics: Sequence[MetricPoint] = (),
    ) -> None:
        """End a running run, writing its last buffered metric points in the same transaction."""
        ...

    def log_batch(
        self,
        run_id: RunId,
        metrics: Sequence[MetricPoint] = (),
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        """Write metric points, params and tags in one transaction."""
        ...

    def delete_tag(self, run_id: RunId, key: str) -> None:
        """Remove tag `key` of a run (ended or not); NotFound when the run has no such tag."""
        ...

    def add_inputs_and_artifacts(
        self,
        run_id: RunId,
        dataset_refs: Iterable[tuple[str, str, int]],
        artifacts: Iterable[RunArtifact],
    ) -> None:
        """Link dataset versions (project, name, version) and artifacts to a run."""
        ...

    def search(self, query: RunQuery, limit: int, offset: int) -> RunPage: ...

    def metric_history(self, run_id: RunId, key: str) -> list[MetricPoint]: ...

    def list_artifacts(self, run_id: RunId) -> list[RunArtifact]: ...


@runtime_checkable
class RunHeartbeats(Protocol):
    """A RunStore that keeps its runs' signs of life (optional: checked with isinstance)."""

    def heartbeat(self, run_ids: Sequence[RunId]) -> None:
        """Stamp "alive now" on those of `run_ids` still running, in one write."""
        ...


@runtime_checkable
class SilentRunReaper(Protocol):
    """A RunStore that can end the runs whose process stopped (optional: the embedded and the
    server's stores; a client of a team server leaves it to the server)."""

    def end_silent_runs(self, silent_s: float, event: EventDraft) -> list[RunId]:
        """Mark `killed` every running run without a heartbeat for `silent_s` seconds, ending
        it at its last heartbeat; one `event` (its entity set to each run) per run."""
        ...


class EnvironmentProbe(Protocol):
    def capture(self) -> tuple[dict[str, Any], str]:
        """(environment facts, the installed-packages list as requirements text)."""
        ...
