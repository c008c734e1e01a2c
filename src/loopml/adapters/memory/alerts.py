"""The `AlertStore` port in memory."""

from __future__ import annotations

import dataclasses
import json

from loopml.adapters.memory.database import MemoryDatabase, datetime_to_us, us_to_datetime
from loopml.domain.records import Alert, AlertRule, EventDraft
from loopml.errors import NotFound

OPEN_STATES = ("firing", "acknowledged")


def _missing_alert(project: str, alert_id: int) -> NotFound:
    return NotFound(
        f"Alert {alert_id} does not exist in project {project!r}.",
        "List alerts with `loopml alert list`.",
    )


def _exact(alert: Alert) -> Alert:
    """`alert` as a store keeps it: its times in UTC to the microsecond, its value a float."""
    resolved = alert.resolved_at
    return dataclasses.replace(
        alert,
        opened_at=us_to_datetime(datetime_to_us(alert.opened_at)),
        updated_at=us_to_datetime(datetime_to_us(alert.updated_at)),
        resolved_at=None if resolved is None else us_to_datetime(datetime_to_us(resolved)),
        value=None if alert.value is None else float(alert.value),
        deliveries=tuple(alert.deliveries),
    )


class MemoryAlertStore:
    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    def add_rule(self, rule: AlertRule, event: EventDraft) -> AlertRule:
        """Store the rule under a new id (its `created_at` is now); the event names the id."""
        values = {
            "target": rule.target,
            "condition": rule.condition,
            "channels_json": json.dumps(list(rule.channels)),
            "cooldown_s": rule.cooldown_s,
            "resolve_after": rule.resolve_after,
            "resolve_margin": rule.resolve_margin,
        }
        with self._db.lock:
            now = self._db.clock()
            self._db.ensure_project(rule.project, now)
            saved = dataclasses.replace(
                rule,
                id=self._db.next_id("alert_rules"),
                channels=tuple(rule.channels),
                created_at=us_to_datetime(now),
                resolve_margin=float(rule.resolve_margin),
            )
            self._db.tables.alert_rules[saved.id] = saved
            entity = f"{event.entity}/{saved.id}"
            self._db.append_event(EventDraft(event.action, entity, event.actor, None, values), now)
        return saved

    def rule(self, project: str, rule_id: int) -> AlertRule:
        with self._db.lock:
            found = self._db.tables.alert_rules.get(rule_id)
        if found is None or found.project != project:
            raise NotFound(
                f"Alert rule {rule_id} does not exist in project {project!r}.",
                "List rules with `loopml alert rule list`.",
            )
        return found

    def rules(self, project: str, target: str | None = None) -> list[AlertRule]:
        """The project's rules (on `target` only, when given), oldest first."""
        with self._db.lock:
            return [
                rule
                for rule in self._db.tables.alert_rules.values()
                if rule.project == project and target in (None, rule.target)
            ]

    def delete_rule(self, project: str, rule_id: int, event: EventDraft) -> None:
        """Delete the rule; its alerts stay."""
        with self._db.lock:
            found = self.rule(project, rule_id)
            del self._db.tables.alert_rules[rule_id]
            before = {"target": found.target, "condition": found.condition}
            draft = EventDraft(event.action, event.entity, event.actor, before, None)
            self._db.append_event(draft, self._db.clock())

    def open_alert(self, project: str, rule_id: int) -> Alert | None:
        """The rule's newest alert that is firing or acknowledged, if any."""
        return self._latest(project, rule_id, OPEN_STATES)

    def last_alert(self, project: str, rule_id: int) -> Alert | None:
        return self._latest(project, rule_id, None)

    def _latest(self, project: str, rule_id: int, states: tuple[str, ...] | None) -> Alert | None:
        with self._db.lock:
            for alert in reversed(self._db.tables.alerts.values()):
                if (alert.project, alert.rule_id) == (project, rule_id) and (
                    states is None or alert.state in states
                ):
                    return alert
        return None

    def save_alert(self, alert: Alert, event: EventDraft) -> Alert:
        """Insert (`alert.id == 0`) or update an alert (its state, times of change, value and
        deliveries), with its audit event."""
        with self._db.lock:
            if alert.rule_id:  # 0: a notice loopml raised itself, under no rule
                self.rule(alert.project, alert.rule_id)  # a rule of the alert's own project
            now = self._db.clock()
            if alert.id == 0:
                saved = _exact(dataclasses.replace(alert, id=self._db.next_id("alerts")))
            else:
                stored = self.alert(alert.project, alert.id)
                saved = _exact(
                    dataclasses.replace(
                        stored,
                        state=alert.state,
                        updated_at=alert.updated_at,
                        resolved_at=alert.resolved_at,
                        value=alert.value,
                        deliveries=alert.deliveries,
                    )
                )
            self._db.tables.alerts[saved.id] = saved
            after = {"alert": saved.id, "state": alert.state, "value": alert.value}
            entity = f"{event.entity}/{saved.id}"
            self._db.append_event(EventDraft(event.action, entity, event.actor, None, after), now)
        return saved

    def alert(self, project: str, alert_id: int) -> Alert:
        with self._db.lock:
            found = self._db.tables.alerts.get(alert_id)
        if found is None or found.project != project:
            raise _missing_alert(project, alert_id)
        return found

    def alerts(self, project: str, state: str | None, limit: int) -> list[Alert]:
        """The project's newest `limit` alerts (in `state`, when given), newest first."""
        found: list[Alert] = []
        with self._db.lock:
            for alert in reversed(self._db.tables.alerts.values()):
                if len(found) >= limit:
                    break
                if alert.project == project and state in (None, alert.state):
                    found.append(alert)
        return found
