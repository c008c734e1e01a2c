"""The EventLog contract: every mutation of every store appends one event to one hash chain
that verifies, listed newest first by entity (and what is under it) and by action."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

import pytest

from loopml.domain.audit import GENESIS_HASH, verify_chain
from loopml.domain.records import Deployment, EventDraft, RunStatus
from loopml.errors import InvalidInput
from loopml.testing.contracts.stores import (
    ACTOR,
    MetadataStores,
    add_dataset,
    draft,
    events_since,
    last_seq,
    register_model,
    start_run,
)

__all__ = [
    "test_append_chains_the_event_or_is_refused_by_a_client",
    "test_events_are_listed_newest_first_by_entity_and_action",
    "test_every_mutation_appends_a_chained_event",
    "test_iterate_gives_the_whole_chain_in_order",
]

_NOW = datetime(2026, 11, 28, tzinfo=UTC)


def _deploy(stores: MetadataStores, project: str, name: str) -> None:
    deployment = Deployment(project, name, "churn@champion", None, None, 0.0, _NOW, _NOW)
    stores.deployments.save(deployment, draft("deployment.saved", f"deployment:{project}/{name}"))


def test_every_mutation_appends_a_chained_event(stores: MetadataStores) -> None:
    start = last_seq(stores)  # a server has already recorded its admin
    add_dataset(stores, "churn", b"a")
    run_id = start_run(stores).id
    stores.runs.end_run(
        run_id, RunStatus.FINISHED, None, datetime.now(UTC), draft("run.finished", "run:default")
    )
    register_model(stores)
    stores.models.set_alias(
        "default", "churn", "champion", 1, draft("model.alias_set", "model:default/churn")
    )
    events = list(stores.events.iterate())
    assert [e.seq for e in events[start:]] == [start + n for n in range(1, 6)]
    assert [e.action for e in events[start:]] == [
        "dataset.added",
        "run.created",
        "run.finished",
        "model.registered",
        "model.alias_set",
    ]
    assert {e.actor for e in events[start:]} == {ACTOR}
    assert events[-1].before == {"alias": "champion", "version": None}
    assert events[-1].after == {"alias": "champion", "version": 1}
    assert verify_chain(events).ok
    listed = stores.events.list(entity="model:default/churn")
    assert [e.seq for e in listed] == [start + 5, start + 4]


def test_events_are_listed_newest_first_by_entity_and_action(stores: MetadataStores) -> None:
    """An entity matches itself and what is under it, letter for letter: `_` is no wildcard,
    case counts, and `web` is not `web-2`."""
    start = last_seq(stores)
    for project, name in [
        ("proj_", "web"),
        ("projX", "web"),
        ("projB", "web"),
        ("projb", "web"),
        ("proj_", "web-2"),
    ]:
        _deploy(stores, project, name)
    stores.deployments.delete("proj_", "web", draft("deployment.deleted", "deployment:proj_/web"))
    seqs = [e.seq - start for e in stores.events.list(entity="deployment:proj_")]
    assert seqs == [6, 5, 1]
    web = stores.events.list(entity="deployment:proj_/web")
    assert [(e.seq - start, e.action) for e in web] == [
        (6, "deployment.deleted"),
        (1, "deployment.saved"),
    ]
    assert [e.seq - start for e in stores.events.list(entity="deployment:projb")] == [4]
    deleted = stores.events.list(action="deployment.deleted")
    assert [e.seq - start for e in deleted] == [6]
    assert stores.events.list(entity="deployment:projX", action="deployment.deleted") == []
    newest = stores.events.list(limit=2)
    assert [e.seq - start for e in newest] == [6, 5]
    assert stores.events.list(entity="deployment:nobody") == []


def test_iterate_gives_the_whole_chain_in_order(stores: MetadataStores) -> None:
    for name in ("a", "b", "c"):
        _deploy(stores, "default", name)
    events = list(stores.events.iterate())
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].prev_hash == GENESIS_HASH
    assert all(later.prev_hash == earlier.hash for earlier, later in pairwise(events))
    assert all(earlier.time <= later.time for earlier, later in pairwise(events))
    assert verify_chain(events).ok
    assert stores.events.list(limit=len(events)) == events[::-1]


def test_append_chains_the_event_or_is_refused_by_a_client(stores: MetadataStores) -> None:
    entry = EventDraft(
        "policy.noted", "policy:default/x", ACTOR, {"n": 1}, {"n": 2, "tags": ["a", "b"]}
    )
    if not stores.appends_events:
        with pytest.raises(InvalidInput):
            stores.events.append(entry)
        return
    _deploy(stores, "default", "web")
    previous = stores.events.list(limit=1)[0]
    appended = stores.events.append(entry)
    assert (appended.seq, appended.prev_hash) == (previous.seq + 1, previous.hash)
    assert (appended.action, appended.entity, appended.actor) == (
        "policy.noted",
        "policy:default/x",
        ACTOR,
    )
    assert (appended.before, appended.after) == ({"n": 1}, {"n": 2, "tags": ["a", "b"]})
    assert events_since(stores, previous.seq) == [appended]
    assert verify_chain(stores.events.iterate()).ok
