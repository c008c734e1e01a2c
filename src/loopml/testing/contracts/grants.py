"""The GrantStore contract: projects (made once), and the role a user has on each: granted,
changed, taken away, each audited with the role before and after; listed by project, then user."""

from __future__ import annotations

import pytest

from loopml.domain.auth import Grant
from loopml.errors import NotFound
from loopml.testing.contracts.stores import MetadataStores, draft, events_since, last_seq

__all__ = [
    "test_a_grant_is_given_changed_and_taken_away_with_its_events",
    "test_a_grant_names_a_user_that_exists",
    "test_a_project_is_made_once",
    "test_grants_are_listed_by_project_then_user",
]


def _users(stores: MetadataStores, *names: str) -> None:
    for name in names:
        stores.users.create_user(name, None, draft("user.created", f"user:{name}"))


def _grant(stores: MetadataStores, project: str, user: str, role: str | None) -> None:
    stores.grants.grant(project, user, role, draft("project.granted", f"project:{project}"))


def test_a_grant_is_given_changed_and_taken_away_with_its_events(stores: MetadataStores) -> None:
    _users(stores, "ann")
    start = last_seq(stores)
    _grant(stores, "alpha", "ann", "editor")
    assert stores.grants.grants(project="alpha") == [Grant("alpha", "ann", "editor")]
    assert "alpha" in stores.grants.projects()  # granting on a project makes it
    _grant(stores, "alpha", "ann", "admin")
    assert stores.grants.grants(project="alpha") == [Grant("alpha", "ann", "admin")]
    _grant(stores, "alpha", "ann", None)
    assert stores.grants.grants(project="alpha") == []
    assert "alpha" in stores.grants.projects()  # the project stays
    events = events_since(stores, start)
    assert [(e.action, e.entity) for e in events] == [("project.granted", "project:alpha")] * 3
    assert [(e.before, e.after) for e in events] == [
        ({"role": None}, {"role": "editor"}),
        ({"role": "editor"}, {"role": "admin"}),
        ({"role": "admin"}, {"role": None}),
    ]


def test_grants_are_listed_by_project_then_user(stores: MetadataStores) -> None:
    _users(stores, "bob", "ann")
    for project, user, role in [
        ("beta", "bob", "viewer"),
        ("alpha", "bob", "admin"),
        ("beta", "ann", "editor"),
    ]:
        _grant(stores, project, user, role)
    mine = [g for g in stores.grants.grants() if g.user in ("ann", "bob")]
    assert mine == [
        Grant("alpha", "bob", "admin"),
        Grant("beta", "ann", "editor"),
        Grant("beta", "bob", "viewer"),
    ]
    assert stores.grants.grants(project="beta") == mine[1:]
    assert stores.grants.grants(user="bob") == [mine[0], mine[2]]
    assert stores.grants.grants(project="alpha", user="ann") == []
    assert stores.grants.grants(project="gamma") == []


def test_a_grant_names_a_user_that_exists(stores: MetadataStores) -> None:
    start = last_seq(stores)
    with pytest.raises(NotFound, match="'ghost' does not exist"):
        _grant(stores, "alpha", "ghost", "viewer")
    assert stores.grants.grants(project="alpha") == []
    assert events_since(stores, start) == []


def test_a_project_is_made_once(stores: MetadataStores) -> None:
    start = last_seq(stores)
    event = draft("project.created", "project:beta")
    assert stores.grants.create_project("beta", event) is True
    assert stores.grants.create_project("beta", event) is False
    stores.grants.create_project("alpha", draft("project.created", "project:alpha"))
    projects = stores.grants.projects()
    assert projects == sorted(projects)
    assert {"alpha", "beta"} <= set(projects)
    events = events_since(stores, start)  # made once, recorded once
    assert [(e.action, e.entity) for e in events] == [
        ("project.created", "project:beta"),
        ("project.created", "project:alpha"),
    ]
