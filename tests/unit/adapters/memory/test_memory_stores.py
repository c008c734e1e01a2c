"""The in-memory stores beyond their contracts (which `tests/contract` runs on them): one lock
keeps concurrent writers consistent, what goes in and comes out is a copy, and time is the
database's clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from loopml.adapters.memory.database import MemoryDatabase
from loopml.adapters.memory.datasets import MemoryDatasetStore
from loopml.adapters.memory.events import MemoryEventLog
from loopml.adapters.memory.runs import MemoryRunStore
from loopml.domain.audit import verify_chain
from loopml.domain.records import EventDraft, MetricPoint, RunStatus
from loopml.ports import NewDatasetVersion, NewRun, RunHeartbeats, SilentRunReaper
from loopml.testing.contracts.stores import manifest


def _event(entity: str = "run:default") -> EventDraft:
    return EventDraft("test", entity, "tester")


def test_concurrent_writers_leave_one_consistent_chain() -> None:
    db = MemoryDatabase()
    runs, datasets = MemoryRunStore(db), MemoryDatasetStore(db)
    start = threading.Barrier(8)

    def write(worker: int) -> None:
        start.wait()
        for i in range(25):
            run = runs.create_run(NewRun("default", f"w{worker}-{i}", {}, {}), _event())
            runs.log_batch(run.id, metrics=[MetricPoint("m", float(i), i, i)])
            new = NewDatasetVersion(
                "default", "d", manifest(b"%d-%d" % (worker, i)), "", None, None
            )
            datasets.add_version(new, _event("dataset:default/d"))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events = list(MemoryEventLog(db).iterate())
    assert [e.seq for e in events] == list(range(1, 401))
    assert verify_chain(events).ok
    versions = datasets.list_versions("default", "d")
    assert [v.version for v in versions] == list(range(1, 201))  # no number given twice


def test_records_go_in_and_come_out_as_copies() -> None:
    db = MemoryDatabase()
    runs, datasets = MemoryRunStore(db), MemoryDatasetStore(db)
    environment = {"packages": ["numpy"]}
    run = runs.create_run(NewRun("default", "r", environment, {}), _event())
    environment["packages"].append("pandas")
    run.environment["packages"].append("torch")
    assert runs.get_run(run.id).environment == {"packages": ["numpy"]}
    schema = {"columns": ["a"]}
    new = NewDatasetVersion("default", "d", manifest(b"x"), "", schema, {"rows": 1})
    version, _ = datasets.add_version(new, _event("dataset:default/d"))
    schema["columns"].append("b")
    assert version.schema is not None
    version.schema["columns"].append("c")
    profile = datasets.get_profile("default", "d", 1)
    assert profile is not None
    profile["rows"] = 99
    assert datasets.get_version("default", "d", 1).schema == {"columns": ["a"]}
    assert datasets.get_profile("default", "d", 1) == {"rows": 1}


def test_times_come_from_the_databases_clock() -> None:
    """A run silent for longer than the timeout by the clock is killed, with no waiting."""
    now_us = [1_000_000]
    db = MemoryDatabase(clock=lambda: now_us[0])
    runs = MemoryRunStore(db)
    assert isinstance(runs, RunHeartbeats)
    assert isinstance(runs, SilentRunReaper)
    beating = runs.create_run(NewRun("default", "beating", {}, {}), _event())
    silent = runs.create_run(NewRun("default", "silent", {}, {}), _event())
    assert silent.start_time == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)
    now_us[0] += 60_000_000
    runs.heartbeat([beating.id])
    now_us[0] += 1_000_000
    assert runs.end_silent_runs(30.0, _event()) == [silent.id]
    assert runs.get_run(silent.id).status is RunStatus.KILLED
    assert runs.get_run(beating.id).status is RunStatus.RUNNING
    assert MemoryEventLog(db).list(limit=1)[0].time == datetime(1970, 1, 1, 0, 1, 2, tzinfo=UTC)
