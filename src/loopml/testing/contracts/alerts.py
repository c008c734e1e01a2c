"""The AlertStore contract: rules numbered by the store and listed oldest first; alerts opened
and changed (state, value, deliveries; never their rule, condition or opening), found as the
rule's open or last one, listed newest first; every change audited under the record's id."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from loopml.domain.records import Alert, AlertRule, Delivery
from loopml.errors import NotFound
from loopml.testing.contracts.stores import MetadataStores, draft, events_since, last_seq

__all__ = [
    "test_a_rule_is_numbered_and_kept_as_given",
    "test_alerts_are_listed_newest_first_by_state",
    "test_an_alert_changes_state_value_and_deliveries_only",
    "test_deleting_a_rule_keeps_its_alerts",
    "test_rules_alerts_and_their_changes_are_audited",
    "test_the_open_and_the_last_alert_of_a_rule",
    "test_unknown_rules_and_alerts_are_named_in_the_error",
]

_OPENED = datetime(2026, 11, 28, 13, 0, 0, 123456, tzinfo=UTC)
_ENTITY = "alert:default/drift"


def _rule(target: str = "drift", project: str = "default") -> AlertRule:
    return AlertRule(0, project, target, "drift_share > 0.3", ("log:",), 600, _OPENED, 2, 0.05)


def _add_rule(stores: MetadataStores, rule: AlertRule) -> AlertRule:
    entity = f"alert:{rule.project}/{rule.target}"
    return stores.alerts.add_rule(rule, draft("alert_rule.added", entity))


def _alert(rule: AlertRule, state: str = "firing", value: float | None = 0.5) -> Alert:
    return Alert(
        0, rule.project, rule.id, rule.target, rule.condition, state, _OPENED, _OPENED, None,
        value, (),
    )  # fmt: skip


def _save(stores: MetadataStores, alert: Alert, action: str = "alert.fired") -> Alert:
    return stores.alerts.save_alert(alert, draft(action, f"alert:{alert.project}/{alert.target}"))


def test_a_rule_is_numbered_and_kept_as_given(stores: MetadataStores) -> None:
    first = _add_rule(stores, _rule())
    second = _add_rule(stores, _rule("web"))
    assert 0 < first.id < second.id
    assert (first.project, first.target, first.condition) == (
        "default",
        "drift",
        "drift_share > 0.3",
    )
    assert (first.channels, first.cooldown_s) == (("log:",), 600)
    assert (first.resolve_after, first.resolve_margin) == (2, 0.05)
    assert first.created_at != _OPENED  # the store's clock, not the caller's
    assert first.created_at.utcoffset() == timedelta(0)
    assert stores.alerts.rule("default", first.id) == first
    assert stores.alerts.rules("default") == [first, second]
    assert stores.alerts.rules("default", "web") == [second]
    assert stores.alerts.rules("default", "nothing") == []
    assert stores.alerts.rules("fraud") == []


def test_unknown_rules_and_alerts_are_named_in_the_error(stores: MetadataStores) -> None:
    with pytest.raises(NotFound, match="Alert rule 99"):
        stores.alerts.rule("default", 99)
    with pytest.raises(NotFound, match="Alert rule 99"):
        stores.alerts.delete_rule("default", 99, draft("alert_rule.deleted", _ENTITY))
    with pytest.raises(NotFound, match="Alert 99"):
        stores.alerts.alert("default", 99)
    rule = _add_rule(stores, _rule())
    with pytest.raises(NotFound, match=f"Alert rule {rule.id}"):
        stores.alerts.rule("fraud", rule.id)  # a rule is found in its own project only
    with pytest.raises(NotFound, match="Alert rule 99"):
        _save(stores, dataclasses.replace(_alert(rule), rule_id=99))
    with pytest.raises(NotFound, match="Alert 99"):
        _save(stores, dataclasses.replace(_alert(rule), id=99))
    opened = _save(stores, _alert(rule))
    with pytest.raises(NotFound, match=f"Alert {opened.id}"):
        stores.alerts.alert("fraud", opened.id)
    assert stores.alerts.alerts("default", None, 10) == [opened]


def test_an_alert_changes_state_value_and_deliveries_only(stores: MetadataStores) -> None:
    rule = _add_rule(stores, _rule())
    opened = _save(stores, _alert(rule))
    assert opened.id > 0
    assert (opened.rule_id, opened.target, opened.condition) == (rule.id, "drift", rule.condition)
    assert (opened.state, opened.value, opened.deliveries) == ("firing", 0.5, ())
    assert (opened.opened_at, opened.updated_at, opened.resolved_at) == (_OPENED, _OPENED, None)
    assert stores.alerts.alert("default", opened.id) == opened
    later = _OPENED + timedelta(minutes=5)
    sent = Delivery("log:", "resolved", True, 1, None, 1_234_567)
    failed = Delivery("webhook:http://127.0.0.1:9/x", "resolved", False, 3, "refused", 1_234_568)
    changed = dataclasses.replace(
        opened,
        state="resolved",
        updated_at=later,
        resolved_at=later,
        value=0.1,
        deliveries=(sent, failed),
        target="elsewhere",  # what an alert is about never changes
        condition="rows < 1",
        opened_at=later,
    )
    saved = _save(stores, changed, "alert.resolved")
    assert saved.id == opened.id
    assert (saved.state, saved.value, saved.deliveries) == ("resolved", 0.1, (sent, failed))
    assert (saved.updated_at, saved.resolved_at) == (later, later)
    assert (saved.target, saved.condition, saved.opened_at) == ("drift", rule.condition, _OPENED)
    assert stores.alerts.alert("default", opened.id) == saved
    notice = _save(stores, Alert(0, "default", 0, "web", "retrain failed: x", "firing",
                                 _OPENED, _OPENED, None, None, ()))  # fmt: skip
    assert (notice.rule_id, notice.value) == (0, None)  # loopml's own notice: under no rule


def test_the_open_and_the_last_alert_of_a_rule(stores: MetadataStores) -> None:
    rule = _add_rule(stores, _rule())
    other = _add_rule(stores, _rule("web"))
    assert stores.alerts.open_alert("default", rule.id) is None
    assert stores.alerts.last_alert("default", rule.id) is None
    first = _save(stores, _alert(rule))
    _save(stores, _alert(other))
    assert stores.alerts.open_alert("default", rule.id) == first
    acknowledged = _save(stores, dataclasses.replace(first, state="acknowledged"), "alert.ack")
    assert stores.alerts.open_alert("default", rule.id) == acknowledged
    resolved = _save(
        stores, dataclasses.replace(acknowledged, state="resolved", resolved_at=_OPENED)
    )
    assert stores.alerts.open_alert("default", rule.id) is None
    assert stores.alerts.last_alert("default", rule.id) == resolved
    again = _save(stores, _alert(rule, value=0.9))
    assert stores.alerts.open_alert("default", rule.id) == again
    assert stores.alerts.last_alert("default", rule.id) == again


def test_alerts_are_listed_newest_first_by_state(stores: MetadataStores) -> None:
    rule = _add_rule(stores, _rule())
    made = [_save(stores, _alert(rule, state)) for state in ("firing", "resolved", "firing")]
    _save(stores, _alert(_add_rule(stores, _rule(project="fraud"))))
    assert stores.alerts.alerts("default", None, 10) == made[::-1]
    assert stores.alerts.alerts("default", "firing", 10) == [made[2], made[0]]
    assert stores.alerts.alerts("default", "resolved", 10) == [made[1]]
    assert stores.alerts.alerts("default", "acknowledged", 10) == []
    assert stores.alerts.alerts("default", None, 2) == [made[2], made[1]]
    assert len(stores.alerts.alerts("fraud", None, 10)) == 1


def test_deleting_a_rule_keeps_its_alerts(stores: MetadataStores) -> None:
    rule = _add_rule(stores, _rule())
    kept = _add_rule(stores, _rule("web"))
    opened = _save(stores, _alert(rule))
    stores.alerts.delete_rule("default", rule.id, draft("alert_rule.deleted", _ENTITY))
    with pytest.raises(NotFound):
        stores.alerts.rule("default", rule.id)
    assert stores.alerts.rules("default") == [kept]
    assert stores.alerts.alert("default", opened.id) == opened
    assert _add_rule(stores, _rule()).id > kept.id  # a rule's number is never given again


def test_rules_alerts_and_their_changes_are_audited(stores: MetadataStores) -> None:
    start = last_seq(stores)
    rule = _add_rule(stores, _rule())
    opened = _save(stores, _alert(rule))
    _save(stores, dataclasses.replace(opened, state="acknowledged", value=0.7), "alert.ack")
    stores.alerts.delete_rule(
        "default", rule.id, draft("alert_rule.deleted", f"{_ENTITY}/{rule.id}")
    )
    added, fired, acked, deleted = events_since(stores, start)
    assert (added.action, added.entity, added.before) == (
        "alert_rule.added",
        f"{_ENTITY}/{rule.id}",
        None,
    )
    assert added.after == {
        "target": "drift",
        "condition": "drift_share > 0.3",
        "channels_json": '["log:"]',
        "cooldown_s": 600,
        "resolve_after": 2,
        "resolve_margin": 0.05,
    }
    assert (fired.action, fired.entity) == ("alert.fired", f"{_ENTITY}/{opened.id}")
    assert fired.after == {"alert": opened.id, "state": "firing", "value": 0.5}
    assert (acked.entity, acked.after) == (
        f"{_ENTITY}/{opened.id}",
        {"alert": opened.id, "state": "acknowledged", "value": 0.7},
    )
    assert (deleted.action, deleted.entity, deleted.after) == (
        "alert_rule.deleted",
        f"{_ENTITY}/{rule.id}",
        None,
    )
    assert deleted.before == {"target": "drift", "condition": "drift_share > 0.3"}
