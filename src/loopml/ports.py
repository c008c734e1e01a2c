"""The small interfaces services depend on; adapters implement them.

One Protocol per aggregate or capability, about eight methods at most. Each mutation takes the
`EventDraft` that records it, and the store writes both in one transaction, so a change and its
audit entry are never apart.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, runtime_checkable

from loopml.domain.auth import Grant, Token, User
from loopml.domain.filters import RunQuery
from loopml.domain.hashing import Digest
from loopml.domain.loops import Loop, LoopRun, LoopSpec, LoopState
from loopml.domain.manifest import BlobRef, Manifest
from loopml.domain.records import (
    Alert,
    AlertRule,
    DatasetSummary,
    DatasetVersion,
    Delivery,
    Deployment,
    Event,
    EventDraft,
    MetricPoint,
    ModelSummary,
    ModelVersion,
    Monitor,
    MonitorRun,
    Run,
    RunArtifact,
    RunId,
    RunStatus,
)

ProgressFn = Callable[[int], None]
"""Called with the number of bytes just processed."""

if TYPE_CHECKING:  # Arrow only for the prediction log's users: a list command needs none
    import pyarrow as pa


class BlobStore(Protocol):
    """Content-addressed, immutable bytes. Writes are atomic; reads are checked against the hash."""

    def put_file(self, path: Path, *, progress: ProgressFn | None = None) -> BlobRef: ...

    def put_bytes(self, data: bytes) -> BlobRef: ...

    def open(self, digest: Digest) -> AbstractContextManager[BinaryIO]:
        """A reader that raises IntegrityError at end of stream if the bytes do not match."""
        ...

    def read_bytes(self, digest: Digest) -> bytes: ...

    def get_file(
        self, digest: Digest, dest: Path, *, progress: ProgressFn | None = None
    ) -> None: ...

    def exists(self, digest: Digest) -> bool: ...

    def url(self) -> str:
        """Where the blobs live, for messages."""
        ...


class HashCache(Protocol):
    """Remembers the digest of a local file by (path, size, mtime) so it is never rehashed."""

    def get(self, path: Path) -> BlobRef | None: ...

    def put(self, path: Path, ref: BlobRef) -> None: ...


@dataclass(frozen=True)
class NewDatasetVersion:
    project: str
    name: str
    manifest: Manifest
    message: str
    schema: dict[str, Any] | None
    profile: dict[str, Any] | None


class DatasetStore(Protocol):
    def add_version(self, new: NewDatasetVersion, event: EventDraft) -> tuple[DatasetVersion, bool]:
        """Store `new` as the next version, or return the existing one with the same digest.

        The flag is True when a version was created.
        """
        ...

    def get_version(self, project: str, name: str, version: int | None) -> DatasetVersion:
        """A version by number, or the latest when `version` is None."""
        ...

    def get_manifest(self, project: str, name: str, version: int) -> Manifest: ...

    def get_profile(self, project: str, name: str, version: int) -> dict[str, Any] | None: ...

    def list_datasets(self, project: str) -> list[DatasetSummary]: ...

    def list_versions(self, project: str, name: str) -> list[DatasetVersion]: ...


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


@dataclass(frozen=True)
class NewModelVersion:
    project: str
    name: str
    run_id: RunId | None
    flavor: str
    flavor_info: dict[str, Any]
    manifest: Manifest
    signature: dict[str, Any]
    metrics: dict[str, float]


class ModelStore(Protocol):
    def register(self, new: NewModelVersion, event: EventDraft) -> ModelVersion:
        """Create the model if needed and add the next version number."""
        ...

    def get_version(self, project: str, name: str, version: int) -> ModelVersion: ...

    def get_manifest(self, project: str, name: str, version: int) -> Manifest: ...

    def resolve_alias(self, project: str, name: str, alias: str) -> int: ...

    def set_alias(
        self, project: str, name: str, alias: str, version: int | None, event: EventDraft
    ) -> int | None:
        """Point `alias` at `version` (None deletes it); returns where it pointed before."""
        ...

    def list_models(self, project: str) -> list[ModelSummary]: ...

    def list_versions(self, project: str, name: str) -> list[ModelVersion]: ...


class EventLog(Protocol):
    def append(self, event: EventDraft) -> Event: ...

    def list(
        self, *, entity: str | None = None, action: str | None = None, limit: int = 100
    ) -> list[Event]: ...

    def iterate(self) -> Iterator[Event]:
        """Every event in order, for verifying the chain."""
        ...


class TableDescriber(Protocol):
    """Reads a tabular file and describes it for the dataset version."""

    def is_tabular(self, path: Path) -> bool: ...

    def describe(self, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        """The (schema, profile) of a CSV or Parquet file, as stored JSON."""
        ...


class LoadedModel(Protocol):
    """A model ready to predict, whatever its flavor."""

    @property
    def raw(self) -> Any: ...

    def predict(self, frame: Any) -> Any: ...

    def predict_proba(self, frame: Any) -> Any: ...


@runtime_checkable
class Flavor(Protocol):
    """One kind of model (scikit-learn, python, ...): which objects it takes, how it saves them
    to a folder and loads them back, whether pipeline steps store them through it, and whether a
    team server may load them. Flavors are listed in `adapters/flavors/base.py` `FLAVORS`."""

    @property
    def name(self) -> str: ...

    @property
    def files(self) -> tuple[str, ...]: ...

    @property
    def step_values(self) -> bool: ...

    def accepts(self, model: object) -> bool:
        """Whether this flavor saves `model`."""
        ...

    def save(self, model: Any, directory: Path) -> dict[str, Any]:
        """Write `model` into the empty `directory`; return the info to store with the version."""
        ...

    def load(self, directory: Path, info: dict[str, Any], *, trust_pickle: bool) -> LoadedModel:
        """Read the model saved in `directory` with `info` from its `save`."""
        ...

    def check_shared(self, info: dict[str, Any], model_types: tuple[str, ...]) -> None:
        """Forbidden unless a process serving others, loading only classes under the package
        prefixes `model_types`, may load the version saved with `info`."""
        ...


class ModelSerializer(Protocol):
    """Writes a model object to a folder with the right flavor, and reads it back safely."""

    def save(self, model: Any, directory: Path) -> tuple[str, dict[str, Any]]:
        """Returns (flavor name, flavor info to store with the version)."""
        ...

    def load(
        self, flavor: str, directory: Path, info: dict[str, Any], *, trust: bool
    ) -> LoadedModel: ...


class EnvironmentProbe(Protocol):
    def capture(self) -> tuple[dict[str, Any], str]:
        """(environment facts, the installed-packages list as requirements text)."""
        ...


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


class DeploymentStore(Protocol):
    def save(self, deployment: Deployment, event: EventDraft) -> tuple[Deployment, bool]:
        """Create or replace; the flag is True when created."""
        ...

    def get(self, project: str, name: str) -> Deployment: ...

    def list(self, project: str) -> list[Deployment]: ...

    def delete(self, project: str, name: str, event: EventDraft) -> None: ...


class MonitorStore(Protocol):
    def save(self, monitor: Monitor, event: EventDraft) -> tuple[Monitor, bool]:
        """Create or replace; the flag is True when created."""
        ...

    def get(self, project: str, name: str) -> Monitor: ...

    def delete(self, project: str, name: str, event: EventDraft) -> None: ...

    def add_run(self, run: MonitorRun, event: EventDraft) -> MonitorRun: ...

    def get_run(self, project: str, run_id: int) -> MonitorRun: ...

    def runs(self, project: str, monitor: str, limit: int) -> list[MonitorRun]: ...

    def list(self, project: str) -> list[Monitor]: ...


class AlertStore(Protocol):
    def add_rule(self, rule: AlertRule, event: EventDraft) -> AlertRule: ...

    def rule(self, project: str, rule_id: int) -> AlertRule: ...

    def rules(self, project: str, target: str | None = None) -> list[AlertRule]: ...

    def delete_rule(self, project: str, rule_id: int, event: EventDraft) -> None: ...

    def open_alert(self, project: str, rule_id: int) -> Alert | None: ...

    def last_alert(self, project: str, rule_id: int) -> Alert | None: ...

    def save_alert(self, alert: Alert, event: EventDraft) -> Alert: ...

    def alert(self, project: str, alert_id: int) -> Alert: ...

    def alerts(self, project: str, state: str | None, limit: int) -> list[Alert]: ...


class LoopStore(Protocol):
    """Retrain policies and their runs. Who runs a loop at a time is a lease (`Leases`, under
    `loop_lease(project, name)`), not the loop's record."""

    def create(self, spec: LoopSpec, event: EventDraft) -> Loop: ...

    def get(self, project: str, name: str) -> Loop: ...

    def delete(self, project: str, name: str, event: EventDraft) -> None: ...

    def save_state(self, project: str, name: str, state: LoopState) -> None: ...

    def save_run(self, run: LoopRun, event: EventDraft) -> LoopRun: ...

    def run(self, project: str, run_id: int) -> LoopRun: ...

    def runs(self, project: str, loop: str, limit: int) -> list[LoopRun]: ...

    def list(self, project: str) -> list[Loop]: ...


