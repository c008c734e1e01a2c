"""The bodies the team server's operations read and answer, as dataclasses: FastAPI validates
them on the server, the client builds them from a port call's arguments. A `Reply` stands for a
port method's tuple (or single) result on the wire; the client unpacks it again."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, make_dataclass
from datetime import datetime
from typing import Any

from loopml.domain.filters import RunQuery
from loopml.domain.loops import LoopRun, LoopSpec
from loopml.domain.manifest import Manifest
from loopml.domain.records import (
    Alert,
    AlertRule,
    DatasetVersion,
    Deployment,
    MetricPoint,
    Monitor,
    MonitorRun,
    RunArtifact,
    RunStatus,
)
from loopml.errors import InvalidInput
from loopml.ports import ArtifactRef


@dataclass
class Reply:
    """An answer that is a port method's result packed into named fields."""

    def unpacked(self) -> Any:
        values = tuple(getattr(self, f.name) for f in fields(self))
        return values[0] if len(values) == 1 else values


def _fields(name: str, *bases: type, **types: Any) -> type[Any]:
    """A body of required fields only (most of them), as a dataclass named `name`."""
    return make_dataclass(name, list(types.items()), bases=bases)


@dataclass
class EventIn:
    action: str
    entity: str


@dataclass
class PointsIn:
    """Metric points as four columns, entry i of each being point i: a tenth of the work of a
    list of objects to send and to read."""

    keys: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    timestamps_ms: list[int] = field(default_factory=list)

    @staticmethod
    def of(points: Any) -> dict[str, list[Any]]:
        """Points (a sequence of MetricPoint) as the four columns."""
        return {
            "keys": [p.key for p in points],
            "values": [p.value for p in points],
            "steps": [p.step for p in points],
            "timestamps_ms": [p.timestamp_ms for p in points],
        }

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
class NewDatasetIn:
    manifest: Manifest
    message: str
    event: EventIn
    table_schema: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None


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


MAX_HEARTBEAT_RUNS = 10_000


@dataclass
class RunIdsIn:
    run_ids: list[str]
    """Runs of the caller's (a heartbeat: the running runs of one client process, at most
    `MAX_HEARTBEAT_RUNS`)."""


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
class UserIn:
    name: str
    role: str | None = None


@dataclass
class TokenIn:
    digest: str
    """The SHA-256 (hex) of the token the client made."""
    hint: str
    name: str = "default"
    expires_at: datetime | None = None


@dataclass
class ModelOfRun(Reply):
    project: str
    model: str
    version: int
    run_id: str


@dataclass
class StepIoIn:
    project: str
    step_name: str
    inputs: dict[str, ArtifactRef]
    outputs: list[ArtifactRef]
    cache_key: str | None = None


AddedVersion = _fields("AddedVersion", Reply, version=DatasetVersion, created=bool)
AliasIn = _fields("AliasIn", version=int | None, event=EventIn)
AliasOut = _fields("AliasOut", Reply, version=int | None)
GrantIn = _fields("GrantIn", role=str | None)
Created = _fields("Created", Reply, created=bool)
Held = _fields("Held", Reply, held=bool)
Exists = _fields("Exists", Reply, exists=bool)
StepIoOut = _fields("StepIoOut", Reply, inputs=dict[str, ArtifactRef], outputs=list[ArtifactRef])
ArtifactRunsOut = _fields("ArtifactRunsOut", Reply, made=list[str], read=list[str])
DeletionIn = _fields("DeletionIn", event=EventIn)
DeploymentIn = _fields("DeploymentIn", deployment=Deployment, event=EventIn)
SavedDeployment = _fields("SavedDeployment", Reply, deployment=Deployment, created=bool)
MonitorIn = _fields("MonitorIn", monitor=Monitor, event=EventIn)
SavedMonitor = _fields("SavedMonitor", Reply, monitor=Monitor, created=bool)
MonitorRunIn = _fields("MonitorRunIn", run=MonitorRun, event=EventIn)
RuleIn = _fields("RuleIn", rule=AlertRule, event=EventIn)
AlertIn = _fields("AlertIn", alert=Alert, event=EventIn)
LoopIn = _fields("LoopIn", spec=LoopSpec, event=EventIn)
LoopRunIn = _fields("LoopRunIn", run=LoopRun, event=EventIn)
LeaseIn = _fields("LeaseIn", owner=str, ttl_s=float)
LeaseOut = _fields("LeaseOut", Reply, holder=str | None, until_us=int | None)
