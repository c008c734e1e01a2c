"""The composition root: settings -> adapters -> services. The only place that chooses."""

from __future__ import annotations

import atexit
import dataclasses
import json
import threading
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopml.adapters.artifacts import FsspecBlobStore
from loopml.adapters.environment import LocalEnvironmentProbe
from loopml.adapters.hash_cache import SqliteHashCache
from loopml.adapters.model_serializer import FlavorModelSerializer
from loopml.adapters.notify import ChannelNotifier
from loopml.adapters.output_capture import captured_output
from loopml.adapters.step_values import TypedValueSerializer
from loopml.adapters.table_describer import ArrowTableDescriber
from loopml.ports.store_set import MetadataPorts
from loopml.services.alerts import AlertService
from loopml.services.audit import AuditService
from loopml.services.auth import AuthService
from loopml.services.data import DataService, dataset_pins
from loopml.services.deployments import DeploymentService
from loopml.services.lineage import LineageService
from loopml.services.loops import LoopService
from loopml.services.monitors import MonitorService
from loopml.services.pipelines import PipelineService, StepOutcome, StepTask, numbers_of
from loopml.services.registry import RegistryService, registrations_held
from loopml.services.tracking import TrackingService
from loopml.services.value_store import ValueStore
from loopml.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from loopml.adapters.sql.engine import Database
    from loopml.adapters.sql.quick import QuickDatabase
    from loopml.adapters.sql.store_sets import SqlStoreSet
    from loopml.domain.records import Monitor
    from loopml.ports import (
        BlobAccess,
        BlobStore,
        Executor,
        PipelineRecords,
        PredictionReader,
        PredictionWriter,
    )
    from loopml.services.compile import CompileService
    from loopml.services.gc import GarbageCollector
    from loopml.services.log_upkeep import LogUpkeep


@dataclass
class Workspace:
    """Everything loopml keeps, and the services that work on it."""

    settings: Settings
    blobs: BlobStore
    data: DataService
    tracking: TrackingService
    registry: RegistryService
    audit: AuditService
    pipelines: PipelineService
    pipeline_records: PipelineRecords
    """What each step run read and wrote, the step cache, and the links between runs."""
    lineage: LineageService
    """Where a model or dataset version came from, and what was made from it."""
    deployments: DeploymentService
    monitors: MonitorService
    alerts: AlertService
    loops: LoopService
    auth: AuthService
    stores: Stores
    """The stores behind the services (what a team server answers from)."""
    closer: Any = None
    """Releases the stores (the database pool, or the server connection)."""

    @property
    def project(self) -> str:
        return self.settings.project

    @property
    def db(self) -> Database:
        """The metadata database (SQLAlchemy), built on first use when the stores read quickly;
        None in a memory workspace (its callers check `stores.in_process` first)."""
        return self.stores.database()  # type: ignore[return-value]

    @property
    def compiler(self) -> CompileService:
        """Compiles model versions to ONNX (`loopml models compile`): built when asked for,
        as its modules bring numpy and the converters are imported on use."""
        from loopml.adapters.onnx_compiler import OnnxCompiler
        from loopml.adapters.table_files import read_frame
        from loopml.services.compile import CompileService

        return CompileService(
            self.registry, self.stores.runs, self.data, read_frame, [OnnxCompiler()]
        )

    def close(self) -> None:
        self.tracking.close_all()
        key = settings_key(self.settings)
        if _worker_workspaces.get(key) is self:
            del _worker_workspaces[key]
        if self.closer is not None:
            self.closer()


@dataclass
class Stores(MetadataPorts):
    """The adapters behind every port, from one place: the metadata stores (SQL, memory or a
    team server), the blobs (fsspec or the team server) and what releases them."""

    db: Database | None
    blobs: BlobStore
    close: Callable[[], None]
    blob_access: BlobAccess | None = None
    """Who may read which blob: kept by a workspace of its own (what a team server serves)."""
    in_process: bool = False
    """The records live in this process only (memory://): another process opening the same
    settings sees an empty workspace."""
    quick: QuickDatabase | None = None
    """What the stores read through when they read quickly; then `db` is None: see `database`."""

    def database(self) -> Database | None:
        """The SQL database behind the stores, if any (built now if the stores read quickly)."""
        return self.quick.database() if self.quick is not None else self.db


