"""The records loopml stores, as frozen values: datasets, runs, models, events.

Typed ids keep a run id from being passed where a model name is expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NewType

from loopml.domain.hashing import Digest
from loopml.errors import NotFound

RunId = NewType("RunId", str)
ProjectName = NewType("ProjectName", str)

DEFAULT_PROJECT = ProjectName("default")


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable version of a named dataset."""

    project: str
    name: str
    version: int
    digest: Digest
    message: str
    created_at: datetime
    actor: str
    file_count: int
    total_size: int
    schema: dict[str, Any] | None = None
    """Tabular schema as stored (see `loopml.domain.table_schema`); None for non-tabular data."""

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class DatasetSummary:
    project: str
    name: str
    latest_version: int
    created_at: datetime
    updated_at: datetime


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    KILLED = "killed"


RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.RUNNING: frozenset({RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED}),
    RunStatus.FINISHED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.KILLED: frozenset(),
}
"""Which status a run may move to from each status: only a running run ends, and only once."""


@dataclass(frozen=True, slots=True)
class MetricPoint:
    key: str
    value: float
    step: int
    timestamp_ms: int


@dataclass(frozen=True)
class RunArtifact:
    path: str
    digest: Digest
    size: int


PRODUCES_TAG = "loopml.produces."
"""A run tagged `loopml.produces.<role>` = `name@N` made that dataset version (lineage reads it)."""


@dataclass(frozen=True)
class Run:
    """A run with its latest metric values, params, tags and inputs."""

    id: RunId
    project: str
    name: str
    status: RunStatus
    start_time: datetime
    end_time: datetime | None
    error: str | None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    """Dataset versions used, as `name@version` refs."""
    parent_id: RunId | None = None

    @property
    def duration_s(self) -> float | None:
        if self.end_time is None:
            return None
        return (self.end_time - self.start_time).total_seconds()


@dataclass(frozen=True)
class ModelSummary:
    project: str
    name: str
    description: str
    latest_version: int
    aliases: dict[str, int]
    created_at: datetime


@dataclass(frozen=True)
class ModelVersion:
    project: str
    name: str
    version: int
    run_id: RunId | None
    flavor: str
    artifact_digest: Digest
    signature: dict[str, Any]
    metrics: dict[str, float]
    created_at: datetime
    actor: str
    aliases: tuple[str, ...] = ()
    flavor_info: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"


@dataclass(frozen=True)
class EventDraft:
    """A mutation to record: who did what to which entity, with the state before and after."""

    action: str
    entity: str
    """`kind:project/name[...]`, e.g. `model:default/churn`, `run:default/<id>`."""
    actor: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


@dataclass(frozen=True)
class Event:
    """An appended, hash-chained entry of the audit trail."""

    seq: int
    time: datetime
    action: str
    entity: str
    actor: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Deployment:
    """A served endpoint: a model reference (usually an alias), an optional shadow that sees
    every request without answering, and an optional canary that answers a share of them."""

    project: str
    name: str
    model_ref: str
    shadow_ref: str | None
    canary_ref: str | None
    canary_percent: float
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Monitor:
    """Checks of a deployment on a schedule over a sliding time window: drift of its served
    rows against a reference dataset version (summarised once, when the monitor is made;
    `summary_digest` names that summary in the artifact store), or its health (a probe)."""

    project: str
    name: str
    deployment: str
    reference: str | None
    """The dataset version, pinned (`name@N`); None for a health probe."""
    summary_digest: Digest | None
    window_s: int
    every_s: int
    created_at: datetime
    updated_at: datetime
    probe_url: str | None = None
    """A health probe: the server's base URL, whose `/v2/health/ready` each run asks."""

    @property
    def kind(self) -> str:
        return "health" if self.probe_url else "drift"


@dataclass(frozen=True)
class MonitorRun:
    """One evaluation of a monitor over one window; the full report is a JSON artifact."""

    id: int
    project: str
    monitor: str
    time: datetime
    window_start_us: int
    window_end_us: int
    rows: int
    drift_share: float
    """Share of the model's inputs that drifted."""
    drifted: tuple[str, ...]
    report_digest: Digest
    weighted_drift: float | None = None
    """Share of the model's importance on the drifted inputs (None: a health probe, or a run
    recorded before it was measured)."""


@dataclass(frozen=True)
class AlertRule:
    """A condition over a monitor's reports and the channels told when it starts and stops
    holding. `cooldown_s`: a rule that fires again this soon after resolving reopens its alert
    without telling anyone again. `resolve_after` and `resolve_margin`: how a firing alert
    resolves (`loopml.domain.alerts.decide`)."""

    id: int
    project: str
    target: str
    """The monitor whose runs the condition reads."""
    condition: str
    channels: tuple[str, ...]
    cooldown_s: int
    created_at: datetime
    resolve_after: int = 1
    """Consecutive monitor runs on which the condition must be false before the alert
    resolves (1: the first run it is false)."""
    resolve_margin: float = 0.0
    """How far past the threshold the value must be to count as false: `accuracy < 0.8` with
    margin 0.05 clears only at accuracy >= 0.85."""


@dataclass(frozen=True)
class Delivery:
    """One notice sent (or not) on one channel."""

    channel: str
    event: str
    """`fired` or `resolved`."""
    ok: bool
    attempts: int
    error: str | None
    time_us: int


@dataclass(frozen=True)
class Alert:
    """A rule's condition holding: firing -> acknowledged (optional) -> resolved."""

    id: int
    project: str
    rule_id: int
    target: str
    condition: str
    state: str
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    value: float | None
    """The field's value in the latest run when the alert last changed."""
    deliveries: tuple[Delivery, ...]


def missing_tag(run_id: str, key: str) -> NotFound:
    """The error for a tag a run does not have."""
    return NotFound(
        f"Run {run_id} has no tag {key[:250]!r}.", f"See its tags with `loopml runs show {run_id}`."
    )


def missing_run(run_id: str) -> NotFound:
    """The error for a run that is not there (or that the caller may not know of)."""
    return NotFound(
        f"Run {run_id!r} does not exist.", "List runs with `loopml runs list` to find its id."
    )
