"""The contract of a run store's optional capabilities: `RunHeartbeats` (a run's process stamps
it alive) and `SilentRunReaper` (the runs whose process stopped are ended as killed). A backend
without one skips its tests. Time passes by the stores' clock where they take one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loopml.domain.records import RunStatus
from loopml.ports import RunHeartbeats, SilentRunReaper
from loopml.testing.contracts.stores import (
    MetadataStores,
    draft,
    events_since,
    last_seq,
    pass_time,
    start_run,
)

__all__ = [
    "test_a_heartbeat_keeps_a_run_alive_and_silent_runs_are_killed",
    "test_a_heartbeat_of_an_ended_run_changes_nothing",
]


def test_a_heartbeat_of_an_ended_run_changes_nothing(stores: MetadataStores) -> None:
    if not isinstance(stores.runs, RunHeartbeats):
        pytest.skip("this run store keeps no heartbeats")
    running = start_run(stores, "running")
    ended = start_run(stores, "ended")
    stores.runs.end_run(
        ended.id, RunStatus.FINISHED, None, datetime.now(UTC), draft("run.ended", "run:default")
    )
    before = stores.runs.get_run(ended.id)
    stores.runs.heartbeat([running.id, ended.id])
    stores.runs.heartbeat([])
    assert stores.runs.get_run(running.id).status is RunStatus.RUNNING
    assert stores.runs.get_run(ended.id) == before


def test_a_heartbeat_keeps_a_run_alive_and_silent_runs_are_killed(stores: MetadataStores) -> None:
    runs = stores.runs
    if not isinstance(runs, RunHeartbeats) or not isinstance(runs, SilentRunReaper):
        pytest.skip("this run store does not end silent runs")
    beating = start_run(stores, "beating")
    silent = start_run(stores, "silent")
    done = start_run(stores, "done", finished=True)
    pass_time(stores, 1.2)  # by the stores' clock: no waiting where they take one
    runs.heartbeat([beating.id])
    start = last_seq(stores)
    ended = runs.end_silent_runs(1.0, draft("run.killed", "run:default", {"by": "reaper"}))
    assert ended == [silent.id]
    killed = runs.get_run(silent.id)
    assert killed.status is RunStatus.KILLED
    assert killed.end_time == killed.start_time  # its last sign of life: its start
    assert killed.error is not None
    assert "No heartbeat since" in killed.error
    assert runs.get_run(beating.id).status is RunStatus.RUNNING
    assert runs.get_run(done.id).status is RunStatus.FINISHED
    (event,) = events_since(stores, start)
    assert (event.action, event.entity) == ("run.killed", f"run:default/{silent.id}")
    assert event.before == {"status": "running"}
    assert event.after == {"status": "killed", "error": killed.error, "by": "reaper"}
    assert runs.end_silent_runs(1.0, draft("run.killed", "run:default")) == []
