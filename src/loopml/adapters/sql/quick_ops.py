"""Quick stores of monitors, alerts and loops: their reads in plain SQL on `sqlite3`, their writes
through the full SQL stores (see `loopml.adapters.sql.quick`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml.adapters.sql.quick import QuickDatabase, QuickStore, placeholders
from loopml.adapters.sql.rows import (
    OPEN_STATES,
    Clock,
    missing_alert,
    missing_alert_rule,
    missing_monitor,
    missing_monitor_run,
    to_alert,
    to_alert_rule,
    to_loop,
    to_loop_run,
    to_monitor,
    to_monitor_run,
)
from loopml.domain.loops import Loop, LoopRun, LoopSpec, LoopState, missing_loop, missing_loop_run
from loopml.domain.records import Alert, AlertRule, EventDraft, Monitor, MonitorRun

if TYPE_CHECKING:
    from loopml.adapters.sql.alerts import SqlAlertStore
    from loopml.adapters.sql.engine import Database
    from loopml.adapters.sql.loops import SqlLoopStore
    from loopml.adapters.sql.monitors import SqlMonitorStore


def _sql_monitors(db: Database, clock: Clock) -> SqlMonitorStore:
    from loopml.adapters.sql.monitors import SqlMonitorStore

    return SqlMonitorStore(db, clock)


class QuickMonitorStore(QuickStore["SqlMonitorStore"]):
    """The `MonitorStore` port: monitors and their runs read quickly."""

    def __init__(self, quick: QuickDatabase) -> None:
        super().__init__(quick, _sql_monitors)

    def save(self, monitor: Monitor, event: EventDraft) -> tuple[Monitor, bool]:
        return self.full.save(monitor, event)

    def delete(self, project: str, name: str, event: EventDraft) -> None:
        self.full.delete(project, name, event)

    def add_run(self, run: MonitorRun, event: EventDraft) -> MonitorRun:
        return self.full.add_run(run, event)

    def get(self, project: str, name: str) -> Monitor:
        with self._quick.read() as reader:
            row = reader.one(
                "SELECT * FROM monitors WHERE project = ? AND name = ?", (project, name)
            )
        if row is None:
            raise missing_monitor(project, name)
        return to_monitor(row)

    def get_run(self, project: str, run_id: int) -> MonitorRun:
        with self._quick.read() as reader:
            row = reader.one(
                "SELECT * FROM monitor_runs WHERE project = ? AND id = ?", (project, run_id)
            )
        if row is None:
            raise missing_monitor_run(project, run_id)
        return to_monitor_run(row)

    def runs(self, project: str, monitor: str, limit: int) -> list[MonitorRun]:
        """The newest `limit` runs of `monitor`, newest first."""
        with self._quick.read() as reader:
            rows = reader.all(
                "SELECT * FROM monitor_runs WHERE project = ? AND monitor = ? "
                "ORDER BY time_us DESC, id DESC LIMIT ?",
                (project, monitor, limit),
            )
        return [to_monitor_run(row) for row in rows]

    def list(self, project: str) -> list[Monitor]:
        with self._quick.read() as reader:
            rows = reader.all("SELECT * FROM monitors WHERE project = ? ORDER BY name", (project,))
        return [to_monitor(row) for row in rows]


def _sql_alerts(db: Database, clock: Clock) -> SqlAlertStore:
    from loopml.adapters.sql.alerts import SqlAlertStore

    return SqlAlertStore(db, clock)


class QuickAlertStore(QuickStore["SqlAlertStore"]):
    """The `AlertStore` port: rules and alerts read quickly."""

    def __init__(self, quick: QuickDatabase) -> None:
        super().__init__(quick, _sql_alerts)

    def add_rule(self, rule: AlertRule, event: EventDraft) -> AlertRule:
        return self.full.add_rule(rule, event)

    def delete_rule(self, project: str, rule_id: int, event: EventDraft) -> None:
        self.full.delete_rule(project, rule_id, event)

    def save_alert(self, alert: Alert, event: EventDraft) -> Alert:
        return self.full.save_alert(alert, event)

    def rule(self, project: str, rule_id: int) -> AlertRule:
        with self._quick.read() as reader:
            row = reader.one(
                "SELECT * FROM alert_rules WHERE project = ? AND id = ?", (project, rule_id)
            )
        if row is None:
            raise missing_alert_rule(project, rule_id)
        return to_alert_rule(row)

    def rules(self, project: str, target: str | None = None) -> list[AlertRule]:
        sql, params = "SELECT * FROM alert_rules WHERE project = ?", [project]
        if target is not None:
            sql, params = f"{sql} AND target = ?", [project, target]
        with self._quick.read() as reader:
            rows = reader.all(f"{sql} ORDER BY id", params)
        return [to_alert_rule(row) for row in rows]

    def open_alert(self, project: str, rule_id: int) -> Alert | None:
        """The rule's alert that is firing or acknowledged, if any."""
        return self._latest(project, rule_id, OPEN_STATES)

    def last_alert(self, project: str, rule_id: int) -> Alert | None:
        return self._latest(project, rule_id, None)

    def _latest(self, project: str, rule_id: int, states: tuple[str, ...] | None) -> Alert | None:
        sql = "SELECT * FROM alerts WHERE project = ? AND rule_id = ?"
        params: list[object] = [project, rule_id]
        if states is not None:
            sql += f" AND state IN ({placeholders(states)})"
            params += states
        with self._quick.read() as reader:
            row = reader.one(f"{sql} ORDER BY id DESC LIMIT 1", params)
        return None if row is None else to_alert(row)

    def alert(self, project: str, alert_id: int) -> Alert:
        with self._quick.read() as reader:
            row = reader.one(
                "SELECT * FROM alerts WHERE project = ? AND id = ?", (project, alert_id)
            )
        if row is None:
            raise missing_alert(project, alert_id)
        return to_alert(row)

    def alerts(self, project: str, state: str | None, limit: int) -> list[Alert]:
        sql, params = "SELECT * FROM alerts WHERE project = ?", [project]
        if state is not None:
            sql, params = f"{sql} AND state = ?", [project, state]
        with self._quick.read() as reader:
            rows = reader.all(f"{sql} ORDER BY id DESC LIMIT ?", [*params, limit])
        return [to_alert(row) for row in rows]


