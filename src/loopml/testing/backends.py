"""The backends loopml's own tests run on, listed once: for the store contracts, metadata on
memory, SQLite, PostgreSQL and a live team server (on PostgreSQL, through the remote stores) and
blobs in memory, in a local folder, on S3 and through a team server; for the tests of a whole
workspace, the same metadata backends (`WORKSPACE_BACKENDS`) and the subsets a test that needs
more than one process can use (`SHARED_WORKSPACE_BACKENDS`, `DATABASE_BACKENDS`,
`COLLECTED_BACKENDS`).

A list entry is a pytest param, marked with the service it needs (`-m "not postgres"` leaves
those out); `open_metadata`, `open_blobs` and `workspace_settings` open one backend, fresh and
empty. What a backend needs from the test session (a PostgreSQL schema, the S3 server,
workspace settings) comes through `Services`, and is asked for only by the backends that need
it. The stores of the contracts read a `FakeClock` where they take one, so a suite lets time
pass without waiting.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from loopml.adapters.memory.blobs import MemoryBlobStore
from loopml.adapters.memory.database import MEMORY_URL, MemoryDatabase, system_clock_us
from loopml.adapters.memory.store_set import memory_stores as memory_metadata
from loopml.domain.hashing import Digest
from loopml.ports import BlobStore
from loopml.settings import Settings
from loopml.testing.blobstore_contract import BlobProbe
from loopml.testing.contracts.clock import FakeClock
from loopml.testing.contracts.stores import ACTOR, MetadataStores
from loopml.testing.seaweed import S3Endpoint

METADATA_BACKENDS = [
    pytest.param("memory"),
    pytest.param("sqlite"),
    pytest.param("quick"),
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("server", marks=pytest.mark.postgres),
]
"""Where the metadata stores live. Every metadata contract runs on each. `quick` is SQLite
read through the standard `sqlite3` and written through the SQL stores, as a local workspace
at the current schema is opened (`loopml.adapters.sql.quick`)."""

BLOB_BACKENDS = [
    pytest.param("memory"),
    pytest.param("local"),
    pytest.param("s3", marks=pytest.mark.s3),
    pytest.param("server"),
]
"""Where blobs live. The blob store contract runs on each."""

WORKSPACE_BACKENDS = [
    pytest.param("memory"),
    pytest.param("sqlite"),
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("server", marks=pytest.mark.postgres),
]
"""Where a whole workspace's metadata lives (its blobs in a local folder; a server's in the
folder its clients' model servers log to): in this process's memory, SQLite, PostgreSQL, or
through a live team server on PostgreSQL (the stores remote, the services here)."""

SHARED_WORKSPACE_BACKENDS = [p for p in WORKSPACE_BACKENDS if p.values[0] in ("sqlite", "server")]
"""Workspaces another process can open too (pipeline steps on a process pool, a loop's
retraining): the embedded one on SQLite and a team server's client. A memory workspace lives
and dies with its process."""

DATABASE_BACKENDS = [p for p in WORKSPACE_BACKENDS if p.values[0] in ("sqlite", "postgres")]
"""The SQL databases, for what only a database has: an URL other processes connect to, its
schema and migrations."""

COLLECTED_BACKENDS = [
    pytest.param("sqlite+folder"),
    pytest.param("postgres+s3", marks=[pytest.mark.postgres, pytest.mark.s3]),
]
"""A workspace's metadata and blobs together on the machine that holds them, as `loopml gc`
collects them and as separate processes (a killed `loopml data add`, a run's process) share
them: SQLite with a folder, PostgreSQL with S3."""


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


def memory_stores(clock: FakeClock | None = None) -> MetadataStores:
    """Every metadata store in memory, on one database, reading `clock` (the real time when
    None)."""
    db = MemoryDatabase(system_clock_us if clock is None else clock)
    return MetadataStores(**memory_metadata(db).ports(), clock=clock)


@contextmanager
def _sql_stores(url: str, clock: FakeClock) -> Iterator[MetadataStores]:
    from loopml.adapters.sql.engine import Database, create_store_engine
    from loopml.adapters.sql.migrate import ensure_schema
    from loopml.adapters.sql.store_sets import sql_stores

    db = Database(create_store_engine(url))
    ensure_schema(db)
    try:
        yield MetadataStores(**sql_stores(db, clock).ports(), clock=clock)
    finally:
        db.dispose()


@contextmanager
def _quick_stores(url: str, clock: FakeClock) -> Iterator[MetadataStores]:
    """The quick stores of a fresh SQLite file: written through the SQL stores, read back
    through `sqlite3`."""
    from loopml.adapters.sql.engine import Database, create_store_engine
    from loopml.adapters.sql.migrate import ensure_schema
    from loopml.adapters.sql.quick import open_quick
    from loopml.adapters.sql.store_sets import quick_stores

    made = Database(create_store_engine(url))
    ensure_schema(made)
    made.dispose()
    quick = open_quick(url, clock)
    assert quick is not None, "a file at the current schema is read quickly"
    try:
        yield MetadataStores(**quick_stores(quick).ports(), clock=clock)
    finally:
        quick.dispose()


@contextmanager
def _server_stores(settings: Settings) -> Iterator[MetadataStores]:
    """The remote stores of a live team server, signed in as the suites' actor."""
    from loopml.adapters.remote import RemoteClient
    from loopml.adapters.remote_operations import remote_stores
    from loopml.testing.team_server import live_server

    with live_server(settings, admin=ACTOR) as server:
        client = RemoteClient(server.url, server.token)
        try:
            yield MetadataStores(
                **remote_stores(client).ports(),
                appends_events=False,
                checks_tokens=False,
                loop_leases_only=True,
            )
        finally:
            client.close()


@contextmanager
def open_metadata(backend: str, services: Services) -> Iterator[MetadataStores]:
    """Fresh, empty metadata stores on `backend` (a name of METADATA_BACKENDS); all but a
    server's read a `FakeClock` of their own (a server reads the real time)."""
    if backend == "memory":
        yield memory_stores(FakeClock())
    elif backend == "sqlite":
        with _sql_stores(f"sqlite:///{services.folder / 'loopml.db'}", FakeClock()) as stores:
            yield stores
    elif backend == "quick":
        with _quick_stores(f"sqlite:///{services.folder / 'loopml.db'}", FakeClock()) as stores:
            yield stores
    elif backend == "postgres":
        with _sql_stores(services.postgres_url(), FakeClock()) as stores:
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


def database_url(backend: str, services: Services) -> str:
    """The URL of a fresh, empty database on `backend` (a name of DATABASE_BACKENDS)."""
    if backend == "sqlite":
        return f"sqlite:///{services.folder / 'meta' / 'loopml.db'}"
    if backend == "postgres":
        return services.postgres_url()
    raise ValueError(f"Unknown database backend {backend!r}.")


@contextmanager
def workspace_settings(backend: str, services: Services) -> Iterator[Settings]:
    """The settings of a fresh workspace on `backend` (a name of WORKSPACE_BACKENDS), its
    blobs in a local folder; for `server`, of a client of a live team server (its admin
    `tester`, the actor of the settings) that keeps its blobs in that folder, as a team's
    model servers and team server share one bucket."""
    if backend == "memory":
        yield services.settings(MEMORY_URL)
    elif backend == "sqlite":
        yield services.settings()  # the default: SQLite in the workspace's home
    elif backend == "postgres":
        yield services.settings(services.postgres_url())
    elif backend == "server":
        from loopml.testing.team_server import live_server

        with live_server(services.settings(services.postgres_url()), admin="tester") as server:
            yield services.settings(server_url=server.url, token=server.token)
    else:
        raise ValueError(f"Unknown workspace backend {backend!r}.")


def collected_settings(backend: str, services: Services) -> Settings:
    """The settings of a fresh workspace on `backend` (a name of COLLECTED_BACKENDS): SQLite
    and a folder in the workspace's home, or PostgreSQL and a fresh prefix of the S3 bucket."""
    if backend == "sqlite+folder":
        return services.settings()
    if backend == "postgres+s3":
        s3 = services.s3()
        return services.settings(
            services.postgres_url(),
            artifacts_url=f"s3://{s3.bucket}/{uuid.uuid4().hex}",
            storage_options=s3.storage_options(),
        )
    raise ValueError(f"Unknown workspace backend {backend!r}.")
