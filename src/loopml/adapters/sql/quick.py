"""The quick read path of the embedded workspace: its SQLite file read with the standard `sqlite3`
module, so that listing and showing records needs neither SQLAlchemy nor Alembic.

A command such as `loopml data list` spends most of its time importing SQLAlchemy (0.15 s and
more) for a query that takes a millisecond. A quick store answers the reads the list and show
commands make with plain SQL on a read-only connection (WAL readers never block a writer, and a
busy database is waited for as the full stores wait), and hands every other method to the full
`Sql*Store`, built on first use on a `Database` that is itself built on first use: each quick
store is a complete implementation of its port, and a process that only reads never imports
SQLAlchemy. Both paths turn rows into records with the same functions (`rows.py`), and the
metadata contract suites run on the quick stores (`loopml.testing.backends`, backend `quick`).

Only a SQLite file at the schema revision of this code (`revision.HEAD_REVISION`) is read this
way; any other database (PostgreSQL, a team server, a file to create or to upgrade) takes the
full path (`open_quick` answers None), which creates, upgrades or explains.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import quote

from loopml.adapters.sql.revision import HEAD_REVISION
from loopml.adapters.sql.rows import Clock, system_clock_us

if TYPE_CHECKING:
    from loopml.adapters.sql.engine import Database

T = TypeVar("T")
BUSY_TIMEOUT_S = 30.0
"""As long as the full stores wait for a busy database (`engine.BUSY_TIMEOUT_MS`)."""
_JSON_COLUMNS = frozenset(
    {"manifest", "table_schema", "profile", "environment", "flavor_info", "signature", "metrics"}
    | {"before", "after", "outputs"}
)
"""The columns SQLAlchemy's JSON type keeps (as JSON text on SQLite): decoded as it decodes them."""


class QuickRow(dict[str, Any]):
    """A row whose columns read as attributes, as SQLAlchemy's rows do (what `rows.py` takes)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _quick_row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> QuickRow:
    names = [column[0] for column in cursor.description]
    return QuickRow(
        (name, json.loads(value) if name in _JSON_COLUMNS and value is not None else value)
        for name, value in zip(names, values, strict=True)
    )


class Reader:
    """The statements of one read transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[QuickRow]:
        return self._conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence[Any] = ()) -> QuickRow | None:
        row: QuickRow | None = self._conn.execute(sql, params).fetchone()
        return row

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self._conn.execute(sql, params).fetchone()
        return None if row is None else next(iter(row.values()))


class QuickDatabase:
    """The workspace database read with `sqlite3` (one read-only connection, one read at a
    time), and the full `Database` for everything else, built on first use."""

    def __init__(self, url: str, path: Path, clock: Clock) -> None:
        self.url = url
        self.clock = clock
        self._path = path
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._full: Database | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                f"file:{quote(str(self._path))}?mode=ro",
                uri=True,
                timeout=BUSY_TIMEOUT_S,
                isolation_level=None,  # BEGIN and COMMIT are ours
                check_same_thread=False,  # one read at a time, under the lock
            )
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            conn.row_factory = _quick_row
            self._conn = conn
        return self._conn

    @contextmanager
    def read(self) -> Iterator[Reader]:
        """A read transaction: its statements see one snapshot, and take no write lock."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                yield Reader(conn)
            finally:
                conn.execute("COMMIT")

    def database(self) -> Database:
        """The full `Database` (SQLAlchemy), for what the quick path does not answer."""
        with self._lock:
            if self._full is None:
                from loopml.adapters.sql.engine import Database, create_store_engine

                self._full = Database(create_store_engine(self.url))
            return self._full

    def revision(self) -> str | None:
        """The schema revision of the file, None when it has none (or cannot be read)."""
        try:
            with self.read() as reader:
                found = reader.scalar("SELECT version_num FROM alembic_version")
        except sqlite3.Error:
            return None
        return None if found is None else str(found)

    def dispose(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._full is not None:
                self._full.dispose()


def sqlite_file(url: str) -> Path | None:
    """The file of a plain `sqlite:///PATH` URL; None for any other URL (PostgreSQL, memory,
    a URL with options)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url:
        return None
    path = url[len(prefix) :]
    return Path(path) if path and path != ":memory:" else None


def open_quick(url: str, clock: Clock = system_clock_us) -> QuickDatabase | None:
    """The quick reader of the database at `url`, or None when the full path must open it:
    not a SQLite file, not there yet, or not at this code's schema revision."""
    path = sqlite_file(url)
    if path is None or not path.is_file():
        return None
    quick = QuickDatabase(url, path, clock)
    if quick.revision() != HEAD_REVISION:
        quick.dispose()
        return None
    return quick


class QuickStore(Generic[T]):
    """What every quick store shares: the quick database, and the full store of its port,
    made by `make(database, clock)` on first use."""

    def __init__(self, quick: QuickDatabase, make: Callable[[Database, Clock], T]) -> None:
        self._quick = quick
        self._make = make
        self._store: T | None = None

    @property
    def full(self) -> T:
        if self._store is None:
            self._store = self._make(self._quick.database(), self._quick.clock)
        return self._store


class LazyStore:
    """A store with no quick reads, built on first use of any attribute (pipelines, leases,
    users, tokens and grants: no list or show command of a local workspace reads them)."""

    def __init__(self, quick: QuickDatabase, make: Callable[[Database, Clock], Any]) -> None:
        self._quick = quick
        self._make = make
        self._store: Any = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if self._store is None:
            self._store = self._make(self._quick.database(), self._quick.clock)
        return getattr(self._store, name)


def placeholders(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))