def _sql_loops(db: Database, clock: Clock) -> SqlLoopStore:
    from loopml.adapters.sql.loops import SqlLoopStore

    return SqlLoopStore(db, clock)


class QuickLoopStore(QuickStore["SqlLoopStore"]):
    """The `LoopStore` port: loops and their runs read quickly."""

    def __init__(self, quick: QuickDatabase) -> None:
        super().__init__(quick, _sql_loops)

    def create(self, spec: LoopSpec, event: EventDraft) -> Loop:
        return self.full.create(spec, event)

    def delete(self, project: str, name: str, event: EventDraft) -> None:
        self.full.delete(project, name, event)

    def save_state(self, project: str, name: str, state: LoopState) -> None:
        self.full.save_state(project, name, state)

    def save_run(self, run: LoopRun, event: EventDraft) -> LoopRun:
        return self.full.save_run(run, event)

    def get(self, project: str, name: str) -> Loop:
        with self._quick.read() as reader:
            row = reader.one("SELECT * FROM loops WHERE project = ? AND name = ?", (project, name))
        if row is None:
            raise missing_loop(project, name)
        return to_loop(row)

    def run(self, project: str, run_id: int) -> LoopRun:
        with self._quick.read() as reader:
            row = reader.one(
                "SELECT * FROM loop_runs WHERE project = ? AND id = ?", (project, run_id)
            )
        if row is None:
            raise missing_loop_run(project, run_id)
        return to_loop_run(row)

    def runs(self, project: str, loop: str, limit: int) -> list[LoopRun]:
        """The newest `limit` runs of `loop`, newest first."""
        with self._quick.read() as reader:
            rows = reader.all(
                "SELECT * FROM loop_runs WHERE project = ? AND loop = ? "
                "ORDER BY started_us DESC, id DESC LIMIT ?",
                (project, loop, limit),
            )
        return [to_loop_run(row) for row in rows]

    def list(self, project: str) -> list[Loop]:
        with self._quick.read() as reader:
            rows = reader.all("SELECT * FROM loops WHERE project = ? ORDER BY name", (project,))
        return [to_loop(row) for row in rows]
