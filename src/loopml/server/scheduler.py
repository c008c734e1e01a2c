"""The server's scheduler: every monitor (health probes included) and every retrain loop of
every project, on their schedules, in a thread of the server; one that fails is recorded and
the others run. Replicas of the server on one database share the work through a lease: one of
them runs the jobs at a time, and another takes over within a lease's length when it stops."""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from loopml.bootstrap import Workspace

LEASE = "scheduler"
LOG_UPKEEP_EVERY_S = 600.0
"""How often the schedule compacts (and, with LOOPML_LOG_RETAIN, expires) the prediction log."""
T = TypeVar("T")
log = logging.getLogger("loopml.server")


class Scheduler:
    def __init__(self, ws: Workspace, *, tick_s: float = 5.0) -> None:
        self._ws = ws
        self._tick_s = tick_s
        self._leases = ws.stores.leases
        self.owner = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="loopml-scheduler", daemon=True)
        self.ticks_run = 0
        """Ticks in which this replica held the lease and ran the due jobs."""
        self.failures = 0
        """Monitors, loops and whole steps of a tick that failed (each is logged)."""
        self._log_upkept_at: float | None = None

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
        """One tick: the due monitors, then the loops, of every project. Failures are isolated:
        a monitor or loop that fails is recorded by `run_due` (a notice alert on it) and the
        others run; a step that fails as a whole (a project's monitors cannot be listed) is
        logged and counted in `failures`, and the next step, and project, still run."""
        self._guarded("housekeeping", "*", self._housekeeping)
        for project in self._guarded("projects", "*", self._ws.auth.projects) or []:
            self._guarded("monitors", project, self._monitors, project)
            self._guarded("loops", project, self._loops, project)

    def _housekeeping(self) -> None:
        self._ws.tracking.end_silent_runs(every_s=60.0)  # runs whose process died
        self._guarded("prediction log", "*", self._log_upkeep)

    def _log_upkeep(self) -> None:
        """Compact the prediction log's closed hours (and expire old ones) every ten minutes."""
        import time

        from loopml.bootstrap import log_upkeep

        now = time.monotonic()
        if self._log_upkept_at is not None and now - self._log_upkept_at < LOG_UPKEEP_EVERY_S:
            return
        self._log_upkept_at = now
        outcome = log_upkeep(self._ws).run(retain_s=self._ws.settings.log_retain_s)
        for deployment in outcome.compacted.changes:
            totals = outcome.compacted.totals(deployment)
            log.info('{"scheduler": "log compaction", "deployment": %s, "totals": %s}',
                     json.dumps(deployment), json.dumps(totals))  # fmt: skip

    def _guarded(self, step: str, project: str, work: Callable[..., T], *args: str) -> T | None:
        try:
            return work(*args)
        except Exception:  # one failing step must not stop the others
            self.failures += 1
            log.exception('{"scheduler": "%s", "project": "%s", "failed": true}', step, project)
            return None

    def _monitors(self, project: str) -> None:
        from loopml.monitoring import monitors

        for name, outcome in monitors.run_due(project=project, workspace=self._ws):
            if isinstance(outcome, monitors.NothingToMonitor):
                log.info('{"scheduler": "monitor", "name": "%s", "skipped": true}', name)
            elif isinstance(outcome, Exception):  # logged, and recorded, by `run_due`
                self.failures += 1

    def _loops(self, project: str) -> None:
        from loopml import loops

        for done in loops.run_due(workspace=self._ws, project=project):
            if done.run is not None:
                log.info('{"scheduler": "loop", "name": "%s", "run": %d}', done.loop, done.run.id)
            elif any(note.startswith("failed:") for note in done.notes):
                self.failures += 1  # logged, and recorded, by `run_due`
