"""The loop store on SQLite and PostgreSQL: policies, the lease that lets one retraining of a
loop run at a time (one holder among racing processes), and their runs."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from loopml.adapters.sql.engine import Database
from loopml.adapters.sql.events import SqlEventLog
from loopml.adapters.sql.leases import SqlLeases
from loopml.adapters.sql.loops import SqlLoopStore
from loopml.domain.audit import verify_chain
from loopml.domain.loops import LoopRun, LoopSpec, LoopState, loop_lease, loop_of_lease
from loopml.domain.records import EventDraft
from loopml.errors import AlreadyExists, InvalidInput, NotFound
from loopml.settings import Settings


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


LEASE = loop_lease("default", "churn-loop")


def test_a_lease_has_one_holder_until_released_or_expired(database: Database) -> None:
    leases = SqlLeases(database)
    assert leases.holder(LEASE) == (None, None)
    assert leases.acquire(LEASE, "a", ttl_s=60)
    assert not leases.acquire(LEASE, "b", ttl_s=60)
    assert leases.acquire(LEASE, "a", ttl_s=60)  # a retry by the holder
    assert leases.holder(LEASE)[0] == "a"
    assert not leases.renew(LEASE, "b", ttl_s=60)  # only the holder renews
    assert leases.renew(LEASE, "a", ttl_s=60)
    leases.release(LEASE, "b")  # not the holder: nothing happens
    assert not leases.acquire(LEASE, "b", ttl_s=60)
    leases.release(LEASE, "a")
    assert leases.holder(LEASE) == (None, None)
    assert not leases.renew(LEASE, "a", ttl_s=60)  # released: gone, not renewable
    assert leases.acquire(LEASE, "b", ttl_s=0.05)
    time.sleep(0.1)  # b died without releasing; its lease runs out
    assert leases.holder(LEASE) == (None, None)
    assert leases.acquire(LEASE, "c", ttl_s=60)
    assert leases.acquire(loop_lease("default", "another-loop"), "a", ttl_s=60)  # one per name


def test_a_loops_lease_name_says_which_loop() -> None:
    assert loop_of_lease(loop_lease("team-a", "churn")) == ("team-a", "churn")
    for other in ("scheduler", "loop:", "loop:team-a", "loop:/churn"):
        with pytest.raises(InvalidInput, match="not a loop's lease"):
            loop_of_lease(other)


def test_holding_a_loop_that_is_not_there_is_not_found(database: Database) -> None:
    from loopml.services.loops import LoopService

    service = LoopService(SqlLoopStore(database), SqlLeases(database), "tester")
    with pytest.raises(NotFound), service.hold("no-such-loop", "default"):
        pass


_RACER = """
import sys, time
from loopml.adapters.sql.engine import Database, create_store_engine
from loopml.adapters.sql.leases import SqlLeases
from loopml.domain.loops import loop_lease
url, start, me = sys.argv[1], float(sys.argv[2]), sys.argv[3]
leases = SqlLeases(Database(create_store_engine(url)))
leases.holder("warm-up")  # connect before the start line
time.sleep(max(0.0, start - time.time()))
print("won" if leases.acquire(loop_lease("default", "churn-loop"), me, ttl_s=60) else "lost")
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

    store, leases = SqlLoopStore(database), SqlLeases(database)
    store.create(_spec(), _event())
    service = LoopService(store, leases, "tester")
    with service.hold("churn-loop", "default", ttl_s=0.3):
        time.sleep(1.0)  # three lease lengths
        assert not leases.acquire(LEASE, "other", ttl_s=60)
        with (
            pytest.raises(Conflict, match="already running"),
            service.hold("churn-loop", "default"),
        ):
            pass
    assert leases.acquire(LEASE, "other", ttl_s=60)


def test_a_loops_lease_through_a_team_server_behaves_as_on_the_database(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    """A client of a team server holds a loop through the loop's lease routes, with the same
    answers as the lease table gives; no other kind of lease is taken over the wire."""
    from loopml.adapters.remote import RemoteClient
    from loopml.adapters.remote_operations import RemoteLoopLeases
    from loopml.testing.team_server import live_server

    url = f"sqlite:///{tmp_path / 'meta' / 'loopml.db'}"
    with live_server(make_settings(url)) as server:
        server.workspace.stores.loops.create(_spec(), _event())
        client = RemoteClient(server.url, server.token)
        try:
            leases = RemoteLoopLeases(client)
            assert leases.acquire(LEASE, "a", ttl_s=60)
            assert not leases.acquire(LEASE, "b", ttl_s=60)
            assert leases.holder(LEASE)[0] == "a"
            assert server.workspace.stores.leases.holder(LEASE)[0] == "a"  # the same lease
            assert leases.renew(LEASE, "a", ttl_s=60)
            assert not leases.renew(LEASE, "b", ttl_s=60)
            leases.release(LEASE, "a")
            assert leases.holder(LEASE) == (None, None)
            with pytest.raises(NotFound):
                leases.acquire(loop_lease("default", "no-such-loop"), "a", ttl_s=60)
            with pytest.raises(InvalidInput, match="not a loop's lease"):
                leases.acquire("scheduler", "a", ttl_s=60)
        finally:
            client.close()
