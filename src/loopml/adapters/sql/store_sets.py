"""Every store of one SQL database, as a set: the SQL stores (`sql_stores`), or the quick set of
a local SQLite workspace (`quick_stores`, see `loopml.adapters.sql.quick`): the quick stores
where a list or show command reads, and lazily built SQL stores for the rest (pipeline records,
leases, users, tokens, grants, blob access), so opening the workspace imports no SQLAlchemy.
`loopml.bootstrap` picks the set; the contract suites run on both. Importing this module imports
no SQLAlchemy either: `sql_stores` does, when called."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from loopml.adapters.sql.quick import LazyStore, QuickDatabase
from loopml.adapters.sql.quick_catalog import (
    QuickDatasetStore,
    QuickDeploymentStore,
    QuickEventLog,
    QuickModelStore,
)
from loopml.adapters.sql.quick_ops import QuickAlertStore, QuickLoopStore, QuickMonitorStore
from loopml.adapters.sql.quick_runs import QuickRunStore
from loopml.adapters.sql.rows import Clock, system_clock_us

if TYPE_CHECKING:
    from loopml.adapters.sql.engine import Database
    from loopml.ports import (
        AlertStore,
        AuthStore,
        BlobAccess,
        DatasetStore,
        DeploymentStore,
        EventLog,
        Leases,
        LoopStore,
        ModelStore,
        MonitorStore,
        PipelineRecords,
        RunStore,
    )


@dataclass(frozen=True)
class StoreSet:
    datasets: DatasetStore
    runs: RunStore
    models: ModelStore
    events: EventLog
    pipelines: PipelineRecords
    deployments: DeploymentStore
    monitors: MonitorStore
    alerts: AlertStore
    loops: LoopStore
    leases: Leases
    auth: AuthStore
    """Users, tokens and grants (and the web UI's sessions): one store."""
    blob_access: BlobAccess


def sql_stores(db: Database, clock: Clock = system_clock_us) -> StoreSet:
    """The SQL stores of `db` (whose schema is current), reading the time from `clock`."""
    from loopml.adapters.sql.alerts import SqlAlertStore
    from loopml.adapters.sql.auth import SqlAuthStore
    from loopml.adapters.sql.blob_refs import SqlBlobAccess
    from loopml.adapters.sql.datasets import SqlDatasetStore
    from loopml.adapters.sql.deployments import SqlDeploymentStore
    from loopml.adapters.sql.events import SqlEventLog
    from loopml.adapters.sql.leases import SqlLeases
    from loopml.adapters.sql.loops import SqlLoopStore
    from loopml.adapters.sql.models import SqlModelStore
    from loopml.adapters.sql.monitors import SqlMonitorStore
    from loopml.adapters.sql.pipelines import SqlPipelineStore
    from loopml.adapters.sql.runs import SqlRunStore

    return StoreSet(
        SqlDatasetStore(db, clock),
        SqlRunStore(db, clock),
        SqlModelStore(db, clock),
        SqlEventLog(db, clock),
        SqlPipelineStore(db, clock),
        SqlDeploymentStore(db, clock),
        SqlMonitorStore(db, clock),
        SqlAlertStore(db, clock),
        SqlLoopStore(db, clock),
        SqlLeases(db, clock),
        SqlAuthStore(db, clock),
        SqlBlobAccess(db, clock),
    )


def _pipelines(db: Database, clock: Clock) -> Any:
    from loopml.adapters.sql.pipelines import SqlPipelineStore

    return SqlPipelineStore(db, clock)


def _leases(db: Database, clock: Clock) -> Any:
    from loopml.adapters.sql.leases import SqlLeases

    return SqlLeases(db, clock)


def _auth(db: Database, clock: Clock) -> Any:
    from loopml.adapters.sql.auth import SqlAuthStore

    return SqlAuthStore(db, clock)


def _blob_access(db: Database, clock: Clock) -> Any:
    from loopml.adapters.sql.blob_refs import SqlBlobAccess

    return SqlBlobAccess(db, clock)


def quick_stores(quick: QuickDatabase) -> StoreSet:
    """The stores of the workspace `quick` reads, reading the time from `quick.clock`."""
    return StoreSet(
        QuickDatasetStore(quick),
        QuickRunStore(quick),
        QuickModelStore(quick),
        QuickEventLog(quick),
        cast("PipelineRecords", LazyStore(quick, _pipelines)),
        QuickDeploymentStore(quick),
        QuickMonitorStore(quick),
        QuickAlertStore(quick),
        QuickLoopStore(quick),
        cast("Leases", LazyStore(quick, _leases)),
        cast("AuthStore", LazyStore(quick, _auth)),
        cast("BlobAccess", LazyStore(quick, _blob_access)),
    )