def _local_stores(settings: Settings) -> Stores:
    """The stores of an embedded workspace: memory, or a SQL database and the artifact folder
    (or bucket). A SQLite file at the current schema is read with `sqlite3` and written through
    SQL stores built on first use (`loopml.adapters.sql.quick`: no SQLAlchemy until a write);
    PostgreSQL, or a file to create or upgrade, takes the full path, which does that first."""
    if settings.quick_reads:  # only ever a sqlite:/// file, so first
        from loopml.adapters.sql.quick import open_quick
        from loopml.adapters.sql.store_sets import quick_stores

        quick = open_quick(settings.db_url)
        if quick is not None:
            return _stores_of(settings, quick_stores(quick), quick.dispose, quick=quick)
    from loopml.adapters.memory.database import MEMORY_URL

    if settings.db_url == MEMORY_URL:
        return _memory_stores(settings)
    from loopml.adapters.sql.engine import Database, create_store_engine
    from loopml.adapters.sql.migrate import ensure_schema
    from loopml.adapters.sql.store_sets import sql_stores

    db = Database(create_store_engine(settings.db_url))
    ensure_schema(db)
    return _stores_of(settings, sql_stores(db), db.dispose, db=db)


def _stores_of(
    settings: Settings,
    stores: SqlStoreSet,
    close: Callable[[], None],
    db: Database | None = None,
    quick: QuickDatabase | None = None,
) -> Stores:
    return Stores(
        **stores.ports(),
        db=db,
        blobs=FsspecBlobStore(settings.artifacts_url, settings.storage_options),
        close=close,
        blob_access=stores.blob_access,
        quick=quick,
    )


def _memory_stores(settings: Settings) -> Stores:
    """Every metadata store in this process's memory, fresh and empty (LOOPML_DB_URL=memory://:
    for tests and trials; no other process sees it, and it is gone at close); blobs where
    `settings.artifacts_url` says."""
    from loopml.adapters.memory.database import MemoryDatabase
    from loopml.adapters.memory.store_set import memory_stores

    return Stores(
        **memory_stores(MemoryDatabase()).ports(),
        db=None,
        blobs=FsspecBlobStore(settings.artifacts_url, settings.storage_options),
        close=lambda: None,  # nothing to release: the records go with the database
        in_process=True,
    )


def _server_stores(settings: Settings) -> Stores:
    """Every store on the team server at `settings.server_url`."""
    from loopml.adapters import remote
    from loopml.adapters import remote_operations as ops

    assert settings.server_url is not None
    client = remote.RemoteClient(settings.server_url, settings.token)
    metadata = ops.remote_stores(client)
    return Stores(
        **metadata.ports(), db=None, blobs=remote.RemoteBlobStore(client), close=client.close
    )


def open_workspace(settings: Settings | None = None) -> Workspace:
    """Open (and on first use create) the workspace `settings` describe: the local stores, or
    those of the team server LOOPML_SERVER names."""
    settings = settings or Settings.from_env()
    stores = _server_stores(settings) if settings.server_url else _local_stores(settings)
    blobs = stores.blobs
    cache = SqliteHashCache(settings.cache_dir / "hashes.db")
    data = DataService(stores.datasets, blobs, ArrowTableDescriber(), cache, settings.actor)
    tracking = TrackingService(
        stores.runs,
        blobs,
        LocalEnvironmentProbe(),
        lambda ref, project: data.resolve(ref, project, record=False),
        settings.actor,
        run_timeout_s=settings.run_timeout_s,
    )
    tracking.end_silent_runs()  # runs whose process died since: one read, usually no write
    values = ValueStore(blobs, TypedValueSerializer())
    spec = settings_key(settings)
    pipelines = PipelineService(
        tracking, stores.pipelines, values, run_step_task, dataclasses.asdict(settings)
    )
    registry = RegistryService(
        stores.models,
        stores.runs,
        blobs,
        FlavorModelSerializer(settings.model_types),
        settings.actor,
        events=stores.events,
    )
    notifier = ChannelNotifier(
        smtp_url=settings.smtp_url,
        smtp_from=settings.smtp_from,
        webhook_secret=settings.webhook_secret,
        policy=settings.target_policy(),
    )
    workspace = Workspace(
        settings=settings,
        blobs=blobs,
        data=data,
        tracking=tracking,
        registry=registry,
        audit=AuditService(stores.events),
        pipelines=pipelines,
        pipeline_records=stores.pipelines,
        lineage=LineageService(stores.runs, stores.pipelines, stores.pipelines, stores.models),
        deployments=DeploymentService(stores.deployments, registry, settings.actor),
        monitors=MonitorService(stores.monitors, settings.actor),
        alerts=AlertService(stores.alerts, notifier, settings.actor),
        loops=LoopService(stores.loops, stores.leases, settings.actor),
        auth=AuthService(stores.users, stores.tokens, stores.grants, settings.actor),
        stores=stores,
        closer=stores.close,
    )
    _worker_workspaces.setdefault(spec, workspace)  # steps run in this process reuse it
    return workspace


