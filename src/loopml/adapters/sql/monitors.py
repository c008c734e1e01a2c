"""The `MonitorStore` port on SQL."""

from __future__ import annotations

import json

from sqlalchemy import select

from loopml.adapters.sql import tables as t
from loopml.adapters.sql.blob_refs import add_blob_refs
from loopml.adapters.sql.engine import Database
from loopml.adapters.sql.events import Clock, append_event, ensure_project, system_clock_us
from loopml.adapters.sql.rows import (
    missing_monitor,
    missing_monitor_run,
    to_monitor,
    to_monitor_run,
)
from loopml.domain.records import EventDraft, Monitor, MonitorRun

_SETTINGS = ("deployment", "reference", "summary_digest", "window_s", "every_s", "probe_url")


class SqlMonitorStore:
    def __init__(self, db: Database, clock: Clock = system_clock_us) -> None:
        self._db = db
        self._clock = clock

    def save(self, monitor: Monitor, event: EventDraft) -> tuple[Monitor, bool]:
        table = t.monitors
        values = {key: getattr(monitor, key) for key in _SETTINGS}
        with self._db.write() as conn:
            now = self._clock()
            ensure_project(conn, monitor.project, now)
            where = (table.c.project == monitor.project) & (table.c.name == monitor.name)
            before = conn.execute(select(table).where(where)).first()
            if before is None:
                conn.execute(
                    table.insert().values(
                        project=monitor.project,
                        name=monitor.name,
                        created_us=now,
                        updated_us=now,
                        **values,
                    )
                )
            else:
                conn.execute(table.update().where(where).values(updated_us=now, **values))
            if monitor.summary_digest is not None:
                add_blob_refs(conn, monitor.project, [monitor.summary_digest])
            old = None if before is None else {k: getattr(before, k) for k in values}
            draft = EventDraft(event.action, event.entity, event.actor, old, values)
            append_event(self._db, conn, draft, now)
        return self.get(monitor.project, monitor.name), before is None

    def get(self, project: str, name: str) -> Monitor:
        with self._db.read() as conn:
            row = conn.execute(
                select(t.monitors).where(t.monitors.c.project == project, t.monitors.c.name == name)
            ).first()
        if row is None:
            raise missing_monitor(project, name)
        return to_monitor(row)

    def delete(self, project: str, name: str, event: EventDraft) -> None:
        found = self.get(project, name)
        with self._db.write() as conn:
            conn.execute(
                t.monitors.delete().where(
                    t.monitors.c.project == project, t.monitors.c.name == name
                )
            )
            before = {key: getattr(found, key) for key in _SETTINGS}
            draft = EventDraft(event.action, event.entity, event.actor, before, None)
            append_event(self._db, conn, draft, self._clock())

    def add_run(self, run: MonitorRun, event: EventDraft) -> MonitorRun:
        """Record a finished run (its `id` and `time` are assigned here) with its event."""
        with self._db.write() as conn:
            now = self._clock()
            inserted = conn.execute(
                t.monitor_runs.insert().values(
                    project=run.project,
                    monitor=run.monitor,
                    time_us=now,
                    window_start_us=run.window_start_us,
                    window_end_us=run.window_end_us,
                    rows=run.rows,
                    drift_share=run.drift_share,
                    drifted_json=json.dumps(list(run.drifted)),
                    report_digest=run.report_digest,
                    weighted_drift=run.weighted_drift,
                )
            ).inserted_primary_key
            assert inserted is not None
            run_id = inserted[0]
            add_blob_refs(conn, run.project, [run.report_digest])
            after = {
                "run": run_id,
                "rows": run.rows,
                "drift_share": run.drift_share,
                "weighted_drift": run.weighted_drift,
                "drifted": list(run.drifted),
                "report": run.report_digest,
            }
            draft = EventDraft(event.action, event.entity, event.actor, None, after)
            append_event(self._db, conn, draft, now)
        return self.get_run(run.project, int(run_id))

    def get_run(self, project: str, run_id: int) -> MonitorRun:
        with self._db.read() as conn:
            row = conn.execute(
                select(t.monitor_runs).where(
                    t.monitor_runs.c.project == project, t.monitor_runs.c.id == run_id
                )
            ).first()
        if row is None:
            raise missing_monitor_run(project, run_id)
        return to_monitor_run(row)

    def runs(self, project: str, monitor: str, limit: int) -> list[MonitorRun]:
        """The newest `limit` runs of `monitor`, newest first."""
        table = t.monitor_runs
        with self._db.read() as conn:
            rows = conn.execute(
                select(table)
                .where(table.c.project == project, table.c.monitor == monitor)
                .order_by(table.c.time_us.desc(), table.c.id.desc())
                .limit(limit)
            ).all()
        return [to_monitor_run(r) for r in rows]

    def list(self, project: str) -> list[Monitor]:
        with self._db.read() as conn:
            rows = conn.execute(
                select(t.monitors)
                .where(t.monitors.c.project == project)
                .order_by(t.monitors.c.name)
            ).all()
        return [to_monitor(r) for r in rows]
