"""Loops beyond the store contracts (`loopml.testing.contracts.loops` and `.leases`, run on every
backend in `test_loops_contract.py` and `test_leases_contract.py`): processes racing for a loop's
lease in the SQL database (one winner), the loop service holding a loop (renewing its lease
while it works), and what only a team server's client of loops' leases does (refuse other
leases, and the leases of loops that are not there)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from loopml.adapters.sql.engine import Database
from loopml.adapters.sql.leases import SqlLeases
from loopml.adapters.sql.loops import SqlLoopStore
from loopml.domain.loops import loop_lease, loop_of_lease
from loopml.domain.records import EventDraft
from loopml.errors import InvalidInput, NotFound
from loopml.settings import Settings
from loopml.testing.contracts.stores import loop_spec


def _event(action: str = "loop.test") -> EventDraft:
    return EventDraft(action, "loop:default/churn-loop", "tester")


LEASE = loop_lease("default", "churn-loop")


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
    SqlLoopStore(database).create(loop_spec(), _event())
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


def test_a_held_loop_stays_held_past_its_lease_while_the_holder_works(database: Database) -> None:
    """The service renews the lease while its block runs (a retraining longer than the lease
    must not let a second run in), and frees it when the block ends."""
    from loopml.errors import Conflict
    from loopml.services.loops import LoopService

    store, leases = SqlLoopStore(database), SqlLeases(database)
    store.create(loop_spec(), _event())
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
    """A client of a team server holds a loop through the loop's lease routes, on the server's
    own lease table (the lease contract checks its answers); no other kind of lease, and no
    lease of a loop that is not there, is taken over the wire."""
    from loopml.adapters.remote import RemoteClient
    from loopml.adapters.remote_operations import RemoteLoopLeases
    from loopml.testing.team_server import live_server

    url = f"sqlite:///{tmp_path / 'meta' / 'loopml.db'}"
    with live_server(make_settings(url)) as server:
        server.workspace.stores.loops.create(loop_spec(), _event())
        client = RemoteClient(server.url, server.token)
        try:
            leases = RemoteLoopLeases(client)
            assert leases.acquire(LEASE, "a", ttl_s=60)
            assert server.workspace.stores.leases.holder(LEASE)[0] == "a"  # the same lease
            assert not server.workspace.stores.leases.acquire(LEASE, "b", ttl_s=60)
            leases.release(LEASE, "a")
            assert server.workspace.stores.leases.holder(LEASE) == (None, None)
            with pytest.raises(NotFound):
                leases.acquire(loop_lease("default", "no-such-loop"), "a", ttl_s=60)
            with pytest.raises(InvalidInput, match="not a loop's lease"):
                leases.acquire("scheduler", "a", ttl_s=60)
        finally:
            client.close()
