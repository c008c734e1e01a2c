"""The LoopStore contract: a retrain policy per (project, name), read back as written, with the
state the loop remembers; its runs (retrainings), kept newest first and updated in place; every
change but the remembered state audited. Who runs a loop at a time is the lease suite's."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from loopml.domain.audit import verify_chain
from loopml.domain.loops import LoopRun, LoopState
from loopml.errors import AlreadyExists, InvalidInput, NotFound
from loopml.testing.contracts.stores import (
    MetadataStores,
    draft,
    events_since,
    last_seq,
    loop_spec,
    start_run,
)

__all__ = [
    "test_a_loop_is_found_in_its_own_project_only",
    "test_a_policy_reads_back_as_written_and_names_are_unique",
    "test_a_retraining_names_a_pipeline_run_of_its_own_project",
    "test_loop_runs_are_kept_newest_first_and_every_change_is_an_event",
    "test_loops_are_listed_by_name_per_project",
    "test_unknown_loop_runs_are_not_found",
]

LOOP = "loop:default/churn-loop"


def _started(
    day: int,
    trigger: str = "manual",
    *,
    champion: int | None = None,
    pipeline_run: str | None = None,
) -> LoopRun:
    """A retraining of `churn-loop` started on day `day`, not yet stored (id 0)."""
    began = datetime(2026, 11, day, tzinfo=UTC)
    return LoopRun(
        0,
        "default",
        "churn-loop",
        began,
        None,
        trigger,
        "running",
        champion=champion,
        pipeline_run=pipeline_run,
    )


def test_a_policy_reads_back_as_written_and_names_are_unique(stores: MetadataStores) -> None:
    loops = stores.loops
    start = last_seq(stores)
    made = loops.create(loop_spec(), draft("loop.created", LOOP))
    assert made.spec == loop_spec()
    assert made.created_at == made.updated_at
    assert made.state.last_retrain_us > 0  # a new loop counts its time from its creation
    assert loops.get("default", "churn-loop") == made
    with pytest.raises(AlreadyExists, match="loop delete churn-loop"):
        loops.create(loop_spec(), draft("loop.created", LOOP))
    loops.save_state("default", "churn-loop", LoopState(alerts_seen_us=5, last_retrain_us=7))
    assert loops.get("default", "churn-loop").state == LoopState(5, 7)
    assert loops.get("default", "churn-loop").spec == loop_spec()
    loops.delete("default", "churn-loop", draft("loop.deleted", LOOP))
    with pytest.raises(NotFound, match="loop create"):
        loops.get("default", "churn-loop")
    with pytest.raises(NotFound, match="'churn-loop'"):
        loops.delete("default", "churn-loop", draft("loop.deleted", LOOP))
    created, deleted = events_since(stores, start)  # remembering state is no event
    assert [(e.action, e.entity) for e in (created, deleted)] == [
        ("loop.created", LOOP),
        ("loop.deleted", LOOP),
    ]
    assert (created.before, created.after) == (None, loop_spec().to_dict())  # the whole policy
    assert (deleted.before, deleted.after) == (loop_spec().to_dict(), None)
    again = loops.create(loop_spec(), draft("loop.created", LOOP))  # a name deleted is free
    assert again.state.alerts_seen_us == 0


def test_a_loop_is_found_in_its_own_project_only(stores: MetadataStores) -> None:
    stores.loops.create(loop_spec(), draft("loop.created", LOOP))
    with pytest.raises(NotFound, match="in project 'fraud'"):
        stores.loops.get("fraud", "churn-loop")
    assert stores.loops.list("fraud") == []


def test_loops_are_listed_by_name_per_project(stores: MetadataStores) -> None:
    assert stores.loops.list("default") == []
    for name in ("zeta", "alpha", "mid"):
        stores.loops.create(loop_spec(name), draft("loop.created", f"loop:default/{name}"))
    stores.loops.create(loop_spec("beta", "fraud"), draft("loop.created", "loop:fraud/beta"))
    listed = stores.loops.list("default")
    assert [loop.spec.name for loop in listed] == ["alpha", "mid", "zeta"]
    assert listed[0] == stores.loops.get("default", "alpha")
    assert [loop.spec.name for loop in stores.loops.list("fraud")] == ["beta"]


def test_loop_runs_are_kept_newest_first_and_every_change_is_an_event(
    stores: MetadataStores,
) -> None:
    loops = stores.loops
    loops.create(loop_spec(), draft("loop.created", LOOP))
    start = last_seq(stores)
    first = loops.save_run(_started(1, champion=3), draft("loop.run_started", LOOP))
    assert first.id > 0
    assert first == dataclasses.replace(_started(1, champion=3), id=first.id)
    done = dataclasses.replace(
        first,
        status="promoted",
        finished_at=datetime(2026, 11, 1, 0, 5, tzinfo=UTC),
        reason="the challenger won",
        challenger=4,
        scores={"champion": {"f1": 0.7}, "challenger": {"f1": 0.8}},
        rules=(("f1 >= champion.f1", True, "0.8000 >= 0.7000"),),
        watch={"state": "watching", "until_us": 1},
        data_until_us=12,
    )
    assert loops.save_run(done, draft("loop.promoted", LOOP)) == done  # updated in place
    second = loops.save_run(_started(2, "alert:churn-drift"), draft("loop.run_started", LOOP))
    assert second.id not in (0, first.id)
    assert [r.id for r in loops.runs("default", "churn-loop", 10)] == [second.id, first.id]
    assert [r.id for r in loops.runs("default", "churn-loop", 1)] == [second.id]
    assert loops.runs("default", "another-loop", 10) == []
    assert loops.run("default", first.id) == done
    events = events_since(stores, start)
    assert [e.action for e in events] == ["loop.run_started", "loop.promoted", "loop.run_started"]
    assert events[1].after == {
        "run": first.id,
        "status": "promoted",
        "trigger": "manual",
        **done.details(),
    }
    assert verify_chain(list(stores.events.iterate())).ok


def test_unknown_loop_runs_are_not_found(stores: MetadataStores) -> None:
    stores.loops.create(loop_spec(), draft("loop.created", LOOP))
    stores.loops.create(loop_spec(project="fraud"), draft("loop.created", "loop:fraud/churn-loop"))
    made = stores.loops.save_run(_started(1), draft("loop.run_started", LOOP))
    with pytest.raises(NotFound, match=f"Loop run {made.id + 1} does not exist"):
        stores.loops.run("default", made.id + 1)
    with pytest.raises(NotFound, match="in project 'fraud'"):
        stores.loops.run("fraud", made.id)  # a run is found in its own project only
    ghost = dataclasses.replace(made, id=made.id + 1, status="held")
    with pytest.raises(NotFound, match=f"Loop run {made.id + 1}"):
        stores.loops.save_run(ghost, draft("loop.held", LOOP))
    elsewhere = dataclasses.replace(made, project="fraud", status="held")
    with pytest.raises(NotFound, match=f"Loop run {made.id} does not exist in project 'fraud'"):
        stores.loops.save_run(elsewhere, draft("loop.held", "loop:fraud/churn-loop"))
    assert stores.loops.run("default", made.id) == made


def test_a_retraining_names_a_pipeline_run_of_its_own_project(stores: MetadataStores) -> None:
    stores.loops.create(loop_spec(), draft("loop.created", LOOP))
    pipeline = start_run(stores, "pipeline")
    made = stores.loops.save_run(
        _started(1, pipeline_run=pipeline.id), draft("loop.run_started", LOOP)
    )
    assert stores.loops.run("default", made.id).pipeline_run == pipeline.id
    with pytest.raises(NotFound, match="does not exist"):
        stores.loops.save_run(_started(2, pipeline_run="0" * 32), draft("loop.x", LOOP))
    other = start_run(stores, "elsewhere", project="fraud")
    with pytest.raises(InvalidInput, match="references never cross projects"):
        stores.loops.save_run(_started(3, pipeline_run=other.id), draft("loop.x", LOOP))
    assert [r.id for r in stores.loops.runs("default", "churn-loop", 10)] == [made.id]
