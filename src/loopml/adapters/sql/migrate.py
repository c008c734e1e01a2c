"""Bring a database to the newest schema with the Alembic migrations shipped in the package.

`ensure_schema` costs one query when the schema is current. Otherwise it takes a lock (a file lock
beside a SQLite database, an advisory lock on PostgreSQL), checks again, and upgrades: several
processes opening a new workspace at once run the migrations exactly once.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, inspect, text

from loopml.adapters.sql.engine import Database
from loopml.adapters.sql.revision import HEAD_REVISION as HEAD_REVISION

_MIGRATIONS = Path(__file__).with_name("migrations")
_ADVISORY_KEY = 7405912


def current_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def alembic_config(conn: Connection | None = None) -> object:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    """Run the migrations up to `revision` under the cross-process lock."""
    from alembic import command

    if db.backend == "sqlite":
        from filelock import FileLock

        lock_path = Path(str(db.engine.url.database) + ".migrate.lock")
        with FileLock(str(lock_path), timeout=120), db.engine.begin() as conn:
            command.upgrade(alembic_config(conn), revision)  # type: ignore[arg-type]
        return
    with db.engine.connect() as conn:
        conn.execute(text(f"SELECT pg_advisory_lock({_ADVISORY_KEY})"))
        conn.commit()  # the lock belongs to the session and outlives this transaction
        try:
            with conn.begin():
                command.upgrade(alembic_config(conn), revision)  # type: ignore[arg-type]
        finally:
            conn.execute(text(f"SELECT pg_advisory_unlock({_ADVISORY_KEY})"))
            conn.commit()


def ensure_schema(db: Database) -> None:
    """Upgrade to the newest schema unless it is already there."""
    with db.read() as conn:
        if current_revision(conn) == HEAD_REVISION:
            return
    upgrade(db)