_default: Workspace | None = None
_default_lock = threading.Lock()
_override: ContextVar[Workspace | None] = ContextVar("loopml_workspace", default=None)
_worker_workspaces: dict[str, Workspace] = {}


def settings_key(settings: Settings) -> str:
    return json.dumps(dataclasses.asdict(settings), sort_keys=True, default=str)


def default_workspace() -> Workspace:
    """The workspace of the convenience API: the one a pipeline step runs in, else the
    process-wide one opened from the environment once."""
    global _default
    override = _override.get()
    if override is not None:
        return override
    with _default_lock:
        if _default is None:
            _default = open_workspace()
            atexit.register(_default.close)
        return _default


def reset_default_workspace() -> None:
    """Close the process-wide workspace; the next call opens it again from the environment."""
    global _default
    with _default_lock:
        if _default is not None:
            atexit.unregister(_default.close)
            _default.close()
        _default = None


def upgrade_schema(settings: Settings) -> tuple[str | None, str]:
    """Bring the metadata database `settings` name to the newest schema; (its revision now,
    the newest revision)."""
    from loopml.adapters.memory.database import MEMORY_URL
    from loopml.adapters.sql.engine import Database, create_store_engine
    from loopml.adapters.sql.migrate import HEAD_REVISION, current_revision, upgrade

    if settings.db_url == MEMORY_URL:
        from loopml.errors import InvalidInput

        raise InvalidInput(
            "A memory workspace (LOOPML_DB_URL=memory://) has no schema to upgrade: it starts "
            "empty and current in every process.",
            "Point LOOPML_DB_URL at the SQLite or PostgreSQL database to upgrade.",
        )
    db = Database(create_store_engine(settings.db_url))
    try:
        upgrade(db)
        with db.read() as conn:
            return current_revision(conn), HEAD_REVISION
    finally:
        db.dispose()


def make_executor(
    name: str, *, ray_address: str | None = None, max_workers: int | None = None
) -> Executor:
    """The pipeline executor called `name` (`local`, `processes` or `ray`); `max_workers`
    bounds processes and a local Ray's CPUs."""
    from loopml.adapters.executors.factory import make_executor as by_name  # Ray: only if asked

    return by_name(name, ray_address=ray_address, max_workers=max_workers)


def prediction_log_writer(settings: Settings) -> PredictionWriter:
    """The writer of served predictions and labels, under the workspace's artifact root."""
    from loopml.adapters.prediction_log import PredictionLogWriter  # Arrow: only when serving

    return PredictionLogWriter(settings.artifacts_url, settings.storage_options)


def prediction_log_reader(settings: Settings) -> PredictionReader:
    from loopml.adapters.prediction_log_reader import PredictionLogReader

    return PredictionLogReader(settings.artifacts_url, settings.storage_options)


