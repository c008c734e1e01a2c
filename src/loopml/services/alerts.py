"""Alerts: rules over a monitor's reports, evaluated after each of its runs.

Lifecycle: a rule whose condition starts holding opens an alert (`firing`) and tells every
channel once; while the condition keeps holding nothing more is sent (de-duplication); a person
may `acknowledge` it; when the condition has stopped holding as the rule asks (on its
`resolve_after` latest runs, past the threshold by its `resolve_margin`; by default the first
run it is false) the alert is `resolved` and the channels are told so. A rule that fires
again within its cooldown of resolving reopens the same alert silently, so a flapping
condition does not page anyone twice. Every transition is an audited
event and every delivery, failed or not, is kept on the alert.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from loopml.domain.alerts import (
    AlertAction,
    AlertState,
    check_resolution,
    decide,
    parse_condition,
    value_of,
)
from loopml.domain.records import Alert, AlertRule, EventDraft
from loopml.domain.refs import check_name
from loopml.domain.states import check_move
from loopml.errors import InvalidInput
from loopml.ports import AlertStore, Notifier

STATES = tuple(state.value for state in AlertState)
OPEN_SCAN = 1_000
"""Open alerts looked through for a failure notice of one target."""


def check_rule(rule: AlertRule, check_channel: Callable[[str], str]) -> AlertRule:
    """`rule` if it is well formed (its target's name, its condition, each channel as
    `check_channel` checks it, a cooldown of 0 or more, how it resolves), with its condition
    and channels normalised (no channel: `log:`); else InvalidInput naming the part. The CLI's
    and the team server's one check."""
    check_name(rule.target, "monitor or deployment")
    condition = parse_condition(rule.condition)
    channels = tuple(check_channel(c) for c in rule.channels) or ("log:",)
    if rule.cooldown_s < 0:
        raise InvalidInput(f"Cooldown {rule.cooldown_s} s is negative.", "Give 0 or more.")
    check_resolution(condition.text(), rule.resolve_after, rule.resolve_margin)
    return dataclasses.replace(rule, condition=condition.text(), channels=channels)


