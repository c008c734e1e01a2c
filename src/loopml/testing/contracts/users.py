"""The UserStore contract: a user per name, with their role everywhere (or none), listed by
name; disabling keeps them, with the time; each change audited."""

from __future__ import annotations

import pytest

from loopml.errors import AlreadyExists, NotFound
from loopml.testing.contracts.stores import ACTOR, MetadataStores, draft, events_since, last_seq

__all__ = [
    "test_a_user_reads_back_as_created_and_names_are_unique",
    "test_an_unknown_user_is_named_in_the_error",
    "test_disabling_a_user_keeps_them_with_the_time",
]


def test_a_user_reads_back_as_created_and_names_are_unique(stores: MetadataStores) -> None:
    users = stores.users
    start = last_seq(stores)
    ann = users.create_user("ann", "editor", draft("user.created", "user:ann"))
    bob = users.create_user("bob", None, draft("user.created", "user:bob"))
    assert (ann.name, ann.role, ann.disabled_at) == ("ann", "editor", None)
    assert (bob.name, bob.role) == ("bob", None)  # only what grants give
    assert ann.created_at.utcoffset() is not None
    assert users.user("ann") == ann
    with pytest.raises(AlreadyExists, match="'ann' already exists"):
        users.create_user("ann", "admin", draft("user.created", "user:ann"))
    assert users.user("ann").role == "editor"  # the first one stays
    names = [user.name for user in users.users()]
    assert names == sorted(names)
    assert {"ann", "bob"} <= set(names)  # a server lists its admin too
    assert [user for user in users.users() if user.name in ("ann", "bob")] == [ann, bob]
    made_ann, made_bob = events_since(stores, start)
    assert (made_ann.action, made_ann.entity, made_ann.actor) == ("user.created", "user:ann", ACTOR)
    assert (made_ann.before, made_ann.after) == (None, {"role": "editor"})
    assert made_bob.after == {"role": None}


def test_an_unknown_user_is_named_in_the_error(stores: MetadataStores) -> None:
    with pytest.raises(NotFound, match="'ghost' does not exist"):
        stores.users.user("ghost")
    with pytest.raises(NotFound, match="users create"):
        stores.users.disable_user("ghost", draft("user.disabled", "user:ghost"))
    assert "ghost" not in [user.name for user in stores.users.users()]


def test_disabling_a_user_keeps_them_with_the_time(stores: MetadataStores) -> None:
    made = stores.users.create_user("ann", "viewer", draft("user.created", "user:ann"))
    start = last_seq(stores)
    disabled = stores.users.disable_user("ann", draft("user.disabled", "user:ann"))
    assert disabled.disabled_at is not None
    assert disabled.disabled_at >= made.created_at
    assert (disabled.name, disabled.role, disabled.created_at) == ("ann", "viewer", made.created_at)
    assert stores.users.user("ann") == disabled
    assert "ann" in [user.name for user in stores.users.users()]  # kept, for the record
    (event,) = events_since(stores, start)
    assert (event.action, event.entity, event.actor) == ("user.disabled", "user:ann", ACTOR)
