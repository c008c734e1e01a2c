"""The two statements SQLite and PostgreSQL spell alike but SQLAlchemy builds per dialect."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, select


def _insert(conn: Connection, table: Table) -> Any:
    if conn.dialect.name == "postgresql":  # imported on use: SQLite users never load it
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


def insert_ignore(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `rows`, skipping any whose key exists."""
    if rows:
        conn.execute(_insert(conn, table).on_conflict_do_nothing(), list(rows))


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    keys: Sequence[str],
    update: Sequence[str],
    only_if_newer: str | None = None,
) -> None:
    """Insert `rows`, or update the `update` columns of the row with the same `keys`.

    With `only_if_newer`, an existing row is updated only when the incoming value of that column
    is at least the stored one (the latest metric value by step).
    """
    if not rows:
        return
    stmt = _insert(conn, table)
    where = None
    if only_if_newer is not None:
        where = stmt.excluded[only_if_newer] >= table.c[only_if_newer]
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={c: stmt.excluded[c] for c in update}, where=where
    )
    conn.execute(stmt, list(rows))


def lock_or_create_named(
    conn: Connection, table: Table, project: str, name: str, values: dict[str, Any]
) -> tuple[int, int]:
    """Id and latest version number of the row named (`project`, `name`), created with `values`
    if missing, and locked until the transaction ends so version numbers never collide.

    Insert-if-absent first, then read under `FOR UPDATE` (PostgreSQL); SQLite's write
    transaction already holds the database lock.
    """
    insert_ignore(conn, table, [{"project": project, "name": name, "latest_version": 0, **values}])
    query = select(table.c.id, table.c.latest_version).where(
        table.c.project == project, table.c.name == name
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).one()
    return int(row.id), int(row.latest_version)
