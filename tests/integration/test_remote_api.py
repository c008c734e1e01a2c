"""The team server's REST API is the one table of operations: every route is an entry and every
entry a route, the table stays free of HTTP frameworks, and a spec sent straight over HTTP (not
through the CLI) is checked by the same function the CLI's path uses."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from loopml.remote_api.operations import OPERATIONS
from loopml.settings import Settings
from loopml.testing.team_server import LiveServer, live_server

API = "/api/v1"
NOW = datetime(2026, 1, 1, tzinfo=UTC).isoformat()


@pytest.fixture
def served(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    with live_server(make_settings()) as server:
        yield server


def _send(server: LiveServer, method: str, path: str, body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.token}"}
    return httpx.request(method, f"{server.url}{API}{path}", json=body, headers=headers)


def test_every_route_is_an_entry_of_the_table_and_every_entry_a_route(served: LiveServer) -> None:
    spec = httpx.get(f"{served.url}{API}/openapi.json").json()
    routes = {
        (method.upper(), path.removeprefix(API))
        for path, operations in spec["paths"].items()
        for method in operations
    } - {("GET", "/health")}
    declared = {(op.verb, op.path.replace(":path}", "}")) for op in OPERATIONS}
    assert routes == declared


def test_the_table_imports_no_http_framework() -> None:
    code = (
        "import sys, loopml.remote_api.operations; "
        "print(sorted({'fastapi', 'starlette', 'httpx', 'pydantic'} & set(sys.modules)))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"


def _monitor(**changes: Any) -> dict[str, Any]:
    monitor = {
        "project": "default", "name": "drift", "deployment": "churn", "reference": "data@1",
        "summary_digest": None, "window_s": 3600, "every_s": 600, "created_at": NOW,
        "updated_at": NOW, "probe_url": None,
    }  # fmt: skip
    return {
        "monitor": {**monitor, **changes},
        "event": {"action": "x", "entity": "monitor:default/drift"},
    }


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"window_s": 0}, "The window is 0 s; it must be positive."),
        ({"every_s": -60}, "The schedule is -60 s; it must be positive."),
        ({"reference": None}, "A monitor watches drift (a reference dataset) or health"),
        ({"reference": None, "probe_url": "ftp://host"}, "is not http(s)"),
        ({"deployment": "../churn"}, "'../churn'"),
    ],
    ids=["window", "schedule", "neither-drift-nor-health", "probe-not-http", "deployment-name"],
)
def test_the_server_refuses_a_bad_monitor_sent_over_http(
    served: LiveServer, changes: dict[str, Any], said: str
) -> None:
    answer = _send(served, "PUT", "/projects/default/monitors/drift", _monitor(**changes))
    assert answer.status_code == 400, answer.text
    assert answer.json()["type"] == "InvalidInput"
    assert said in answer.json()["error"]
    assert _send(served, "GET", "/projects/default/monitors", None).json() == []


def _rule(**changes: Any) -> dict[str, Any]:
    rule = {
        "id": 0, "project": "default", "target": "drift", "condition": "drift_share > 0.3",
        "channels": ["log:"], "cooldown_s": 3600, "created_at": NOW, "resolve_after": 1,
        "resolve_margin": 0.0,
    }  # fmt: skip
    return {"rule": {**rule, **changes}, "event": {"action": "x", "entity": "alert:default/drift"}}


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"condition": "drift_share >>> lots"}, "cannot be read"),
        ({"condition": "drift_share > 0.3 for 0 windows"}, "asks for 0 windows"),
        ({"channels": ["pager:42"]}, "is not one loopml can notify"),
        ({"channels": ["email:nobody"]}, "is not an email address"),
        ({"cooldown_s": -5}, "Cooldown -5 s is negative."),
        ({"resolve_after": 0}, "resolve"),
        ({"target": "a b"}, "'a b'"),
    ],
    ids=["condition", "zero-windows", "channel-kind", "email", "cooldown", "resolve", "target"],
)
def test_the_server_refuses_a_bad_alert_rule_sent_over_http(
    served: LiveServer, changes: dict[str, Any], said: str
) -> None:
    answer = _send(served, "POST", "/projects/default/alert-rules", _rule(**changes))
    assert answer.status_code == 400, answer.text
    assert answer.json()["type"] == "InvalidInput"
    assert said in answer.json()["error"]
    assert _send(served, "GET", "/projects/default/alert-rules", None).json() == []


def test_the_server_keeps_a_rule_as_the_cli_would_write_it(served: LiveServer) -> None:
    """A rule sent with no channel gets `log:`, as `loopml alert rule add` gives it."""
    answer = _send(served, "POST", "/projects/default/alert-rules", _rule(channels=[]))
    assert answer.status_code == 200, answer.text
    assert answer.json()["channels"] == ["log:"]
