"""The shared state of the in-memory stores: their tables as Python objects, one lock, a clock,
and the hash-chained audit trail every mutation appends to.

One `MemoryDatabase` plays the part of one SQL database. The stores built on it see each other's
records (a model version names a run; lineage reads runs, dataset versions and model versions),
and a mutation and its event happen under the one lock, so they are never apart. Records go in
and come out as copies (JSON values through a JSON round trip, as a database stores them), so a
caller who edits what it got back changes nothing stored.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from loopml.domain.audit import GENESIS_HASH, event_hash
from loopml.domain.epoch_us import datetime_to_us as datetime_to_us
from loopml.domain.epoch_us import us_to_datetime as us_to_datetime
from loopml.domain.records import (
    Alert,
    AlertRule,
    DatasetVersion,
    Deployment,
    Event,
    EventDraft,
    MetricPoint,
    ModelVersion,
    Monitor,
    MonitorRun,
    RunArtifact,
    RunId,
    RunStatus,
    missing_run,
)
from loopml.errors import InvalidInput
from loopml.ports import ArtifactRef

MEMORY_URL = "memory://"
"""The metadata database URL (LOOPML_DB_URL) of a workspace whose records are kept in these
stores, in the memory of the process that opens it: fresh and empty at each open, gone at its
close, seen by no other process."""

Clock = Callable[[], int]
"""Returns the current time in integer microseconds since the epoch."""

J = TypeVar("J")


def system_clock_us() -> int:
    return time.time_ns() // 1000


def json_copy(value: J) -> J:
    """`value` as a JSON column gives it back: a fresh copy, tuples made lists."""
    copied: J = json.loads(json.dumps(value))
    return copied


# -- rows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredDatasetVersion:
    record: DatasetVersion
    manifest: dict[str, Any]
    profile: dict[str, Any] | None


@dataclass
class DatasetRow:
    created_us: int
    updated_us: int
    versions: list[StoredDatasetVersion] = field(default_factory=list)
    """Version N is `versions[N - 1]`."""


@dataclass
class RunRow:
    id: RunId
    project: str
    name: str
    status: RunStatus
    start_us: int
    end_us: int | None
    parent_id: RunId | None
    environment: dict[str, Any]
    heartbeat_us: int | None
    error: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    latest: dict[str, MetricPoint] = field(default_factory=dict)
    """Each metric's point of the highest step (the later of a tie)."""
    history: list[MetricPoint] = field(default_factory=list)
    """Every point, in arrival order; an exact repeat is kept once."""
    inputs: set[tuple[str, int]] = field(default_factory=set)
    """Dataset versions read, as (name, version) of the run's project."""
    artifacts: dict[str, RunArtifact] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredModelVersion:
    record: ModelVersion
    """Without aliases: they live on the model and move."""
    manifest: dict[str, Any]


@dataclass
class ModelRow:
    created_us: int
    versions: list[StoredModelVersion] = field(default_factory=list)
    aliases: dict[str, int] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class CacheEntry:
    run_id: RunId
    outputs: tuple[str, ...]


Named = tuple[str, str]
"""(project, name): how a dataset, model, deployment, monitor or loop is found."""


@dataclass
class LoopRow:
    spec: dict[str, Any]
    """`LoopSpec.to_dict()`, as its JSON column holds it."""
    state: dict[str, Any]
    created_us: int
    updated_us: int


@dataclass(frozen=True)
class LoopRunRow:
    project: str
    loop: str
    started_us: int
    finished_us: int | None
    trigger: str
    status: str
    details: dict[str, Any]
    """`LoopRun.details()`, as its JSON column holds it."""


@dataclass
class UserRow:
    role: str | None
    created_us: int
    disabled_us: int | None = None


@dataclass
class TokenRow:
    user: str
    name: str
    hash: str
    hint: str
    created_us: int
    expires_us: int | None
    revoked_us: int | None = None


