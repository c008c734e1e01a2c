"""Opening the metadata database: engine settings per backend, write/read transactions, and the
schema brought to the newest migration on first open (safely when several processes open at once).

SQLite runs in WAL mode with a 30 s busy timeout, foreign keys on and `synchronous=FULL` (a commit
that returned is on disk). Write transactions start with `BEGIN IMMEDIATE`, so two writers queue on
the busy timeout instead of failing with "database is locked" when a reader upgrades to a writer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.pool import NullPool

from loopml.adapters.sqlite_wal import enable_wal
from loopml.errors import Conflict, InvalidInput, Unavailable

BUSY_TIMEOUT_MS = 30_000
_READ_OPTION = "loopml_read"


def normalise_url(url: str) -> str:
    """Accept `postgresql://` and `postgres://` and route them to psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        poolclass=NullPool if parsed.database in (None, "", ":memory:") else None,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        enable_wal(cursor, timeout_s=BUSY_TIMEOUT_MS / 1000)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read = conn.get_execution_options().get(_READ_OPTION, False)
        conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")

    return engine


def create_store_engine(url: str) -> Engine:
    """An engine for `url` with loopml's settings for its backend."""
    url = normalise_url(url)
    try:
        backend = make_url(url).get_backend_name()
    except Exception as exc:  # sqlalchemy raises ArgumentError with no hint
        raise InvalidInput(
            f"LOOPML_DB_URL {url!r} is not a database URL.",
            "Use sqlite:///path/to/loopml.db or postgresql+psycopg://user@host/db.",
        ) from exc
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend == "postgresql":
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    raise InvalidInput(
        f"Database backend {backend!r} is not supported.",
        "Use SQLite (sqlite:///...) or PostgreSQL (postgresql+psycopg://...).",
    )


class Database:
    """An engine plus the two kinds of transaction loopml uses."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.backend = engine.dialect.name
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on any error."""
        with self._translated(), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def single_statement(self) -> Iterator[Connection]:
        """A connection for one write statement, atomic on its own. On PostgreSQL it runs in
        autocommit (no BEGIN and COMMIT round trips); elsewhere in a write transaction."""
        if self.backend != "postgresql":
            with self.write() as conn:
                yield conn
            return
        with self._translated(), self._autocommit.connect() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (never takes the SQLite write lock)."""
        with self._translated(), self.engine.connect() as conn:
            conn = conn.execution_options(**{_READ_OPTION: True})
            with conn.begin():
                yield conn

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """The database's errors as loopml's, so nothing above the SQL adapters names
        SQLAlchemy: no answer is Unavailable, a value the column cannot hold is InvalidInput,
        a broken constraint is Conflict."""
        try:
            yield
        except OperationalError as exc:
            raise _unavailable(self.engine, exc) from exc
        except DataError as exc:
            raise InvalidInput(
                "A value does not fit the store (too long, or out of range).",
                "Shorten the name or text, or use a smaller number.",
            ) from exc
        except IntegrityError as exc:
            raise Conflict(
                "The change conflicts with what is stored.", "Check the ids and names it uses."
            ) from exc

    def lock_events(self, conn: Connection) -> None:
        """Serialise appends to the event chain (SQLite's write lock already does)."""
        if self.backend == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7405913)"))

    def dispose(self) -> None:
        self.engine.dispose()


def create_schema(database_url: str, schema: str) -> None:
    """Create PostgreSQL schema `schema` (a letter, then letters, digits and _) in the database
    at `database_url`: a fresh namespace for a test, or for a store beside others."""
    if not schema.replace("_", "a").isalnum() or not schema[:1].isalpha():
        raise InvalidInput(f"{schema!r} is not a schema name.", "Use letters, digits and _.")
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        raise _unavailable(engine, exc) from exc
    finally:
        engine.dispose()


def _unavailable(engine: Engine, exc: OperationalError) -> Unavailable:
    where = engine.url.render_as_string(hide_password=True)
    first_line = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    return Unavailable(
        f"The metadata database at {where} did not answer: {first_line}.",
        "Check that it is running and reachable (LOOPML_DB_URL), then retry.",
    )
