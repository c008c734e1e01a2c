"""The backends loopml's own tests run the store contracts on, listed once: metadata on memory,
SQLite, PostgreSQL and a live team server (on PostgreSQL, through the remote stores); blobs in
memory, in a local folder, on S3 and through a team server.

A list entry is a pytest param, marked with the service it needs (`-m "not postgres"` leaves
those out); `open_metadata` and `open_blobs` open one backend, fresh and empty. What a backend
needs from the test session (a PostgreSQL schema, the S3 server, workspace settings) comes
through `Services`, and is asked for only by the backends that need it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from loopml.adapters.memory.alerts import MemoryAlertStore
from loopml.adapters.memory.blobs import MemoryBlobStore
from loopml.adapters.memory.database import MemoryDatabase
from loopml.adapters.memory.datasets import MemoryDatasetStore
from loopml.adapters.memory.deployments import MemoryDeploymentStore
from loopml.adapters.memory.events import MemoryEventLog
from loopml.adapters.memory.models import MemoryModelStore
from loopml.adapters.memory.monitors import MemoryMonitorStore
from loopml.adapters.memory.pipelines import MemoryPipelineStore
from loopml.adapters.memory.runs import MemoryRunStore
from loopml.domain.hashing import Digest
from loopml.ports import BlobStore
from loopml.settings import Settings
from loopml.testing.blobstore_contract import BlobProbe
from loopml.testing.contracts.stores import ACTOR, MetadataStores
from loopml.testing.seaweed import S3Endpoint

METADATA_BACKENDS = [
    pytest.param("memory"),
    pytest.param("sqlite"),
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("server", marks=pytest.mark.postgres),
]
"""Where the metadata stores live. Every metadata contract runs on each."""

BLOB_BACKENDS = [
    pytest.param("memory"),
    pytest.param("local"),
    pytest.param("s3", marks=pytest.mark.s3),
    pytest.param("server"),
]
"""Where blobs live. The blob store contract runs on each."""


@dataclass(frozen=True)
class Services:
    """What opening a backend may need from the test session."""

    folder: Path
    """An empty folder of the test's own."""
    postgres_url: Callable[[], str]
    """The URL of a fresh, empty PostgreSQL schema."""
    settings: Callable[..., Settings]
    """Workspace settings, with overrides (`db_url=`, `artifacts_url=`)."""
    s3: Callable[[], S3Endpoint]
    """The session's S3 server."""


def memory_stores() -> MetadataStores:
    """Every metadata store in memory, on one database (mypy checks each against its port)."""
    db = MemoryDatabase()
    return MetadataStores(
        MemoryDatasetStore(db),
        MemoryRunStore(db),
        MemoryModelStore(db),
        MemoryEventLog(db),
        MemoryPipelineStore(db),
        MemoryDeploymentStore(db),
        MemoryMonitorStore(db),
        MemoryAlertStore(db),
    )


@contextmanager
def _sql_stores(url: str) -> Iterator[MetadataStores]:
    from loopml.adapters.sql.alerts import SqlAlertStore
    from loopml.adapters.sql.datasets import SqlDatasetStore
    from loopml.adapters.sql.deployments import SqlDeploymentStore
    from loopml.adapters.sql.engine import Database, create_store_engine
    from loopml.adapters.sql.events import SqlEventLog
    from loopml.adapters.sql.migrate import ensure_schema
    from loopml.adapters.sql.models import SqlModelStore
    from loopml.adapters.sql.monitors import SqlMonitorStore
    from loopml.adapters.sql.pipelines import SqlPipelineStore
    from loopml.adapters.sql.runs import SqlRunStore

    db = Database(create_store_engine(url))
    ensure_schema(db)
    try:
        yield MetadataStores(
            SqlDatasetStore(db),
            SqlRunStore(db),
            SqlModelStore(db),
            SqlEventLog(db),
            SqlPipelineStore(db),
            SqlDeploymentStore(db),
            SqlMonitorStore(db),
            SqlAlertStore(db),
        )
    finally:
        db.dispose()


