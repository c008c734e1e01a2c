"""The append-only, hash-chained event log, and the helper every repository uses to record its
mutation in the same transaction as the change itself."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import ColumnElement, Connection, func, select

from loopml.adapters.sql import tables as t
from loopml.adapters.sql.dialect import insert_ignore
from loopml.adapters.sql.engine import Database
from loopml.adapters.sql.rows import Clock as Clock
from loopml.adapters.sql.rows import system_clock_us as system_clock_us
from loopml.adapters.sql.rows import to_event
from loopml.domain.audit import GENESIS_HASH, event_hash
from loopml.domain.epoch_us import us_to_datetime
from loopml.domain.records import Event, EventDraft


def ensure_project(conn: Connection, project: str, now_us: int) -> None:
    """Create `project` on first use; projects are namespaces."""
    insert_ignore(conn, t.projects, [{"name": project, "created_us": now_us}])


def append_event(db: Database, conn: Connection, draft: EventDraft, now_us: int) -> Event:
    """Append `draft` to the chain inside the caller's write transaction."""
    db.lock_events(conn)
    head = conn.execute(
        select(t.events.c.seq, t.events.c.hash).order_by(t.events.c.seq.desc()).limit(1)
    ).first()
    seq, prev = (head.seq + 1, head.hash) if head else (1, GENESIS_HASH)
    when = us_to_datetime(now_us)
    digest = event_hash(
        prev,
        seq=seq,
        time=when,
        action=draft.action,
        entity=draft.entity,
        actor=draft.actor,
        before=draft.before,
        after=draft.after,
    )
    conn.execute(
        t.events.insert().values(
            seq=seq,
            time_us=now_us,
            action=draft.action,
            entity=draft.entity,
            actor=draft.actor,
            before=draft.before,
            after=draft.after,
            prev_hash=prev,
            hash=digest,
        )
    )
    return Event(
        seq, when, draft.action, draft.entity, draft.actor, draft.before, draft.after, prev, digest
    )


def _is_or_under(entity: str) -> ColumnElement[bool]:
    """Events of `entity` and of the things under it (`model:p/churn` for `model:p`).

    `_` and `%` in a name are letters, not wildcards (`proj_` never matches `projB`), and the
    prefix compares case by case (SQLite's LIKE ignores ASCII case: `projb` must not match
    `projB`)."""
    prefix = entity + "/"
    column = t.events.c.entity
    return (column == entity) | (
        column.startswith(prefix, autoescape=True) & (func.substr(column, 1, len(prefix)) == prefix)
    )


class SqlEventLog:
    """The `EventLog` port on SQL."""

    def __init__(self, db: Database, clock: Clock = system_clock_us) -> None:
        self._db = db
        self._clock = clock

    def append(self, event: EventDraft) -> Event:
        with self._db.write() as conn:
            return append_event(self._db, conn, event, self._clock())

    def list(
        self, *, entity: str | None = None, action: str | None = None, limit: int = 100
    ) -> list[Event]:
        query = select(t.events).order_by(t.events.c.seq.desc()).limit(limit)
        if entity is not None:
            query = query.where(_is_or_under(entity))
        if action is not None:
            query = query.where(t.events.c.action == action)
        with self._db.read() as conn:
            return [to_event(row) for row in conn.execute(query)]

    def iterate(self) -> Iterator[Event]:
        batch = 1000
        last = 0
        while True:
            query = (
                select(t.events).where(t.events.c.seq > last).order_by(t.events.c.seq).limit(batch)
            )
            with self._db.read() as conn:
                rows = [to_event(row) for row in conn.execute(query)]
            yield from rows
            if len(rows) < batch:
                return
            last = rows[-1].seq
