"""The `MonitorStore` port in memory."""

from __future__ import annotations

import dataclasses

from loopml.adapters.memory.database import MemoryDatabase, datetime_to_us, us_to_datetime
from loopml.domain.records import EventDraft, Monitor, MonitorRun
from loopml.errors import NotFound

_SETTINGS = ("deployment", "reference", "summary_digest", "window_s", "every_s", "probe_url")


def _missing_monitor(project: str, name: str) -> NotFound:
    return NotFound(
        f"Monitor {name!r} does not exist in project {project!r}.",
        "List monitors with `loopml monitor list`, or make one with `loopml monitor create`.",
    )


class MemoryMonitorStore:
    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    def save(self, monitor: Monitor, event: EventDraft) -> tuple[Monitor, bool]:
        """Create or replace; created keeps its first time, updated is now."""
        key = (monitor.project, monitor.name)
        values = {name: getattr(monitor, name) for name in _SETTINGS}
        with self._db.lock:
            now = self._db.clock()
            self._db.ensure_project(monitor.project, now)
            before = self._db.tables.monitors.get(key)
            created_us = now if before is None else datetime_to_us(before.created_at)
            saved = dataclasses.replace(
                monitor, created_at=us_to_datetime(created_us), updated_at=us_to_datetime(now)
            )
            self._db.tables.monitors[key] = saved
            old = None if before is None else {name: getattr(before, name) for name in _SETTINGS}
            draft = EventDraft(event.action, event.entity, event.actor, old, values)
            self._db.append_event(draft, now)
        return saved, before is None

    def get(self, project: str, name: str) -> Monitor:
        with self._db.lock:
            found = self._db.tables.monitors.get((project, name))
        if found is None:
            raise _missing_monitor(project, name)
        return found

    def delete(self, project: str, name: str, event: EventDraft) -> None:
        """Delete the monitor; its runs stay, as the history of what it found."""
        with self._db.lock:
            found = self.get(project, name)
            del self._db.tables.monitors[project, name]
            before = {key: getattr(found, key) for key in _SETTINGS}
            draft = EventDraft(event.action, event.entity, event.actor, before, None)
            self._db.append_event(draft, self._db.clock())

    def add_run(self, run: MonitorRun, event: EventDraft) -> MonitorRun:
        """Record a finished run (its `id` and `time` are assigned here) with its event."""
        with self._db.lock:
            now = self._db.clock()
            saved = dataclasses.replace(
                run,
                id=self._db.next_id("monitor_runs"),
                time=us_to_datetime(now),
                drift_share=float(run.drift_share),
                drifted=tuple(run.drifted),
                weighted_drift=None if run.weighted_drift is None else float(run.weighted_drift),
            )
            self._db.tables.monitor_runs[saved.id] = saved
            after = {
                "run": saved.id,
                "rows": run.rows,
                "drift_share": run.drift_share,
                "weighted_drift": run.weighted_drift,
                "drifted": list(run.drifted),
                "report": run.report_digest,
            }
            draft = EventDraft(event.action, event.entity, event.actor, None, after)
            self._db.append_event(draft, now)
        return saved

    def get_run(self, project: str, run_id: int) -> MonitorRun:
        with self._db.lock:
            found = self._db.tables.monitor_runs.get(run_id)
        if found is None or found.project != project:
            raise NotFound(
                f"Monitor run {run_id} does not exist in project {project!r}.",
                "List runs with `loopml monitor history MONITOR`.",
            )
        return found

    def runs(self, project: str, monitor: str, limit: int) -> list[MonitorRun]:
        """The newest `limit` runs of `monitor`, newest first."""
        with self._db.lock:
            found = [
                run
                for run in self._db.tables.monitor_runs.values()
                if (run.project, run.monitor) == (project, monitor)
            ]
        found.sort(key=lambda run: (run.time, run.id), reverse=True)
        return found[:limit]

    def list(self, project: str) -> list[Monitor]:
        with self._db.lock:
            found = [m for m in self._db.tables.monitors.values() if m.project == project]
        return sorted(found, key=lambda m: m.name)
