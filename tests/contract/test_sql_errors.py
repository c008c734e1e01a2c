"""The SQL adapters speak loopml's errors: nothing above them ever sees SQLAlchemy's."""

from __future__ import annotations

import pytest

from loopml.adapters.sql.auth import SqlAuthStore
from loopml.adapters.sql.engine import Database, create_store_engine
from loopml.adapters.sql.leases import SqlLeases
from loopml.domain.records import EventDraft
from loopml.errors import Conflict, InvalidInput, Unavailable


def test_a_broken_constraint_is_a_conflict(database: Database) -> None:
    store = SqlAuthStore(database)
    store.create_user("ann", "admin", EventDraft("user.created", "user:ann", "t"))
    event = EventDraft("token.created", "user:ann", "t")
    store.add_token("ann", "a", digest="0" * 64, hint="abcd", expires=None, event=event)
    with pytest.raises(Conflict, match="conflicts with what is stored"):
        store.add_token("ann", "b", digest="0" * 64, hint="abcd", expires=None, event=event)
    assert [token.name for token in store.tokens("ann")] == ["a"]  # nothing half-written


def test_a_value_too_long_for_its_column_is_invalid_input(database: Database) -> None:
    """PostgreSQL refuses a 300-character lease owner; SQLite keeps text of any length."""
    leases = SqlLeases(database)
    if database.backend == "postgresql":
        with pytest.raises(InvalidInput, match="does not fit the store"):
            leases.acquire("job", "x" * 300, ttl_s=60)
        assert leases.holder("job") == (None, None)
    else:
        assert leases.acquire("job", "x" * 300, ttl_s=60)


def test_a_database_that_does_not_answer_is_unavailable() -> None:
    db = Database(create_store_engine("postgresql+psycopg://nobody@127.0.0.1:9/nowhere"))
    with pytest.raises(Unavailable, match="did not answer"):
        SqlLeases(db).holder("job")
