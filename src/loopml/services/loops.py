"""Retrain policies ("loops") and their runs: saved, leased and recorded with audited events.
The retraining itself (data, pipeline, gate, promotion, watch) runs above this layer, in
`loopml.loops`."""

from __future__ import annotations

import dataclasses
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from loopml.domain.loops import Loop, LoopRun, LoopSpec, LoopState, check_spec, loop_lease
from loopml.domain.records import EventDraft
from loopml.errors import Conflict
from loopml.ports import Leases, LoopStore

MAX_HISTORY = 10_000
LEASE_S = 600.0
"""How long after its holder last renewed it (every third of this) a loop is free again."""


class LoopService:
    def __init__(
        self,
        store: LoopStore,
        leases: Leases,
        actor: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._leases = leases
        self._actor = actor
        self._clock = clock

    def create(self, spec: LoopSpec) -> Loop:
        check_spec(spec)
        return self._store.create(spec, self._event("loop.created", spec.project, spec.name))

    def get(self, name: str, project: str) -> Loop:
        return self._store.get(project, name)

    def delete(self, name: str, project: str) -> None:
        self._store.delete(project, name, self._event("loop.deleted", project, name))

    @contextmanager
    def hold(self, name: str, project: str, ttl_s: float = LEASE_S) -> Iterator[str]:
        """Hold loop `name` for the block: a second holder gets Conflict instead of running the
        same retraining twice. The lease is renewed while the block runs, however long; a holder
        that dies frees the loop after `ttl_s`."""
        owner = f"{self._actor}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        lease = loop_lease(project, name)
        self._store.get(project, name)  # NotFound for a loop that is not there
        if not self._leases.acquire(lease, owner, ttl_s):
            holder, until_us = self._leases.holder(lease)
            until = "" if until_us is None else datetime.fromtimestamp(until_us / 1e6, UTC)
            raise Conflict(
                f"Loop {name!r} is already running (held by {holder}"
                f"{f' until {until:%Y-%m-%d %H:%M:%S} UTC' if until else ''}).",
                "Wait for that run to finish; `loopml loop history` shows it.",
            )
        stop = threading.Event()

        def keep() -> None:  # a retraining longer than the lease keeps it
            while not stop.wait(ttl_s / 3):
                self._leases.renew(lease, owner, ttl_s)

        keeper = threading.Thread(target=keep, name=f"loop-lease-{name}", daemon=True)
        keeper.start()
        try:
            yield owner
        finally:
            stop.set()
            keeper.join()
            self._leases.release(lease, owner)

    def remember(self, loop: Loop, state: LoopState) -> Loop:
        self._store.save_state(loop.spec.project, loop.spec.name, state)
        return dataclasses.replace(loop, state=state)

    def start_run(self, loop: Loop, trigger: str, champion: int | None) -> LoopRun:
        spec = loop.spec
        run = LoopRun(
            0, spec.project, spec.name, self._clock(), None, trigger, "running", champion=champion
        )
        return self._store.save_run(run, self._event("loop.run_started", spec.project, spec.name))

    def finish_run(self, run: LoopRun, status: str, reason: str, **changes: Any) -> LoopRun:
        done = dataclasses.replace(
            run, status=status, reason=reason, finished_at=self._clock(), **changes
        )
        return self._store.save_run(done, self._event(f"loop.{status}", run.project, run.loop))

    def update_run(self, run: LoopRun, action: str) -> LoopRun:
        return self._store.save_run(run, self._event(action, run.project, run.loop))

    def run(self, run_id: int, project: str) -> LoopRun:
        return self._store.run(project, run_id)

    def history(self, name: str, project: str, limit: int = 50) -> list[LoopRun]:
        """The newest runs of loop `name`, newest first (the loop must exist)."""
        self._store.get(project, name)
        return self._store.runs(project, name, max(1, min(limit, MAX_HISTORY)))

    def _event(self, action: str, project: str, name: str) -> EventDraft:
        return EventDraft(action, f"loop:{project}/{name}", self._actor)

    def list(self, project: str) -> list[Loop]:
        return self._store.list(project)
