"""Which projects hold each blob, and who uploaded it: what lets the team server hand a blob
only to someone who may read it.

Every SQL store that writes a record naming blobs (a dataset or model manifest, a run artifact,
a step output, a monitor summary or report) calls `add_blob_refs` in the same transaction, so a
record and its (digest, project) pairs are never apart; the embedded workspace fills them too
(one code path, cheap), though only the server checks them.

A blob is readable by a user when a project they may read holds it, or when they uploaded it
(before any record names it: a client uploads the files, then sends the manifest).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator

from sqlalchemy import Connection, select

from loopml.adapters.sql import tables as t
from loopml.adapters.sql.dialect import insert_ignore, upsert
from loopml.adapters.sql.engine import Database
from loopml.adapters.sql.events import Clock, system_clock_us

_CHUNK = 500
"""Digests per IN (...) list: well under SQLite's limit on bound parameters."""


def add_blob_refs(conn: Connection, project: str, digests: Iterable[str]) -> None:
    """Record that `project` holds each of `digests` (inside the caller's transaction)."""
    rows = [{"digest": d, "project": project} for d in sorted(set(digests))]
    for start in range(0, len(rows), _CHUNK):
        insert_ignore(conn, t.blob_refs, rows[start : start + _CHUNK])


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class SqlBlobAccess:
    """The team server's view of blob ownership: uploads, and who may read what."""

    def __init__(self, db: Database, clock: Clock = system_clock_us) -> None:
        self._db = db
        self._clock = clock

    def record_upload(self, digest: str, user: str) -> None:
        """`user` sent the bytes of `digest` (again: the time moves, so a grace period counts
        from the latest upload)."""
        row = {"digest": digest, "user": user, "time_us": self._clock()}
        with self._db.write() as conn:
            upsert(conn, t.blob_uploads, [row], keys=["digest", "user"], update=["time_us"])

    def unreadable(
        self, digests: Iterable[str], user: str, projects: Collection[str] | None
    ) -> list[str]:
        """Those of `digests` that `user` may not read: held by none of `projects` (None: any
        project at all) and not uploaded by them. Sorted, each once."""
        wanted = sorted(set(digests))
        found: set[str] = set()
        with self._db.read() as conn:
            for chunk in _chunks(wanted):
                held = select(t.blob_refs.c.digest).where(t.blob_refs.c.digest.in_(chunk))
                if projects is not None:
                    held = held.where(t.blob_refs.c.project.in_(sorted(projects)))
                found.update(conn.execute(held).scalars())
                rest = [d for d in chunk if d not in found]
                if rest:
                    sent = select(t.blob_uploads.c.digest).where(
                        t.blob_uploads.c.digest.in_(rest), t.blob_uploads.c.user == user
                    )
                    found.update(conn.execute(sent).scalars())
        return [d for d in wanted if d not in found]

    def readable(self, digest: str, user: str, projects: Collection[str] | None) -> bool:
        return not self.unreadable([digest], user, projects)
