"""The audit chain against someone with write access to the database: rows edited, deleted,
inserted or cut from the end, directly in SQLite and PostgreSQL (the chain on every backend is
in `loopml.testing.contracts.events`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update

from loopml.adapters.sql import tables as t
from loopml.adapters.sql.engine import Database
from loopml.adapters.sql.events import SqlEventLog
from loopml.adapters.sql.models import SqlModelStore
from loopml.domain.audit import event_hash, parse_checkpoint, verify_chain
from loopml.domain.hashing import digest_bytes
from loopml.domain.manifest import BlobRef, Manifest
from loopml.domain.records import EventDraft
from loopml.errors import InvalidInput
from loopml.ports import NewModelVersion
from loopml.services.audit import AuditService


@pytest.fixture
def audit(database: Database) -> AuditService:
    log = SqlEventLog(database)
    for i in range(6):
        log.append(EventDraft("model.alias_set", "model:default/churn", "alice", None, {"v": i}))
    return AuditService(log)


def _rows(database: Database) -> list[dict[str, Any]]:
    with database.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(t.events).order_by(t.events.c.seq))]


def test_an_intact_chain_verifies_with_and_without_its_checkpoint(audit: AuditService) -> None:
    head = audit.head()
    assert head.seq == 6
    assert audit.verify().ok
    assert audit.verify(parse_checkpoint(head.text())).ok


def test_an_edited_row_is_named(audit: AuditService, database: Database) -> None:
    with database.write() as conn:
        conn.execute(update(t.events).where(t.events.c.seq == 3).values(actor="mallory"))
    verdict = audit.verify()
    assert (verdict.ok, verdict.first_bad_seq) == (False, 3)
    assert "content" in verdict.reason


def test_a_deleted_row_is_named(audit: AuditService, database: Database) -> None:
    with database.write() as conn:
        conn.execute(delete(t.events).where(t.events.c.seq == 4))
    verdict = audit.verify()
    assert (verdict.ok, verdict.first_bad_seq) == (False, 5)
    assert "event 4 is missing" in verdict.reason


def test_an_inserted_row_is_named(audit: AuditService, database: Database) -> None:
    rows = _rows(database)
    with database.write() as conn:  # make room after event 2 and forge a plausible event 3
        for row in reversed(rows[2:]):
            conn.execute(
                update(t.events).where(t.events.c.seq == row["seq"]).values(seq=row["seq"] + 1)
            )
        forged = {**rows[2], "seq": 3, "actor": "mallory"}
        conn.execute(insert(t.events).values(**forged))
    verdict = audit.verify()
    assert verdict.ok is False
    assert verdict.first_bad_seq == 3


def test_cutting_the_newest_events_is_caught_by_a_checkpoint(
    audit: AuditService, database: Database
) -> None:
    head = audit.head()
    with database.write() as conn:
        conn.execute(delete(t.events).where(t.events.c.seq >= 5))
    assert audit.verify().ok  # a shorter chain is still a valid chain...
    verdict = audit.verify(head)
    assert verdict.ok is False  # ...but not the one that was checkpointed
    assert "newest events were removed" in verdict.reason


def test_a_rewritten_chain_is_caught_by_a_checkpoint(
    audit: AuditService, database: Database
) -> None:
    head = audit.head()
    rows = _rows(database)
    prev = rows[0]["prev_hash"]
    with database.write() as conn:  # rewrite every hash after editing event 2: a clean chain
        for row in rows:
            after = {"v": "forged"} if row["seq"] == 2 else row["after"]
            time = row["time_us"]
            fresh = event_hash(
                str(prev),
                seq=int(row["seq"]),
                time=datetime.fromtimestamp(int(time) / 1e6, UTC),
                action=str(row["action"]),
                entity=str(row["entity"]),
                actor=str(row["actor"]),
                before=row["before"],
                after=after,
            )
            conn.execute(
                update(t.events)
                .where(t.events.c.seq == row["seq"])
                .values(after=after, prev_hash=prev, hash=fresh)
            )
            prev = fresh
    assert audit.verify().ok  # consistent again: only an outside checkpoint can tell
    verdict = audit.verify(head)
    assert verdict.ok is False
    assert "rewritten" in verdict.reason


def test_an_edited_event_breaks_the_chain(database: Database) -> None:
    store = SqlModelStore(database)
    manifest = Manifest.of([("data.csv", BlobRef(digest_bytes(b"m"), 1))])
    new = NewModelVersion("default", "churn", None, "sklearn", {}, manifest, {"inputs": []}, {})
    event = EventDraft("model.alias_set", "model:default/churn", "alice")
    store.register(new, event)
    store.set_alias("default", "churn", "champion", 1, event)
    store.set_alias("default", "churn", "champion", 1, event)
    with database.write() as conn:
        conn.execute(update(t.events).where(t.events.c.seq == 2).values(actor="mallory"))
    verdict = verify_chain(SqlEventLog(database).iterate())
    assert (verdict.ok, verdict.first_bad_seq) == (False, 2)


def test_a_malformed_checkpoint_is_refused() -> None:
    with pytest.raises(InvalidInput, match="not an audit checkpoint"):
        parse_checkpoint("yesterday")
