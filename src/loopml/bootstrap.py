"""The composition root: settings -> adapters -> services. The only place that chooses."""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass

from loopml.adapters.artifacts import FsspecBlobStore
from loopml.adapters.environment import LocalEnvironmentProbe
from loopml.adapters.hash_cache import SqliteHashCache
from loopml.adapters.model_serializer import FlavorModelSerializer
from loopml.adapters.sql.datasets import SqlDatasetStore
from loopml.adapters.sql.engine import Database, create_store_engine
from loopml.adapters.sql.events import SqlEventLog
from loopml.adapters.sql.migrate import ensure_schema
from loopml.adapters.sql.models import SqlModelStore
from loopml.adapters.sql.runs import SqlRunStore
from loopml.adapters.table_describer import ArrowTableDescriber
from loopml.services.audit import AuditService
from loopml.services.data import DataService
from loopml.services.registry import RegistryService
from loopml.services.tracking import TrackingService
from loopml.settings import Settings


@dataclass
class Workspace:
    """Everything loopml keeps, and the services that work on it."""

    settings: Settings
    db: Database
    blobs: FsspecBlobStore
    data: DataService
    tracking: TrackingService
    registry: RegistryService
    audit: AuditService

    @property
    def project(self) -> str:
        return self.settings.project

    def close(self) -> None:
        self.tracking.close_all()
        self.db.dispose()


def open_workspace(settings: Settings | None = None) -> Workspace:
    """Open (and on first use create) the workspace `settings` describe."""
    settings = settings or Settings.from_env()
    db = Database(create_store_engine(settings.db_url))
    ensure_schema(db)
    blobs = FsspecBlobStore(settings.artifacts_url, settings.storage_options)
    cache = SqliteHashCache(settings.cache_dir / "hashes.db")
    datasets = SqlDatasetStore(db)
    runs = SqlRunStore(db)
    data = DataService(datasets, blobs, ArrowTableDescriber(), cache, settings.actor)
    tracking = TrackingService(
        runs,
        blobs,
        LocalEnvironmentProbe(),
        lambda ref, project: data.resolve(ref, project),
        settings.actor,
    )
    registry = RegistryService(
        SqlModelStore(db), runs, blobs, FlavorModelSerializer(), settings.actor
    )
    return Workspace(settings, db, blobs, data, tracking, registry, AuditService(SqlEventLog(db)))


_default: Workspace | None = None
_default_lock = threading.Lock()


def default_workspace() -> Workspace:
    """The process-wide workspace of the convenience API, opened from the environment once."""
    global _default
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