class UserStore(Protocol):
    """Who may sign in: users, with their role everywhere (or none)."""

    def create_user(self, name: str, role: str | None, event: EventDraft) -> User: ...

    def user(self, name: str) -> User: ...

    def users(self) -> list[User]: ...

    def disable_user(self, name: str, event: EventDraft) -> User: ...


class TokenStore(Protocol):
    """What users sign in with: tokens, kept only as their SHA-256."""

    def add_token(
        self,
        user: str,
        name: str,
        *,
        digest: str,
        hint: str,
        expires: datetime | None,
        event: EventDraft,
    ) -> Token: ...

    def token(self, token_id: int) -> Token: ...

    def find_token(self, digest: str) -> tuple[Token, User] | None: ...

    def tokens(self, user: str | None) -> list[Token]: ...

    def revoke_token(self, token_id: int, event: EventDraft) -> Token: ...


class GrantStore(Protocol):
    """Projects, and the role each user has on each."""

    def grant(self, project: str, user: str, role: str | None, event: EventDraft) -> None: ...

    def grants(self, project: str | None = None, user: str | None = None) -> list[Grant]: ...

    def create_project(self, project: str, event: EventDraft) -> bool: ...

    def projects(self) -> list[str]: ...


class AuthStore(UserStore, TokenStore, GrantStore, Protocol):
    """Users, tokens and grants together, as one backend keeps them (a database, a team
    server); each service asks only for the part it uses."""


