"""The audit hash chain: any edit, insertion or deletion is found, and where."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.domain.audit import GENESIS_HASH, event_hash, verify_chain
from loopml.domain.records import Event


def _chain(actions: list[str]) -> list[Event]:
    events, prev = [], GENESIS_HASH
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for seq, action in enumerate(actions, start=1):
        when = start + timedelta(microseconds=seq * 1_000_001)
        after = {"n": seq}
        digest = event_hash(
            prev,
            seq=seq,
            time=when,
            action=action,
            entity="model:p/m",
            actor="alice",
            before=None,
            after=after,
        )
        events.append(Event(seq, when, action, "model:p/m", "alice", None, after, prev, digest))
        prev = digest
    return events


_actions = st.lists(st.sampled_from(["a", "b", "c"]), min_size=2, max_size=12)


@settings(max_examples=100, deadline=None)
@given(_actions, st.data())
def test_editing_any_event_is_found_at_that_event(actions: list[str], data: st.DataObject) -> None:
    events = _chain(actions)
    assert verify_chain(events).ok
    index = data.draw(st.integers(0, len(events) - 1))
    events[index] = dataclasses.replace(events[index], actor="mallory")
    verdict = verify_chain(events)
    assert (verdict.ok, verdict.first_bad_seq) == (False, index + 1)


@settings(max_examples=100, deadline=None)
@given(_actions, st.data())
def test_deleting_any_event_but_the_last_is_found(actions: list[str], data: st.DataObject) -> None:
    events = _chain(actions)
    index = data.draw(st.integers(0, len(events) - 2))
    del events[index]
    assert not verify_chain(events).ok