def log_upkeep(workspace: Workspace) -> LogUpkeep:
    """Compaction and expiry of the prediction log under `workspace`'s artifact root (on the
    machine that holds it: a client of a team server has none, its server keeps its own)."""
    from loopml.adapters.prediction_log_compaction import LogCompactor
    from loopml.adapters.prediction_log_files import LogStorage
    from loopml.services.log_upkeep import LogUpkeep

    settings, stores = workspace.settings, workspace.stores
    if settings.server_url is not None:
        from loopml.errors import InvalidInput

        raise InvalidInput(
            f"This workspace is a client of the team server at {settings.server_url}, which "
            "compacts its own prediction log on its schedule.",
            "Run `loopml log compact` on the server's machine, with its LOOPML_DB_URL and "
            "LOOPML_ARTIFACTS (and without LOOPML_SERVER).",
        )

    def monitors() -> list[Monitor]:
        return [m for p in stores.grants.projects() for m in stores.monitors.list(p)]

    storage = LogStorage(settings.artifacts_url, settings.storage_options)
    return LogUpkeep(LogCompactor(storage), stores.leases, stores.events, monitors, settings.actor)


def run_step_task(task: StepTask) -> StepOutcome:
    """Run one pipeline step where this process is (the executors' worker function).

    Inputs come from the artifact store and outputs go back there. While the step runs, its run
    is the current run, its workspace is the default one, and dataset pins apply.
    """
    import cloudpickle

    settings = Settings(**task.workspace)
    key = settings_key(settings)
    workspace = _worker_workspaces.get(key)
    if workspace is None:
        workspace = _worker_workspaces[key] = open_workspace(settings)
    function = cloudpickle.loads(task.function)
    arguments = {name: workspace.pipelines.values.load(ref) for name, ref in task.inputs.items()}
    run = workspace.tracking.attach(task.run_id).activate()
    tokens = (_override.set(workspace), dataset_pins.set(dict(task.dataset_pins)))
    held = registrations_held.set(task.hold_registrations)
    try:
        with captured_output() as output:
            try:
                value = function(**task.params, **arguments)
            finally:
                if output.tell():
                    run.log_text(output.getvalue(), "logs/output.log")
        outputs = split_outputs(task, value)
        refs = tuple(workspace.pipelines.values.store(v) for v in outputs)
        metrics = numbers_of(outputs[0]) if len(outputs) == 1 else {}
        if metrics:
            run.log_metrics(metrics)
        run.flush()
    finally:
        _override.reset(tokens[0])
        dataset_pins.reset(tokens[1])
        registrations_held.reset(held)
        run.deactivate()
    return StepOutcome(refs)


def split_outputs(task: StepTask, value: Any) -> tuple[Any, ...]:
    if task.n_outputs == 1:
        return (value,)
    if not isinstance(value, tuple | list) or len(value) != task.n_outputs:
        from loopml.errors import InvalidInput

        raise InvalidInput(
            f"Step {task.step!r} declares {task.n_outputs} outputs but returned "
            f"{type(value).__name__}.",
            f"Return a tuple of {task.n_outputs} values, or fix the return annotation.",
        )
    return tuple(value)


def garbage_collector(workspace: Workspace) -> GarbageCollector:
    """The collector of `workspace`'s unreferenced blobs (on the machine that holds the stores;
    a client of a team server has none: the server's operator runs it there)."""
    from loopml.adapters.blob_sweep import blob_sweep
    from loopml.adapters.sql.blob_references import SqlBlobReferences
    from loopml.adapters.sql.events import SqlEventLog
    from loopml.services.gc import GarbageCollector

    settings = workspace.settings
    if settings.server_url is not None:
        from loopml.errors import InvalidInput

        raise InvalidInput(
            f"This workspace is a client of the team server at {settings.server_url}; "
            "collecting its blobs is the server operator's job.",
            "Run `loopml gc` on the server's machine, with its LOOPML_DB_URL and "
            "LOOPML_ARTIFACTS (and without LOOPML_SERVER).",
        )
    if workspace.stores.in_process:
        from loopml.errors import InvalidInput

        raise InvalidInput(
            "A memory workspace (LOOPML_DB_URL=memory://) keeps no record of its blobs beyond "
            "this process, so none can be told unreferenced.",
            "Collect blobs of a SQLite or PostgreSQL workspace; a memory workspace's folder can "
            "simply be deleted.",
        )
    return GarbageCollector(
        blob_sweep(settings.artifacts_url, settings.storage_options),
        SqlBlobReferences(workspace.db),
        workspace.stores.leases,
        SqlEventLog(workspace.db),
        settings.actor,
    )
