"""Every blob digest the metadata names (`BlobReferences`), for garbage collection.

Losing a blob a record needs is the worst thing a collection can do, so the references are not
a list of known columns that a new kind of record could miss: every text or JSON column able to
hold a digest, of every table but those listed in `NOT_REFERENCES` (each with its reason), is
read, and every `blake3:<hex>` in it counts. That covers dataset and model manifests, run
artifacts (the environment's package list too), step outputs and the step cache, monitor
summaries and reports, and whatever a later table stores. A test checks that each table is
either read or excused.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import JSON, ColumnElement, String, Table, Text, cast, select

from loopml.adapters.sql import tables as t
from loopml.adapters.sql.engine import Database

NOT_REFERENCES: dict[str, str] = {
    "events": "the audit trail tells what changed; nothing reads a blob through it",
    "metrics": "numbers",
    "latest_metrics": "numbers",
    "params": "a run's settings as text: loopml reads no blob through them",
    "tags": "labels as text: loopml reads no blob through them",
    "blob_refs": "an index of the records read here, kept with them",
    "blob_uploads": "who sent a blob, not a record needing it: its time counts as the blob's age",
    "leases": "job leases",
    "ui_sessions": "web sessions",
    "tokens": "API tokens",
    "users": "users",
    "grants": "roles",
    "projects": "project names",
}
"""Tables whose text never names a blob that something reads."""

_DIGEST = re.compile(r"blake3:[0-9a-f]{64}")
_DIGEST_CHARS = len("blake3:") + 64


def _digest_columns(table: Table) -> list[ColumnElement[Any]]:
    """The columns of `table` that can hold a digest: JSON (as text), and text long enough."""
    columns: list[ColumnElement[Any]] = []
    for column in table.columns:
        if isinstance(column.type, JSON):
            columns.append(cast(column, Text))
        elif isinstance(column.type, String) and (
            column.type.length is None or column.type.length >= _DIGEST_CHARS
        ):
            columns.append(column)
    return columns


def scanned_tables() -> list[Table]:
    """The tables whose records may name blobs."""
    return [table for name, table in t.metadata.tables.items() if name not in NOT_REFERENCES]


class SqlBlobReferences:
    def __init__(self, db: Database) -> None:
        self._db = db

    def referenced(self) -> set[str]:
        """Every `blake3:<hex>` in any record that may name a blob (rows streamed)."""
        found: set[str] = set()
        with self._db.read() as conn:
            for table in scanned_tables():
                for column in _digest_columns(table):
                    query = select(column).where(column.like("%blake3:%"))
                    for (text,) in conn.execute(query.execution_options(yield_per=1000)):
                        if text:
                            found.update(_DIGEST.findall(str(text)))
        return found

    def uploaded_since(self, since_us: int) -> set[str]:
        """Digests sent to the team server at or after `since_us`."""
        query = select(t.blob_uploads.c.digest).where(t.blob_uploads.c.time_us >= since_us)
        with self._db.read() as conn:
            return set(conn.execute(query).scalars())