@contextmanager
def _server_stores(settings: Settings) -> Iterator[MetadataStores]:
    """The remote stores of a live team server, signed in as the suites' actor."""
    from loopml.adapters import remote_operations as ops
    from loopml.adapters.remote import (
        RemoteClient,
        RemoteDatasetStore,
        RemoteEventLog,
        RemoteModelStore,
        RemoteRunStore,
    )
    from loopml.testing.team_server import live_server

    with live_server(settings, admin=ACTOR) as server:
        client = RemoteClient(server.url, server.token)
        try:
            yield MetadataStores(
                RemoteDatasetStore(client),
                RemoteRunStore(client),
                RemoteModelStore(client),
                RemoteEventLog(client),
                ops.RemotePipelineStore(client),
                ops.RemoteDeploymentStore(client),
                ops.RemoteMonitorStore(client),
                ops.RemoteAlertStore(client),
                appends_events=False,
            )
        finally:
            client.close()


@contextmanager
def open_metadata(backend: str, services: Services) -> Iterator[MetadataStores]:
    """Fresh, empty metadata stores on `backend` (a name of METADATA_BACKENDS)."""
    if backend == "memory":
        yield memory_stores()
    elif backend == "sqlite":
        with _sql_stores(f"sqlite:///{services.folder / 'loopml.db'}") as stores:
            yield stores
    elif backend == "postgres":
        with _sql_stores(services.postgres_url()) as stores:
            yield stores
    elif backend == "server":
        with _server_stores(services.settings(services.postgres_url())) as stores:
            yield stores
    else:
        raise ValueError(f"Unknown metadata backend {backend!r}.")


class MemoryBlobProbe:
    """A BlobProbe on the dict a MemoryBlobStore keeps its blobs in."""

    def __init__(self, blobs: dict[Digest, bytes]) -> None:
        self._blobs = blobs

    def overwrite(self, digest: Digest, data: bytes) -> None:
        self._blobs[digest] = data

    def stored_digests(self) -> list[Digest]:
        return sorted(self._blobs)


@contextmanager
def open_blobs(backend: str, services: Services) -> Iterator[tuple[BlobStore, BlobProbe]]:
    """A fresh, empty blob store on `backend` (a name of BLOB_BACKENDS), and a probe that
    reaches its stored bytes behind its back."""
    from loopml.adapters.artifacts import FsspecBlobStore
    from loopml.testing.blobstore_contract import FsspecBlobProbe

    if backend == "memory":
        blobs: dict[Digest, bytes] = {}
        yield MemoryBlobStore(blobs), MemoryBlobProbe(blobs)
    elif backend in ("local", "s3"):
        spec: tuple[str, dict[str, Any]] = (str(services.folder / "blobs"), {})
        if backend == "s3":
            endpoint = services.s3()
            spec = (f"s3://{endpoint.bucket}/{uuid.uuid4().hex}", endpoint.storage_options())
        yield FsspecBlobStore(*spec), FsspecBlobProbe(*spec)
    elif backend == "server":
        with _served_blobs(services) as pair:
            yield pair
    else:
        raise ValueError(f"Unknown blob backend {backend!r}.")


@contextmanager
def _served_blobs(services: Services) -> Iterator[tuple[BlobStore, BlobProbe]]:
    """A team server's blobs over HTTP; the probe reaches the server's own folder."""
    from loopml.adapters.remote import RemoteBlobStore, RemoteClient
    from loopml.testing.blobstore_contract import FsspecBlobProbe
    from loopml.testing.team_server import live_server

    folder = str(services.folder / "served-blobs")
    with live_server(services.settings(artifacts_url=folder)) as server:
        client = RemoteClient(server.url, server.token)
        try:
            yield RemoteBlobStore(client), FsspecBlobProbe(folder, {})
        finally:
            client.close()
