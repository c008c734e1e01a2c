"""The TokenStore contract: a user's tokens, kept only as their SHA-256 (one token per hash),
read back by id, listed by id, looked up by hash with their user (by a store that checks tokens;
a client of a server leaves that to the server), revoked once with the time; each change
audited. And the optional SessionStore: a web UI session stands for its token until deleted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loopml.domain.auth import Token, token_hash
from loopml.errors import Conflict, InvalidInput, NotFound
from loopml.ports import SessionStore
from loopml.testing.contracts.stores import ACTOR, MetadataStores, draft, events_since, last_seq

__all__ = [
    "test_a_hash_is_one_tokens_only",
    "test_a_session_stands_for_its_token_until_deleted",
    "test_a_token_is_kept_by_its_hash_and_read_back",
    "test_a_token_may_expire",
    "test_revoking_keeps_the_token_with_the_first_time_and_is_audited",
    "test_unknown_tokens_and_users_are_named_in_the_error",
]

_EXPIRES = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)


def _ann(stores: MetadataStores) -> None:
    stores.users.create_user("ann", "editor", draft("user.created", "user:ann"))


def _add(
    stores: MetadataStores, text: str, name: str = "laptop", expires: datetime | None = None
) -> Token:
    """Token `text` (only its hash is given to the store) for ann."""
    return stores.tokens.add_token(
        "ann",
        name,
        digest=token_hash(text),
        hint=text[-4:],
        expires=expires,
        event=draft("token.created", "user:ann"),
    )


def test_a_token_is_kept_by_its_hash_and_read_back(stores: MetadataStores) -> None:
    _ann(stores)
    start = last_seq(stores)
    made = _add(stores, "lml_first-token-abcd")
    assert (made.user, made.name, made.hint) == ("ann", "laptop", "abcd")
    assert (made.expires_at, made.revoked_at) == (None, None)
    assert made.created_at.utcoffset() is not None
    assert stores.tokens.token(made.id) == made
    second = _add(stores, "lml_second-token-wxyz", "ci")
    assert second.id > made.id
    assert stores.tokens.tokens("ann") == [made, second]  # by id
    assert [t for t in stores.tokens.tokens(None) if t.user == "ann"] == [made, second]
    created, _ = events_since(stores, start)
    assert (created.action, created.entity, created.actor) == ("token.created", "user:ann", ACTOR)
    assert created.before is None
    assert created.after == {"token": made.id, "name": "laptop", "hint": "abcd"}
    if not stores.checks_tokens:
        with pytest.raises(InvalidInput, match="checked by the server"):
            stores.tokens.find_token(token_hash("lml_first-token-abcd"))
        return
    found = stores.tokens.find_token(token_hash("lml_first-token-abcd"))
    assert found == (made, stores.users.user("ann"))
    assert stores.tokens.find_token(token_hash("lml_never-made")) is None


def test_a_token_may_expire(stores: MetadataStores) -> None:
    _ann(stores)
    made = _add(stores, "lml_expiring-0001", expires=_EXPIRES)
    assert made.expires_at == _EXPIRES
    assert stores.tokens.token(made.id).expires_at == _EXPIRES


def test_revoking_keeps_the_token_with_the_first_time_and_is_audited(
    stores: MetadataStores,
) -> None:
    _ann(stores)
    made = _add(stores, "lml_to-revoke-0002")
    kept = _add(stores, "lml_to-keep-0003", "ci")
    start = last_seq(stores)
    revoked = stores.tokens.revoke_token(made.id, draft("token.revoked", "user:ann"))
    assert revoked.revoked_at is not None
    assert revoked.revoked_at >= made.created_at
    assert revoked == Token(
        made.id, "ann", "laptop", made.created_at, None, revoked.revoked_at, made.hint
    )
    again = stores.tokens.revoke_token(made.id, draft("token.revoked", "user:ann"))
    assert again.revoked_at == revoked.revoked_at  # revoked once: the first time stays
    assert stores.tokens.tokens("ann") == [revoked, kept]  # kept, for the record
    events = events_since(stores, start)
    assert [(e.action, e.entity, e.after) for e in events] == [
        ("token.revoked", "user:ann", {"token": made.id})
    ] * 2


def test_unknown_tokens_and_users_are_named_in_the_error(stores: MetadataStores) -> None:
    _ann(stores)
    made = _add(stores, "lml_only-token-0004")
    ghost = made.id + 1000
    with pytest.raises(NotFound, match=f"Token {ghost} does not exist"):
        stores.tokens.token(ghost)
    with pytest.raises(NotFound, match="tokens list"):
        stores.tokens.revoke_token(ghost, draft("token.revoked", "user:ann"))
    with pytest.raises(NotFound, match="'ghost' does not exist"):
        stores.tokens.add_token(
            "ghost",
            "t",
            digest=token_hash("lml_for-nobody-0005"),
            hint="0005",
            expires=None,
            event=draft("token.created", "user:ghost"),
        )
    assert stores.tokens.tokens("ghost") == []
    assert stores.tokens.token(made.id).revoked_at is None


def test_a_hash_is_one_tokens_only(stores: MetadataStores) -> None:
    _ann(stores)
    made = _add(stores, "lml_same-token-0006")
    with pytest.raises(Conflict, match="conflicts with what is stored"):
        _add(stores, "lml_same-token-0006", "twice")
    assert stores.tokens.tokens("ann") == [made]  # nothing half-written


def test_a_session_stands_for_its_token_until_deleted(stores: MetadataStores) -> None:
    sessions = stores.tokens
    if not isinstance(sessions, SessionStore):
        pytest.skip("this token store keeps no web UI sessions")
    _ann(stores)
    token = _add(stores, "lml_session-token-0007")
    old = token_hash("an old session")
    sessions.add_session(old, token.id, datetime(2001, 1, 1, tzinfo=UTC))  # expired already
    assert sessions.find_session(old) is not None  # an expired session is the caller's to judge
    current = token_hash("a session")
    sessions.add_session(current, token.id, _EXPIRES)
    assert sessions.find_session(current) == (token, stores.users.user("ann"), _EXPIRES)
    assert sessions.find_session(old) is None  # dropped when the next one was kept
    assert sessions.find_session(token_hash("never opened")) is None
    with pytest.raises(Conflict):
        sessions.add_session(current, token.id, _EXPIRES)  # one session per id
    with pytest.raises(Conflict):
        sessions.add_session(token_hash("orphan"), token.id + 1000, _EXPIRES)
    sessions.delete_session(current)
    assert sessions.find_session(current) is None
    sessions.delete_session(current)  # twice: no error
