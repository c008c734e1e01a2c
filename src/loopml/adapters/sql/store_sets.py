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
from loopml.ports.store_set import MetadataPorts

if TYPE_CHECKING:
    from loopml.adapters.sql.engine import Database
    from loopml.ports import (
        AuthStore,
        BlobAccess,
        Leases,
        PipelineRecords,
    )


@dataclass
class SqlStoreSet(MetadataPorts):
    """The metadata stores of one SQL database, and who may read which of its blobs."""

    blob_access: BlobAccess


def sql_stores(db: Database, clock: Clock = system_clock_us) -> SqlStoreSet:
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

    auth = SqlAuthStore(db, clock)
    return SqlStoreSet(
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
        auth,
        auth,
        auth,
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


def quick_stores(quick: QuickDatabase) -> SqlStoreSet:
    """The stores of the workspace `quick` reads, reading the time from `quick.clock`."""
    auth = cast("AuthStore", LazyStore(quick, _auth))
    return SqlStoreSet(
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
        auth,
        auth,
        auth,
        cast("BlobAccess", LazyStore(quick, _blob_access)),
    )
