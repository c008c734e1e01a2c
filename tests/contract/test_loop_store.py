"""The loop store on SQLite and PostgreSQL: policies, their lease (one holder among racing
processes), and their runs."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

from loopml.adapters.sql.engine import Database
from loopml.adapters.sql.events import SqlEventLog
from loopml.adapters.sql.loops import SqlLoopStore
from loopml.domain.audit import verify_chain
from loopml.domain.loops import LoopRun, LoopSpec, LoopState
from loopml.domain.records import EventDraft
from loopml.errors import AlreadyExists, NotFound


def _spec(name: str = "churn-loop") -> LoopSpec:
    return LoopSpec(
        "default",
        name,
        "churn-prod",
        "/src/pipeline.py:churn",
        ("alert:churn-drift", "every:7d"),
        "reference + labelled predictions of the last 30d",
        ("f1 >= champion.f1 + 0.005",),
        ("latency_p99_ms <= 1.2 * champion.latency_p99_ms",),
        mode="approve",
        params={"lr": 0.05},
    )


def _event(action: str = "loop.test") -> EventDraft:
    return EventDraft(action, "loop:default/churn-loop", "tester")


def test_a_policy_reads_back_as_written_and_names_are_unique(database: Database) -> None:
    store = SqlLoopStore(database)
    made = store.create(_spec(), _event("loop.created"))
    assert made.spec == _spec()
    assert store.get("default", "churn-loop").spec.params == {"lr": 0.05}
    with pytest.raises(AlreadyExists, match="loop delete churn-loop"):
        store.create(_spec(), _event())
    store.save_state("default", "churn-loop", LoopState(alerts_seen_us=5, last_retrain_us=7))
    assert store.get("default", "churn-loop").state == LoopState(5, 7)
    assert [loop.spec.name for loop in store.list("default")] == ["churn-loop"]
    store.delete("default", "churn-loop", _event("loop.deleted"))
    with pytest.raises(NotFound, match="loop create"):
        store.get("default", "churn-loop")
    events = SqlEventLog(database).list(entity="loop:default/churn-loop", limit=10)
    assert [e.action for e in events][::-1] == ["loop.created", "loop.deleted"]
    assert events[-1].after == _spec().to_dict()  # the creation event holds the whole policy


def test_a_lease_has_one_holder_until_released_or_expired(database: Database) -> None:
    store = SqlLoopStore(database)
    store.create(_spec(), _event())
    assert store.acquire("default", "churn-loop", "a", ttl_s=60)
    assert not store.acquire("default", "churn-loop", "b", ttl_s=60)
    assert store.acquire("default", "churn-loop", "a", ttl_s=60)  # a retry by the holder
    assert store.lease("default", "churn-loop")[0] == "a"
    store.release("default", "churn-loop", "b")  # not the holder: nothing happens
    assert not store.acquire("default", "churn-loop", "b", ttl_s=60)
    store.release("default", "churn-loop", "a")
    assert store.acquire("default", "churn-loop", "b", ttl_s=0.05)
    time.sleep(0.1)  # b died without releasing; its lease runs out
    assert store.acquire("default", "churn-loop", "c", ttl_s=60)
    with pytest.raises(NotFound):
        store.acquire("default", "no-such-loop", "a", ttl_s=60)


_RACER = """
import sys, time
from loopml.adapters.sql.engine import Database, create_store_engine
from loopml.adapters.sql.loops import SqlLoopStore
url, start, me = sys.argv[1], float(sys.argv[2]), sys.argv[3]
store = SqlLoopStore(Database(create_store_engine(url)))
store.get("default", "churn-loop")  # connect before the start line
time.sleep(max(0.0, start - time.time()))
print("won" if store.acquire("default", "churn-loop", me, ttl_s=60) else "lost")
"""


def test_processes_racing_for_a_loop_leave_exactly_one_winner(
    database: Database, db_url: str
) -> None:
    SqlLoopStore(database).create(_spec(), _event())
    start = time.time() + 3.0
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, db_url, str(start), f"racer-{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(5)
    ]
    results = [racer.communicate(timeout=60) for racer in racers]
    assert [racer.returncode for racer in racers] == [0] * 5, [err for _, err in results]
    assert sorted(out.strip() for out, _ in results) == ["lost"] * 4 + ["won"]


def test_runs_are_kept_newest_first_and_every_change_is_an_event(database: Database) -> None:
    store = SqlLoopStore(database)
    store.create(_spec(), _event())
    began = datetime(2026, 11, 1, tzinfo=UTC)
    first = store.save_run(
        LoopRun(0, "default", "churn-loop", began, None, "manual", "running", champion=3),
        _event("loop.run_started"),
    )
    done = dataclasses.replace(
        first,
        status="promoted",
        finished_at=datetime(2026, 11, 1, 0, 5, tzinfo=UTC),
        challenger=4,
        scores={"champion": {"f1": 0.7}, "challenger": {"f1": 0.8}},
        rules=(("f1 >= champion.f1", True, "0.8000 >= 0.7000"),),
        watch={"state": "watching", "until_us": 1},
    )
    store.save_run(done, _event("loop.promoted"))
    second = store.save_run(
        LoopRun(0, "default", "churn-loop", datetime(2026, 11, 2, tzinfo=UTC), None, "x", "held"),
        _event(),
    )
    assert [r.id for r in store.runs("default", "churn-loop", 10)] == [second.id, first.id]
    assert store.run("default", first.id) == done
    chain = SqlEventLog(database).list(limit=100)
    assert verify_chain(chain[::-1]).ok


def test_a_held_loop_stays_held_past_its_lease_while_the_holder_works(database: Database) -> None:
    """The service renews the lease while its block runs (a retraining longer than the lease
    must not let a second run in), and frees it when the block ends."""
    from loopml.errors import Conflict
    from loopml.services.loops import LoopService

    store = SqlLoopStore(database)
    store.create(_spec(), _event())
    service = LoopService(store, "tester")
    with service.hold("churn-loop", "default", ttl_s=0.3):
        time.sleep(1.0)  # three lease lengths
        assert not store.acquire("default", "churn-loop", "other", ttl_s=60)
        with (
            pytest.raises(Conflict, match="already running"),
            service.hold("churn-loop", "default"),
        ):
            pass
    assert store.acquire("default", "churn-loop", "other", ttl_s=60)
