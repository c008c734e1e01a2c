"""Alerts reaching people for real: a local HTTP receiver (Slack-style and signed JSON
webhooks) and a local SMTP server (aiosmtpd), both on 127.0.0.1; the lifecycle, de-duplication,
cooldown, and a delivery that fails being kept on the alert."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from logged import frame, serve
from served import free_port

from loopml.adapters.notify import ChannelNotifier
from loopml.adapters.prediction_log import now_us
from loopml.bootstrap import Workspace
from loopml.errors import InvalidInput
from loopml.monitoring import monitors
from loopml.services.alerts import AlertService

SECRET = "s3cret"
MINUTE_US = 60_000_000


class Receiver:
    """An HTTP server on 127.0.0.1 that keeps every POST; `/down` answers 503."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(503 if self.path == "/down" else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def on(self, path: str) -> list[dict[str, Any]]:
        return [p for p in self.posts if p["path"] == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.server.shutdown()
    running.server.server_close()


@pytest.fixture
def smtp() -> Iterator[tuple[str, list[Any]]]:
    from aiosmtpd.controller import Controller

    inbox: list[Any] = []

    class Keep:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            inbox.append(envelope)
            return "250 OK"

    port = free_port()
    controller = Controller(Keep(), hostname="127.0.0.1", port=port)
    controller.start()
    yield f"smtp://127.0.0.1:{port}", inbox
    controller.stop()


@pytest.fixture
def alerting(churn: Workspace, smtp: tuple[str, list[Any]]) -> Workspace:
    """The churn workspace with a notifier that mails through the local SMTP server, signs
    webhooks, and retries fast."""
    notifier = ChannelNotifier(
        smtp_url=smtp[0], webhook_secret=SECRET, attempts=3, backoff_s=0.01, timeout_s=2
    )
    store = churn.alerts._store
    return dataclasses.replace(churn, alerts=AlertService(store, notifier, "tester"))


def _window(ws: Workspace, *, drifted: bool, at_us: int, seed: int) -> None:
    served = frame(2_000, seed=seed, shift=0.5 if drifted else 0.0, new_plan=0.05 if drifted else 0)
    serve(ws, served, at_us=at_us)


def test_an_alert_fires_once_is_acknowledged_and_resolves_on_every_channel(
    alerting: Workspace, receiver: Receiver, smtp: tuple[str, list[Any]]
) -> None:
    ws, (_, inbox) = alerting, smtp
    monitors.create("drift", deployment="churn-prod", reference="churn", window="10m", workspace=ws)
    rule = ws.alerts.add_rule(
        "drift",
        when="drift_share > 0.3",
        notify=[
            f"slack:{receiver.url}/slack",
            f"webhook:{receiver.url}/hook",
            "email:ops@example.com",
        ],
        project="default",
    )
    start = now_us() - 60 * MINUTE_US
    for step, drifted in enumerate([True, True, False]):
        at = start + step * 20 * MINUTE_US  # windows of 10 minutes do not overlap
        _window(ws, drifted=drifted, at_us=at, seed=10 + step)
        result = monitors.run("drift", now_us=at, workspace=ws)
        if step == 0:
            (fired,) = result.alerts
            assert fired.state == "firing"
            assert [d.ok for d in fired.deliveries] == [True, True, True]
            assert ws.alerts.acknowledge(fired.id, "default").state == "acknowledged"
        elif step == 1:
            assert result.alerts == []  # still holding: nobody is told twice
        else:
            (resolved,) = result.alerts
            assert resolved.state == "resolved"

    slack = receiver.on("/slack")
    assert [json.loads(p["body"])["text"].split(":")[0] for p in slack] == [
        "[loopml] FIRING",
        "[loopml] RESOLVED",
    ]
    hooks = receiver.on("/hook")
    assert [json.loads(p["body"])["event"] for p in hooks] == ["fired", "resolved"]
    for post in hooks:
        expected = hmac.new(SECRET.encode(), post["body"], hashlib.sha256).hexdigest()
        assert post["headers"]["X-Loopml-Signature"] == f"sha256={expected}"
    assert json.loads(hooks[0]["body"])["monitor"] == "drift"
    subjects = [message_from_bytes(m.content)["Subject"] for m in inbox]
    assert [s.split(":")[0] for s in subjects] == ["[loopml] FIRING", "[loopml] RESOLVED"]
    assert inbox[0].rcpt_tos == ["ops@example.com"]

    (alert,) = ws.alerts.alerts("default")
    assert alert.state == "resolved"
    assert alert.rule_id == rule.id
    assert len(alert.deliveries) == 6
    actions = {e.action for e in ws.audit.log(entity=f"alert:default/drift/{alert.id}")}
    assert {"alert.fired", "alert.acknowledged", "alert.resolved"} <= actions


def test_a_condition_must_hold_for_its_windows_and_cooldown_silences_flapping(
    alerting: Workspace, receiver: Receiver
) -> None:
    ws = alerting
    monitors.create("drift", deployment="churn-prod", reference="churn", window="10m", workspace=ws)
    ws.alerts.add_rule(
        "drift",
        when="drift_share > 0.3 for 2 windows",
        notify=[f"slack:{receiver.url}/slack"],
        project="default",
        cooldown_s=3600,
    )
    start = now_us() - 200 * MINUTE_US
    states = []
    for step, drifted in enumerate([True, True, False, True, True]):
        at = start + step * 20 * MINUTE_US
        _window(ws, drifted=drifted, at_us=at, seed=30 + step)
        result = monitors.run("drift", now_us=at, workspace=ws)
        states.append([a.state for a in result.alerts])
    assert states == [[], ["firing"], ["resolved"], [], ["firing"]]
    texts = [json.loads(p["body"])["text"].split(":")[0] for p in receiver.on("/slack")]
    assert texts == ["[loopml] FIRING", "[loopml] RESOLVED"]  # the reopening was silent
    assert len(ws.alerts.alerts("default")) == 1


def test_a_failing_channel_is_retried_and_the_failure_kept(
    alerting: Workspace, receiver: Receiver
) -> None:
    ws = alerting
    closed = f"http://127.0.0.1:{free_port()}/nobody"
    monitors.create("drift", deployment="churn-prod", reference="churn", window="10m", workspace=ws)
    ws.alerts.add_rule(
        "drift",
        when="drifted_count >= 1",
        notify=[f"webhook:{closed}", f"webhook:{receiver.url}/down", f"slack:{receiver.url}/ok"],
        project="default",
    )
    at = now_us()
    _window(ws, drifted=True, at_us=at, seed=50)
    (alert,) = monitors.run("drift", now_us=at, workspace=ws).alerts
    unreachable, server_error, fine = alert.deliveries
    assert (unreachable.ok, unreachable.attempts) == (False, 3)
    assert "Connection refused" in (unreachable.error or "")
    assert (server_error.ok, server_error.attempts) == (False, 3)
    assert len(receiver.on("/down")) == 3
    assert (fine.ok, fine.attempts) == (True, 1)
    assert ws.alerts.get(alert.id, "default").state == "firing"  # kept, whatever the channels


def test_bad_rules_are_refused_before_anything_is_stored(churn: Workspace) -> None:
    for when, notify, words in [
        ("drift_share is high", [], "cannot be read"),
        ("drift_share > 0.3 for soon", [], "not a duration"),
        ("drift_share > 0.3", ["pager:me"], "not one loopml can notify"),
        ("drift_share > 0.3", ["slack:hooks.example"], r"needs an http\(s\) URL"),
        ("drift_share > 0.3", ["email:nobody"], "not an email address"),
    ]:
        with pytest.raises(InvalidInput, match=words):
            churn.alerts.add_rule("drift", when=when, notify=notify, project="default")
    assert churn.alerts.rules("default") == []
    with pytest.raises(InvalidInput, match="Unknown alert state"):
        churn.alerts.alerts("default", state="burning")


def test_a_rule_on_the_deployment_hears_only_monitors_that_report_its_field(
    alerting: Workspace, receiver: Receiver
) -> None:
    ws = alerting
    monitors.create("drift", deployment="churn-prod", reference="churn", window="10m", workspace=ws)
    monitors.create("health", deployment="churn-prod", probe=receiver.url, workspace=ws)
    ws.alerts.add_rule("churn-prod", when="drift_share > 0.3", notify=["log:"], project="default")
    at = now_us()
    _window(ws, drifted=True, at_us=at, seed=90)
    (fired,) = monitors.run("drift", now_us=at, workspace=ws).alerts
    assert fired.state == "firing"
    probed = monitors.run("health", now_us=at + 1, workspace=ws)
    assert probed.document["down"] == 1  # the receiver answers no GET
    assert probed.alerts == []  # a health report has no drift_share: the alert stays as it is
    assert ws.alerts.get(fired.id, "default").state == "firing"


def test_an_alert_resolves_only_once_its_condition_has_cleared_for_its_runs(
    alerting: Workspace, receiver: Receiver
) -> None:
    """Hysteresis: `--resolve-after 2` keeps a flapping alert open through one calm window
    and resolves it after two in a row, telling the channel once each way."""
    ws = alerting
    monitors.create("drift", deployment="churn-prod", reference="churn", window="10m", workspace=ws)
    rule = ws.alerts.add_rule(
        "drift",
        when="drift_share > 0.5",
        notify=[f"slack:{receiver.url}/slack"],
        project="default",
        resolve_after=2,
    )
    assert (rule.resolve_after, rule.resolve_margin) == (2, 0.0)
    assert ws.alerts.rules("default") == [rule]  # kept by the store as given
    start = now_us() - 200 * MINUTE_US
    states = []
    for step, drifted in enumerate([True, False, True, False, False]):
        at = start + step * 20 * MINUTE_US
        _window(ws, drifted=drifted, at_us=at, seed=130 + step)
        result = monitors.run("drift", now_us=at, workspace=ws)
        states.append([a.state for a in result.alerts])
    assert states == [["firing"], [], [], [], ["resolved"]]
    texts = [json.loads(p["body"])["text"].split(":")[0] for p in receiver.on("/slack")]
    assert texts == ["[loopml] FIRING", "[loopml] RESOLVED"]


def test_bad_resolutions_are_refused_before_anything_is_stored(churn: Workspace) -> None:
    for after, margin, words in [
        (0, 0.0, "resolve_after is 0"),
        (-1, 0.0, "resolve_after is -1"),
        (1, -0.5, "resolve_margin is -0.5"),
    ]:
        with pytest.raises(InvalidInput, match=words):
            churn.alerts.add_rule(
                "drift", when="accuracy < 0.8", notify=[], project="default",
                resolve_after=after, resolve_margin=margin,
            )  # fmt: skip
    assert churn.alerts.rules("default") == []


def test_the_server_checks_a_rules_resolution_itself(make_settings: Any) -> None:
    """A client that skips the checks (any HTTP client) gets a clear 400 naming the field;
    nothing is stored."""
    import httpx

    from loopml.testing.team_server import live_server

    def rule(**resolution: Any) -> dict[str, Any]:
        return {
            "rule": {
                "id": 0, "project": "default", "target": "drift", "condition": "accuracy < 0.8",
                "channels": ["log:"], "cooldown_s": 0, "created_at": "2026-01-01T00:00:00Z",
                **resolution,
            },
            "event": {"action": "alert_rule.added", "entity": "alert:default/drift"},
        }  # fmt: skip

    with live_server(make_settings()) as server:
        path = f"{server.url}/api/v1/projects/default/alert-rules"
        headers = {"Authorization": f"Bearer {server.token}"}
        for resolution, words in [
            ({"resolve_after": 0}, "resolve_after is 0"),
            ({"resolve_after": -3}, "resolve_after is -3"),
            ({"resolve_after": 10**12}, "1 to 50 runs"),
            ({"resolve_margin": -0.1}, "resolve_margin is -0.1"),
        ]:
            answer = httpx.post(path, json=rule(**resolution), headers=headers)
            assert answer.status_code == 400, answer.text
            assert words in answer.json()["error"]
            assert answer.json()["type"] == "InvalidInput"
        assert server.workspace.alerts.rules("default") == []
        made = httpx.post(path, json=rule(resolve_after=3, resolve_margin=0.05), headers=headers)
        assert made.status_code == 200, made.text
        assert (made.json()["resolve_after"], made.json()["resolve_margin"]) == (3, 0.05)
        legacy = httpx.post(path, json=rule(), headers=headers)  # an older client: the defaults
        assert (legacy.json()["resolve_after"], legacy.json()["resolve_margin"]) == (1, 0.0)
