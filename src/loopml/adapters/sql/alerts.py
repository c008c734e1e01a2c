"""The `AlertStore` port on SQL."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from sqlalchemy import select

from loopml.adapters.sql import tables as t
from loopml.adapters.sql.engine import Database
from loopml.adapters.sql.events import Clock, append_event, ensure_project, system_clock_us
from loopml.adapters.sql.rows import (
    OPEN_STATES,
    missing_alert,
    missing_alert_rule,
    to_alert,
    to_alert_rule,
)
from loopml.domain.epoch_us import datetime_to_us
from loopml.domain.records import Alert, AlertRule, EventDraft


def _alert_values(alert: Alert) -> dict[str, Any]:
    return {
        "state": alert.state,
        "updated_us": datetime_to_us(alert.updated_at),
        "resolved_us": None if alert.resolved_at is None else datetime_to_us(alert.resolved_at),
        "value": alert.value,
        "deliveries_json": json.dumps([dataclasses.asdict(d) for d in alert.deliveries]),
    }


class SqlAlertStore:
    def __init__(self, db: Database, clock: Clock = system_clock_us) -> None:
        self._db = db
        self._clock = clock

    def add_rule(self, rule: AlertRule, event: EventDraft) -> AlertRule:
        values = {
            "target": rule.target,
            "condition": rule.condition,
            "channels_json": json.dumps(list(rule.channels)),
            "cooldown_s": rule.cooldown_s,
            "resolve_after": rule.resolve_after,
            "resolve_margin": rule.resolve_margin,
        }
        with self._db.write() as conn:
            now = self._clock()
            ensure_project(conn, rule.project, now)
            inserted = conn.execute(
                t.alert_rules.insert().values(project=rule.project, created_us=now, **values)
            ).inserted_primary_key
            assert inserted is not None
            draft = EventDraft(
                event.action, f"{event.entity}/{inserted[0]}", event.actor, None, values
            )
            append_event(self._db, conn, draft, now)
        return self.rule(rule.project, int(inserted[0]))

    def rule(self, project: str, rule_id: int) -> AlertRule:
        with self._db.read() as conn:
            row = conn.execute(
                select(t.alert_rules).where(
                    t.alert_rules.c.project == project, t.alert_rules.c.id == rule_id
                )
            ).first()
        if row is None:
            raise missing_alert_rule(project, rule_id)
        return to_alert_rule(row)

    def rules(self, project: str, target: str | None = None) -> list[AlertRule]:
        query = select(t.alert_rules).where(t.alert_rules.c.project == project)
        if target is not None:
            query = query.where(t.alert_rules.c.target == target)
        with self._db.read() as conn:
            rows = conn.execute(query.order_by(t.alert_rules.c.id)).all()
        return [to_alert_rule(r) for r in rows]

    def delete_rule(self, project: str, rule_id: int, event: EventDraft) -> None:
        found = self.rule(project, rule_id)
        with self._db.write() as conn:
            conn.execute(
                t.alert_rules.delete().where(
                    t.alert_rules.c.id == rule_id, t.alert_rules.c.project == project
                )
            )
            before = {"target": found.target, "condition": found.condition}
            draft = EventDraft(event.action, event.entity, event.actor, before, None)
            append_event(self._db, conn, draft, self._clock())

    def open_alert(self, project: str, rule_id: int) -> Alert | None:
        """The rule's alert that is firing or acknowledged, if any."""
        return self._latest(project, rule_id, OPEN_STATES)

    def last_alert(self, project: str, rule_id: int) -> Alert | None:
        return self._latest(project, rule_id, None)

    def _latest(self, project: str, rule_id: int, states: tuple[str, ...] | None) -> Alert | None:
        query = select(t.alerts).where(t.alerts.c.project == project, t.alerts.c.rule_id == rule_id)
        if states is not None:
            query = query.where(t.alerts.c.state.in_(states))
        with self._db.read() as conn:
            row = conn.execute(query.order_by(t.alerts.c.id.desc()).limit(1)).first()
        return None if row is None else to_alert(row)

    def save_alert(self, alert: Alert, event: EventDraft) -> Alert:
        """Insert (`alert.id == 0`) or update an alert, with its audit event."""
        values = _alert_values(alert)
        if alert.rule_id:  # 0: a notice loopml raised itself, under no rule
            self.rule(alert.project, alert.rule_id)  # a rule of the alert's own project
        with self._db.write() as conn:
            now = self._clock()
            if alert.id == 0:
                inserted = conn.execute(
                    t.alerts.insert().values(
                        project=alert.project,
                        rule_id=alert.rule_id,
                        target=alert.target,
                        condition=alert.condition,
                        opened_us=datetime_to_us(alert.opened_at),
                        **values,
                    )
                ).inserted_primary_key
                assert inserted is not None
                alert_id = int(inserted[0])
            else:
                alert_id = alert.id
                mine = (t.alerts.c.id == alert_id) & (t.alerts.c.project == alert.project)
                if not conn.execute(t.alerts.update().where(mine).values(**values)).rowcount:
                    raise missing_alert(alert.project, alert_id)
            after = {"alert": alert_id, "state": alert.state, "value": alert.value}
            entity = f"{event.entity}/{alert_id}"
            append_event(
                self._db, conn, EventDraft(event.action, entity, event.actor, None, after), now
            )
        return self.alert(alert.project, alert_id)

    def alert(self, project: str, alert_id: int) -> Alert:
        with self._db.read() as conn:
            row = conn.execute(
                select(t.alerts).where(t.alerts.c.project == project, t.alerts.c.id == alert_id)
            ).first()
        if row is None:
            raise missing_alert(project, alert_id)
        return to_alert(row)

    def alerts(self, project: str, state: str | None, limit: int) -> list[Alert]:
        query = select(t.alerts).where(t.alerts.c.project == project)
        if state is not None:
            query = query.where(t.alerts.c.state == state)
        with self._db.read() as conn:
            rows = conn.execute(query.order_by(t.alerts.c.id.desc()).limit(limit)).all()
        return [to_alert(r) for r in rows]
