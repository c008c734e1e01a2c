"""The bodies the team server's routes read and answer, as dataclasses FastAPI validates."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loopml.domain.filters import RunQuery
from loopml.domain.manifest import Manifest
from loopml.domain.records import (
    DatasetVersion,
    MetricPoint,
    RunArtifact,
    RunStatus,
)
from loopml.errors import InvalidInput


@dataclass
class EventIn:
    action: str
    entity: str


@dataclass
class NewDatasetIn:
    manifest: Manifest
    message: str
    event: EventIn
    table_schema: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None


@dataclass
class AddedVersion:
    version: DatasetVersion
    created: bool


@dataclass
class NewRunIn:
    name: str
    event: EventIn
    environment: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    parent_id: str | None = None
    artifacts: list[RunArtifact] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    finished: bool = False
    run_id: str | None = None


@dataclass
class PointsIn:
    """Metric points as four columns, entry i of each being point i: a tenth of the work of a
    list of objects to send and to read."""

    keys: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    timestamps_ms: list[int] = field(default_factory=list)

    def points(self) -> list[MetricPoint]:
        columns = (self.keys, self.values, self.steps, self.timestamps_ms)
        if len({len(column) for column in columns}) > 1:
            raise InvalidInput(
                "The metric columns differ in length: "
                f"{', '.join(str(len(column)) for column in columns)}.",
                "Send one key, value, step and timestamp_ms per point.",
            )
        return list(map(MetricPoint, *columns))


@dataclass
class EndRunIn:
    status: RunStatus
    now: datetime
    event: EventIn
    error: str | None = None
    final_metrics: PointsIn = field(default_factory=PointsIn)


@dataclass
class BatchIn:
    metrics: PointsIn = field(default_factory=PointsIn)
    params: dict[str, str] | None = None
    tags: dict[str, str] | None = None


@dataclass
class LinksIn:
    datasets: list[tuple[str, str, int]] = field(default_factory=list)
    artifacts: list[RunArtifact] = field(default_factory=list)


@dataclass
class HeartbeatIn:
    run_ids: list[str]
    """The running runs of one client process: at most `MAX_HEARTBEAT_RUNS`."""


MAX_HEARTBEAT_RUNS = 10_000


@dataclass
class SearchIn:
    query: RunQuery
    limit: int = 100
    offset: int = 0


@dataclass
class NewModelIn:
    flavor: str
    flavor_info: dict[str, Any]
    manifest: Manifest
    signature: dict[str, Any]
    metrics: dict[str, float]
    event: EventIn
    run_id: str | None = None


@dataclass
class AliasIn:
    version: int | None
    event: EventIn


@dataclass
class AliasOut:
    version: int | None