class AlertService:
    def __init__(
        self,
        store: AlertStore,
        notifier: Notifier,
        actor: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._notifier = notifier
        self._actor = actor
        self._clock = clock

    # -- rules ----------------------------------------------------------------------------------

    def check_channel(self, channel: str) -> str:
        """`channel` (`slack:URL`, `email:ADDRESS`, ...) checked and normalised; InvalidInput
        naming the fix."""
        return self._notifier.check(channel)

    def add_rule(
        self,
        target: str,
        *,
        when: str,
        notify: Sequence[str],
        project: str,
        cooldown_s: int = 3600,
        resolve_after: int = 1,
        resolve_margin: float = 0.0,
    ) -> AlertRule:
        """A rule on `target`, a monitor or a deployment (then every monitor of it whose reports
        have the field): `when` is a condition (`drift_share > 0.3 for 3 windows`, `down for
        2m`), `notify` the channels (`slack:URL`, `webhook:URL`, `email:ADDRESS`, `log:`).
        Its alert resolves once the condition is false on `resolve_after` runs in a row, past
        the threshold by `resolve_margin`."""
        rule = AlertRule(
            0,
            project,
            target,
            when,
            tuple(notify),
            cooldown_s,
            self._clock(),
            resolve_after,
            float(resolve_margin),
        )
        rule = check_rule(rule, self._notifier.check)
        return self._store.add_rule(rule, self._event("alert_rule.added", project, target))

    def rules(self, project: str, target: str | None = None) -> list[AlertRule]:
        return self._store.rules(project, target)

    def delete_rule(self, rule_id: int, project: str) -> None:
        rule = self._store.rule(project, rule_id)
        event = self._event("alert_rule.deleted", project, f"{rule.target}/{rule_id}")
        self._store.delete_rule(project, rule_id, event)

    # -- alerts ---------------------------------------------------------------------------------

    def alerts(self, project: str, state: str | None = None, limit: int = 100) -> list[Alert]:
        if state is not None and state not in STATES:
            raise InvalidInput(
                f"Unknown alert state {state!r}.", f"Use one of: {', '.join(STATES)}."
            )
        return self._store.alerts(project, state, max(1, limit))

    def get(self, alert_id: int, project: str) -> Alert:
        return self._store.alert(project, alert_id)

    def acknowledge(self, alert_id: int, project: str) -> Alert:
        alert = self._store.alert(project, alert_id)
        if alert.state != "firing":
            raise InvalidInput(
                f"Alert {alert_id} is {alert.state}; only a firing alert can be acknowledged.",
                "List firing alerts with `loopml alert list --state firing`.",
            )
        changed = _moved(alert, AlertState.ACKNOWLEDGED, updated_at=self._clock())
        return self._store.save_alert(
            changed, self._event("alert.acknowledged", project, alert.target)
        )

    def rules_for(self, project: str, target: str, deployment: str | None) -> list[AlertRule]:
        """The rules a run of monitor `target` (watching `deployment`) answers to: those on the
        monitor, and those on its deployment."""
        rules = self._store.rules(project, target)
        if deployment is not None and deployment != target:
            rules += self._store.rules(project, deployment)
        return rules

    def evaluate(
        self,
        project: str,
        target: str,
        runs: Sequence[tuple[int, Mapping[str, Any]]],
        now_us: int,
        deployment: str | None = None,
    ) -> list[Alert]:
        """Apply the rules on monitor `target` (and on its `deployment`) to its runs
        ((time_us, report), newest first); returns the alerts that changed. A rule on the
        deployment only hears runs whose report has its field (`down` comes from health
        monitors, `drift_share` from drift monitors), so two monitors never toggle one alert.
        Whether an alert fires, stays or resolves is `loopml.domain.alerts.decide`'s call."""
        changed = []
        for rule in self.rules_for(project, target, deployment):
            field = parse_condition(rule.condition).field
            if rule.target != target and (not runs or value_of(runs[0][1], field) is None):
                continue  # a deployment rule about another kind of monitor
            current = self._store.open_alert(rule.project, rule.id)
            decision = decide(rule, runs, now_us, None if current is None else current.state)
            if decision.action is AlertAction.FIRE:
                changed.append(self._fire(rule, decision.value))
            elif decision.action is AlertAction.RESOLVE and current is not None:
                changed.append(self._resolve(current, decision.value))
        return changed

    def _fire(self, rule: AlertRule, value: float | None) -> Alert:
        now = self._clock()
        last = self._store.last_alert(rule.project, rule.id)
        if (
            last is not None
            and last.resolved_at is not None
            and (now - last.resolved_at).total_seconds() < rule.cooldown_s
        ):
            reopened = _moved(
                last, AlertState.FIRING, updated_at=now, resolved_at=None, value=value
            )
            event = self._event("alert.reopened", rule.project, rule.target)
            return self._store.save_alert(reopened, event)
        alert = Alert(
            0,
            rule.project,
            rule.id,
            rule.target,
            rule.condition,
            "firing",
            now,
            now,
            None,
            value,
            (),
        )
        saved = self._store.save_alert(alert, self._event("alert.fired", rule.project, rule.target))
        return self._notify(saved, rule, "fired")

    def notice(
        self,
        project: str,
        target: str,
        condition: str,
        channels: Sequence[str],
        value: float | None,
    ) -> Alert:
        """An alert raised by loopml itself rather than a rule (a retraining that failed, a
        rollback): it fires once, tells `channels`, and stays until someone acknowledges it."""
        now = self._clock()
        alert = Alert(0, project, 0, target, condition, "firing", now, now, None, value, ())
        saved = self._store.save_alert(alert, self._event("alert.fired", project, target))
        return self._deliver(saved, tuple(channels) or ("log:",), "fired")

    def failing(
        self, project: str, target: str, what: str, why: str, channels: Sequence[str]
    ) -> Alert:
        """Record that `what` of `target` failed: the first failure opens a notice ("monitor
        run failed: WHY", its value 1) and tells `channels`; while it stays open (firing or
        acknowledged) each further failure only counts on it (value: failures in a row,
        `updated_at`: the latest), quietly. `recovered` resolves it."""
        found = self._open_failure(project, target, what)
        if found is None:
            return self.notice(project, target, f"{what} failed: {why}"[:480], channels, 1.0)
        again = dataclasses.replace(
            found, updated_at=self._clock(), value=(found.value or 1.0) + 1.0
        )
        return self._store.save_alert(again, self._event("alert.failed_again", project, target))

    def recovered(
        self, project: str, target: str, what: str, channels: Sequence[str]
    ) -> Alert | None:
        """Resolve the open failure notice of `what` of `target` (if any), telling `channels`."""
        found = self._open_failure(project, target, what)
        if found is None:
            return None
        now = self._clock()
        resolved = _moved(found, AlertState.RESOLVED, updated_at=now, resolved_at=now)
        saved = self._store.save_alert(resolved, self._event("alert.resolved", project, target))
        return self._deliver(saved, tuple(channels) or ("log:",), "resolved")

    def failures(self, project: str, what: str) -> dict[str, Alert]:
        """The open failure notices of `what` in `project`, by target."""
        prefix = f"{what} failed: "
        found: dict[str, Alert] = {}
        for state in ("acknowledged", "firing"):
            for alert in self._store.alerts(project, state, OPEN_SCAN):
                if not alert.rule_id and alert.condition.startswith(prefix):
                    found[alert.target] = alert
        return found

    def _open_failure(self, project: str, target: str, what: str) -> Alert | None:
        return self.failures(project, what).get(target)

    def _resolve(self, alert: Alert, value: float | None) -> Alert:
        now = self._clock()
        resolved = _moved(alert, AlertState.RESOLVED, updated_at=now, resolved_at=now, value=value)
        saved = self._store.save_alert(
            resolved, self._event("alert.resolved", alert.project, alert.target)
        )
        rule = self._store.rule(alert.project, alert.rule_id)
        return self._notify(saved, rule, "resolved")

    def _notify(self, alert: Alert, rule: AlertRule, event: str) -> Alert:
        return self._deliver(alert, rule.channels, event)

    def _deliver(self, alert: Alert, channels: Sequence[str], event: str) -> Alert:
        """Tell every channel, then keep what happened on the alert (the alert is saved first,
        so a delivery that fails or hangs never loses it)."""
        verb = "FIRING" if event == "fired" else "RESOLVED"
        value = "" if alert.value is None else f" (now {alert.value:g})"
        subject = f"[loopml] {verb}: {alert.target}: {alert.condition}{value}"
        payload = {
            "alert": alert.id,
            "project": alert.project,
            "monitor": alert.target,
            "condition": alert.condition,
            "state": alert.state,
            "value": alert.value,
            "opened_at": alert.opened_at.isoformat(),
        }
        deliveries = [self._notifier.deliver(c, event, subject, payload) for c in channels]
        kept = dataclasses.replace(alert, deliveries=(*alert.deliveries, *deliveries))
        return self._store.save_alert(
            kept, self._event(f"alert.{event}.delivered", alert.project, alert.target)
        )

    def _event(self, action: str, project: str, target: str) -> EventDraft:
        return EventDraft(action, f"alert:{project}/{target}", self._actor)


def _moved(alert: Alert, state: AlertState, **changes: Any) -> Alert:
    """`alert` in `state`, after checking the move is one an alert may make."""
    check_move(AlertState(alert.state), state)
    return dataclasses.replace(alert, state=state.value, **changes)