class Notifier(Protocol):
    """Sends one notice on one channel (`log:`, `slack:URL`, `webhook:URL`, `email:ADDRESS`),
    retrying; never raises: what happened is in the returned delivery."""

    def check(self, channel: str) -> str:
        """`channel` checked by its kind and normalised; InvalidInput naming the fix."""
        ...

    def deliver(
        self, channel: str, event: str, subject: str, payload: dict[str, Any]
    ) -> Delivery: ...


@dataclass(frozen=True)
class StoredBlob:
    """A blob as a blob store lists it for garbage collection."""

    digest: Digest
    size: int
    touched_us: int
    """When it was last written or reused (a writer's `exists` that found it): microseconds
    since the epoch, by the store's clock."""
    mark: str = ""
    """What `BlobSweep.set_aside` compares to tell whether the blob was reused since listed."""


@dataclass(frozen=True)
class StrayFile:
    """Something in a blob store that no record can name: a temp file of a write that never
    finished, an abandoned multipart upload, a stale reuse marker."""

    kind: str
    name: str
    """Where it is, under the store's root."""
    size: int
    touched_us: int
    mark: str = ""
    """What `BlobSweep.remove` compares to tell whether it was rewritten since listed."""


class BlobSweep(Protocol):
    """The garbage-collection side of a blob store. A blob to delete is first set aside (out of
    the readers' and writers' way, and checked not to have been reused meanwhile), then either
    purged or put back, so a writer that reuses a blob during a collection never loses it."""

    def recover(self) -> int:
        """Put back every blob an interrupted collection left set aside; how many."""
        ...

    def blobs(self) -> Iterator[StoredBlob]: ...

    def strays(self) -> Iterator[StrayFile]: ...

    def set_aside(self, blob: StoredBlob) -> bool:
        """Move `blob` out of reach; False (and left in place) when it was reused or rewritten
        since it was listed, or is gone."""
        ...

    def put_back(self, digest: Digest) -> None: ...

    def purge(self, digest: Digest) -> None:
        """Delete a blob that was set aside."""
        ...

    def remove(self, stray: StrayFile) -> bool:
        """Delete a stray file; False when it changed since it was listed (then it stays)."""
        ...


class BlobReferences(Protocol):
    """What the metadata says about blobs, for garbage collection."""

    def referenced(self) -> set[str]:
        """Every blob digest any record names."""
        ...

    def uploaded_since(self, since_us: int) -> set[str]:
        """Digests sent to the team server at or after `since_us` (microseconds)."""
        ...


