"""The server's scheduler: every monitor (health probes included) and every retrain loop of
every project, on their schedules, in a thread of the server. Replicas of the server on one
database share the work through a lease: one of them runs the jobs at a time, and another
takes over within a lease's length when it stops."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from typing import TYPE_CHECKING

from loopml.adapters.sql.leases import SqlLeases

if TYPE_CHECKING:
    from loopml.bootstrap import Workspace

LEASE = "scheduler"
log = logging.getLogger("loopml.server")


class Scheduler:
    def __init__(self, ws: Workspace, *, tick_s: float = 5.0) -> None:
        self._ws = ws
        self._tick_s = tick_s
        self._leases = SqlLeases(ws.db)
        self.owner = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="loopml-scheduler", daemon=True)
        self.ticks_run = 0
        """Ticks in which this replica held the lease and ran the due jobs."""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        self._leases.release(LEASE, self.owner)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self._leases.acquire(LEASE, self.owner, ttl_s=max(3 * self._tick_s, 2.0)):
                    self.run_due()
                    self.ticks_run += 1
            except Exception:  # a failing tick must not end the scheduler
                log.exception("the scheduler's tick failed")
            self._stop.wait(self._tick_s)

    def run_due(self) -> None:
        """One tick: the due monitors, then the loops, of every project."""
        from loopml import loops
        from loopml.monitoring import monitors

        for project in self._ws.auth.projects():
            for name, outcome in monitors.run_due(project=project, workspace=self._ws):
                if isinstance(outcome, Exception):
                    log.info('{"scheduler": "monitor", "name": "%s", "skipped": true}', name)
            for done in loops.run_due(workspace=self._ws, project=project):
                if done.run is not None:
                    log.info(
                        '{"scheduler": "loop", "name": "%s", "run": %d}', done.loop, done.run.id
                    )