@dataclass(frozen=True)
class SessionRow:
    token_id: int
    created_us: int
    expires_us: int


@dataclass
class Tables:
    """Everything stored, one attribute per SQL table (or per table and its side tables)."""

    projects: dict[str, int] = field(default_factory=dict)
    datasets: dict[Named, DatasetRow] = field(default_factory=dict)
    runs: dict[RunId, RunRow] = field(default_factory=dict)
    models: dict[Named, ModelRow] = field(default_factory=dict)
    artifacts: dict[str, ArtifactRef] = field(default_factory=dict)
    run_io: dict[RunId, dict[tuple[str, str], str]] = field(default_factory=dict)
    """A run's step inputs and outputs: (direction, name) -> artifact digest."""
    step_cache: dict[Named, CacheEntry] = field(default_factory=dict)
    deployments: dict[Named, Deployment] = field(default_factory=dict)
    monitors: dict[Named, Monitor] = field(default_factory=dict)
    monitor_runs: dict[int, MonitorRun] = field(default_factory=dict)
    alert_rules: dict[int, AlertRule] = field(default_factory=dict)
    alerts: dict[int, Alert] = field(default_factory=dict)
    loops: dict[Named, LoopRow] = field(default_factory=dict)
    loop_runs: dict[int, LoopRunRow] = field(default_factory=dict)
    leases: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Lease name -> (owner, until_us); until 0 once released."""
    users: dict[str, UserRow] = field(default_factory=dict)
    tokens: dict[int, TokenRow] = field(default_factory=dict)
    grants: dict[tuple[str, str], str] = field(default_factory=dict)
    """(project, user) -> role."""
    ui_sessions: dict[str, SessionRow] = field(default_factory=dict)
    """The SHA-256 of a web UI session's id -> its token and times."""
    events: list[Event] = field(default_factory=list)


class MemoryDatabase:
    """The tables, the one lock every store takes, the clock, and the id counters."""

    def __init__(self, clock: Clock = system_clock_us) -> None:
        self.tables = Tables()
        self.lock = threading.RLock()
        self.clock = clock
        self._ids: dict[str, Iterator[int]] = {}

    def next_id(self, table: str) -> int:
        """The next id of `table`, from 1; an id is never given twice, even after a delete."""
        return next(self._ids.setdefault(table, itertools.count(1)))

    def ensure_project(self, project: str, now_us: int) -> None:
        """Create `project` on first use; projects are namespaces."""
        self.tables.projects.setdefault(project, now_us)

    def append_event(self, draft: EventDraft, now_us: int) -> Event:
        """Append `draft` to the chain (the caller holds the lock)."""
        events = self.tables.events
        seq, prev = (events[-1].seq + 1, events[-1].hash) if events else (1, GENESIS_HASH)
        before, after = json_copy(draft.before), json_copy(draft.after)
        when = us_to_datetime(now_us)
        digest = event_hash(
            prev,
            seq=seq,
            time=when,
            action=draft.action,
            entity=draft.entity,
            actor=draft.actor,
            before=before,
            after=after,
        )
        event = Event(
            seq, when, draft.action, draft.entity, draft.actor, before, after, prev, digest
        )
        events.append(event)
        return event

    # -- rows other stores read (as a SQL store joins another's table) --------------------------

    def run(self, run_id: str) -> RunRow:
        row = self.tables.runs.get(RunId(run_id))
        if row is None:
            raise missing_run(run_id)
        return row

    def require_run_in(self, run_id: str, project: str, what: str, fix: str) -> None:
        """Run `run_id` exists and is of `project`: `what` (a model version, step I/O) is
        recorded in `project` and may only name a run of it. `fix` says what to do otherwise."""
        found = self.run(run_id).project
        if found != project:
            raise InvalidInput(
                f"Run {run_id} is in project {found!r}; {what} in project {project!r} cannot "
                "name it: references never cross projects.",
                fix.format(run_project=found, project=project),
            )