class BlobAccess(Protocol):
    """Who may read a blob on the team server: those of a project that holds it, and who sent
    its bytes."""

    def record_upload(self, digest: str, user: str) -> None:
        """`user` sent the bytes of `digest`."""
        ...

    def unreadable(
        self, digests: Iterable[str], user: str, projects: Collection[str] | None
    ) -> list[str]:
        """Those of `digests` `user` may not read, given the `projects` they may read (None:
        every project). Sorted, each once."""
        ...

    def readable(self, digest: str, user: str, projects: Collection[str] | None) -> bool: ...


class Leases(Protocol):
    """Named leases: of several processes that want to run the same job (a loop's retraining,
    the team server's schedule, the blob collector), one holds it at a time; a holder that dies
    frees it when its lease runs out. Taking a lease again as its holder extends it, so a
    retried call is harmless."""

    def acquire(self, name: str, owner: str, ttl_s: float) -> bool:
        """Take or extend lease `name` for `ttl_s` seconds; False while another holds it."""
        ...

    def renew(self, name: str, owner: str, ttl_s: float) -> bool:
        """Extend `owner`'s lease for `ttl_s` seconds from now; False when it is not theirs."""
        ...

    def holder(self, name: str) -> tuple[str | None, int | None]:
        """(owner, until_us) of the lease while someone holds it; (None, None) when free."""
        ...

    def release(self, name: str, owner: str) -> None:
        """Free the lease if `owner` holds it; nothing otherwise."""
        ...


@runtime_checkable
class SessionStore(Protocol):
    """Web UI sessions, an optional capability of a TokenStore (the SQL one, which a team
    server uses, has it): the SHA-256 of a random session id, tied to the token it logged in
    with."""

    def add_session(self, digest: str, token_id: int, expires: datetime) -> None: ...

    def find_session(self, digest: str) -> tuple[Token, User, datetime] | None: ...

    def delete_session(self, digest: str) -> None: ...


class PredictionWriter(Protocol):
    """The prediction log's writing side: the model server's served rows and the labels that
    come later, taken as Arrow tables in the log's columns and written in the background.
    Back-pressure, never loss: rows appended against room held by `reserve` are always taken;
    a taken row is never dropped (a failed write is retried)."""

    @property
    def flush_interval_s(self) -> float:
        """How long a taken row may wait before the writer tries to store it."""
        ...

    def reserve(self, rows: int) -> bool:
        """Hold room for `rows` rows, appended later with `reserved=True`; False when full."""
        ...

    def release(self, rows: int) -> None:
        """Give back room held for rows that will not be appended."""
        ...

    def append(self, rows: pa.Table, *, reserved: bool = False) -> int:
        """Queue served rows; returns how many were taken (all, when `reserved`)."""
        ...

    def append_feedback(self, rows: pa.Table, *, reserved: bool = False) -> int:
        """Queue labels (request_id, time_us, deployment, label_json); returns how many."""
        ...

    def pending_request_ids(self, deployment: str) -> set[str]:
        """Request ids of `deployment` taken and not yet written."""
        ...

    def flush(self, timeout_s: float = 10.0) -> None:
        """Write everything taken; Unavailable when the store refuses it for `timeout_s`."""
        ...

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush and stop; calling it again does nothing."""
        ...

    def stats(self) -> dict[str, int]:
        """Counters: queue_depth, reserved_rows, refused_rows, invalid_rows, written_rows,
        write_errors, files_written."""
        ...


class PredictionReader(Protocol):
    """The prediction log's reading side: what monitors, feedback, explanations and the CLI
    read back."""

    def read(
        self,
        deployment: str,
        *,
        since_us: int | None = None,
        until_us: int | None = None,
        limit: int | None = None,
        columns: list[str] | None = None,
        with_feedback: bool = True,
    ) -> pa.Table:
        """Rows of `deployment` in time order (newest first with `limit`), with `label_json`
        when `with_feedback`; an unknown deployment reads as an empty table."""
        ...

    def tail(self, deployment: str, n: int = 20) -> pa.Table:
        """The `n` newest rows of `deployment`, newest first."""
        ...

    def get(self, request_id: str, deployment: str | None = None) -> dict[str, Any] | None:
        """One served row with its latest label, or None."""
        ...

    def served_ids(self, deployment: str, request_ids: list[str]) -> set[str]:
        """Which of `request_ids` the log holds a row of, for `deployment`."""
        ...
