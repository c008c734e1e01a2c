"""Requests loopml makes on its own (health probes, webhooks, Slack) cannot be aimed at the
server's own network: a team server refuses loopback, private and link-local targets when they
are saved and again before every request (a record forced into the database is never
requested), unless an admin allows the range with `--allow-target`; the embedded workspace
still probes its own model server on loopback; redirects are not followed; and however an
address is spelled, the rule sees the address the connection would go to."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address, IPv6Address, ip_network
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.adapters.notify import ChannelNotifier
from loopml.adapters.outbound import OutboundClient
from loopml.bootstrap import Workspace, open_workspace
from loopml.domain.targets import TargetPolicy, kind_of, parse_networks
from loopml.errors import InvalidInput
from loopml.monitoring import monitors
from loopml.settings import Settings
from loopml.testing.team_server import LiveServer, free_port, live_server, wait_until_healthy

LOOPML = str(Path(sys.executable).parent / "loopml")
SERVER = TargetPolicy()
"""A team server's policy with no range allowed."""


class Receiver:
    """An HTTP server on 127.0.0.1 that keeps every request. It is a ready model server
    (`/v2/health/ready`, `/metrics`); `/moved` redirects to `redirect_to`."""

    def __init__(self, redirect_to: str = "") -> None:
        self.requests: list[tuple[str, str, str]] = []
        """(method, path, Host header) of every request."""
        seen = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                seen.append((self.command, self.path, self.headers.get("Host", "")))
                if self.path.startswith("/moved"):
                    self.send_response(302)
                    self.send_header("Location", redirect_to)
                    self.end_headers()
                    return
                body = b'{"ready": true}' if self.path.endswith("/ready") else b"# none\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


def _guarded(make_settings: Callable[..., Settings], *allowed: str) -> Settings:
    """A team server's settings (what `loopml server [--allow-target ...]` sets)."""
    return make_settings(guard_local_targets=True, allowed_targets=allowed)


def _editor(server: LiveServer, make_settings: Callable[..., Settings]) -> Workspace:
    """A client workspace of `server` for ed, an editor of project default."""
    ws = server.workspace
    ws.auth.create_user("ed")
    ws.auth.grant("default", "ed", "editor")
    token, _ = ws.auth.create_token("ed")
    return open_workspace(make_settings(server_url=server.url, token=token, actor="ed"))


def _wait(condition: Callable[[], Any], seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("the scheduler did not get there in time")


def test_a_team_server_refuses_a_loopback_probe_or_webhook_when_it_is_saved(
    make_settings: Callable[..., Settings], receiver: Receiver
) -> None:
    with live_server(_guarded(make_settings)) as server:
        ed = _editor(server, make_settings)
        try:
            with pytest.raises(InvalidInput, match=re.escape("--allow-target 127.0.0.1/32")):
                monitors.create("health", deployment="churn-prod", probe=receiver.url, workspace=ed)
            with pytest.raises(InvalidInput, match="loopback"):
                ed.alerts.add_rule(
                    "churn-prod", when="down >= 1", notify=[f"webhook:{receiver.url}/internal"],
                    project="default",
                )  # fmt: skip
            answer = httpx.post(
                f"{server.url}/api/v1/projects/default/alert-rules",
                headers={"Authorization": f"Bearer {server.token}"},
                json={
                    "rule": {
                        "id": 0, "project": "default", "target": "churn-prod",
                        "condition": "down >= 1", "channels": ["slack:http://169.254.169.254/"],
                        "cooldown_s": 0, "created_at": datetime.now(UTC).isoformat(),
                    },
                    "event": {"action": "alert.rule_added", "entity": "alert:default/churn-prod"},
                },
            )  # fmt: skip
            assert answer.status_code == 400, answer.text
            assert "link-local" in answer.json()["error"]
            assert "--allow-target" in answer.json()["hint"]
        finally:
            ed.close()
        assert server.workspace.monitors.list("default") == []
        assert server.workspace.alerts.rules("default") == []
    assert receiver.requests == []


def test_a_retrain_loops_webhook_is_checked_when_the_loop_is_saved(
    make_settings: Callable[..., Settings], receiver: Receiver
) -> None:
    """A loop tells people on its own channels: the server posts there, so they are checked
    at save time like an alert rule's."""
    from dataclasses import asdict

    from loopml.domain.loops import LoopSpec

    spec = LoopSpec(
        "default", "churn-loop", "churn-prod", "/src/pipeline.py:churn", ("every:7d",),
        "reference + labelled predictions of the last 30d", ("f1 >= champion.f1",),
        notify=(f"webhook:{receiver.url}/internal",),
    )  # fmt: skip
    with live_server(_guarded(make_settings)) as server:
        answer = httpx.post(
            f"{server.url}/api/v1/projects/default/loops",
            headers={"Authorization": f"Bearer {server.token}"},
            json={
                "spec": asdict(spec),
                "event": {"action": "loop.created", "entity": "loop:default/churn-loop"},
            },
        )
        assert answer.status_code == 400, answer.text
        assert "loopback" in answer.json()["error"]
        assert server.workspace.loops.list("default") == []
    assert receiver.requests == []


def test_a_record_forced_into_the_database_is_never_requested_and_the_refusal_is_kept(
    make_settings: Callable[..., Settings], receiver: Receiver
) -> None:
    with live_server(_guarded(make_settings), schedule_s=0.2) as server:
        ws = server.workspace  # the server's own stores: behind the API's back
        ws.monitors.save(
            "health", project="default", deployment="churn-prod", reference=None,
            summary_digest=None, window_s=60, every_s=1, probe_url=f"{receiver.url}/internal",
        )  # fmt: skip
        ws.alerts.add_rule(
            "health", when="down >= 1", notify=[f"webhook:{receiver.url}/hook"],
            project="default",
        )  # fmt: skip
        (alert,) = _wait(lambda: [a for a in ws.alerts.alerts("default") if a.deliveries])
        (run,) = ws.monitors.history("health", "default", 1)
        report = monitors.report_document(run.id, project="default", workspace=ws)
    assert receiver.requests == []
    assert report["down"] == 1
    assert "a loopback address" in report["error"]
    assert "--allow-target 127.0.0.1/32" in report["error"]
    (delivery,) = alert.deliveries
    assert (delivery.ok, delivery.attempts) == (False, 1)  # refused: not worth another try
    assert "--allow-target" in (delivery.error or "")


def test_an_allowed_range_lets_the_probe_and_the_webhook_through(
    make_settings: Callable[..., Settings], receiver: Receiver
) -> None:
    with live_server(_guarded(make_settings, "127.0.0.0/8"), schedule_s=0.2) as server:
        ed = _editor(server, make_settings)
        try:
            monitors.create(
                "health", deployment="churn-prod", probe=receiver.url, every=1, workspace=ed
            )
            ed.alerts.add_rule(
                "health", when="requests_total >= 0", notify=[f"webhook:{receiver.url}/hook"],
                project="default",
            )  # fmt: skip
        finally:
            ed.close()
        ws = server.workspace
        (alert,) = _wait(lambda: [a for a in ws.alerts.alerts("default") if a.deliveries])
    paths = [path for _, path, _ in receiver.requests]
    assert "/v2/health/ready" in paths
    assert "/metrics" in paths
    assert [d.ok for d in alert.deliveries] == [True]
    assert "/hook" in paths


def test_loopml_server_guards_by_default_and_names_a_bad_range(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env["LOOPML_HOME"] = str(tmp_path / "home")
    bad = subprocess.run(
        [LOOPML, "server", "--allow-target", "10.0.0.300/8"], env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 1
    assert "'10.0.0.300/8' is not an address range" in bad.stderr
    subprocess.run([LOOPML, "users", "create", "ed", "--role", "editor"], env=env, check=True)
    token = subprocess.run(
        [LOOPML, "tokens", "create", "ed"], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [LOOPML, "server", "--port", str(port), "--no-schedule"], env=env, stdout=out,
            stderr=out,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_healthy(url, process, log)
            client = open_workspace(
                Settings.from_env(env={"LOOPML_SERVER": url, "LOOPML_TOKEN": token}, cwd=tmp_path)
            )
            try:
                with pytest.raises(InvalidInput, match="does not send requests to"):
                    client.alerts.add_rule(
                        "x", when="down >= 1", notify=["webhook:http://localhost:9/x"],
                        project="default",
                    )  # fmt: skip
            finally:
                client.close()
        finally:
            process.terminate()
            process.wait(30)


def test_the_embedded_workspace_probes_its_own_model_server_on_loopback(
    make_settings: Callable[..., Settings], receiver: Receiver
) -> None:
    ws = open_workspace(make_settings())
    try:
        monitors.create("health", deployment="churn-prod", probe=receiver.url, workspace=ws)
        result = monitors.run("health", workspace=ws)
    finally:
        ws.close()
    assert result.document["ready"] is True
    assert result.document["down"] == 0
    assert ("GET", "/v2/health/ready", f"127.0.0.1:{receiver.port}") in receiver.requests


def test_redirects_are_not_followed(make_settings: Callable[..., Settings]) -> None:
    inside = Receiver()
    moving = Receiver(redirect_to=f"{inside.url}/v2/health/ready")
    try:
        allowed = TargetPolicy(parse_networks(["127.0.0.1/32"]))
        notifier = ChannelNotifier(policy=allowed, attempts=2, backoff_s=0.01)
        delivery = notifier.deliver(f"webhook:{moving.url}/moved", "fired", "x", {})
        ws = open_workspace(make_settings())
        try:
            monitors.create("health", deployment="d", probe=f"{moving.url}/moved", workspace=ws)
            probed = monitors.run("health", workspace=ws).document
        finally:
            ws.close()
        metadata = OutboundClient(allowed).request("GET", f"{moving.url}/moved-to-metadata")
    finally:
        inside.close()
        moving.close()
    assert (delivery.ok, delivery.attempts) == (False, 1)
    assert "does not follow redirects" in (delivery.error or "")
    assert probed["down"] == 1
    assert "redirects are not followed" in probed["error"]
    assert metadata.status == 302  # the answer itself, never the place it points at
    assert inside.requests == []


def test_a_name_is_resolved_once_every_address_checked_and_the_checked_one_connected(
    receiver: Receiver,
) -> None:
    def resolve(table: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
        return lambda host, port: table[host]

    rebound = OutboundClient(SERVER, resolve=resolve({"hooks.test": ["127.0.0.1"]}))
    with pytest.raises(
        InvalidInput, match=re.escape("'http://hooks.test/x' resolves to 127.0.0.1")
    ):
        rebound.request("POST", "http://hooks.test/x")
    mixed = OutboundClient(SERVER, resolve=resolve({"mixed.test": ["93.184.216.34", "10.0.0.1"]}))
    with pytest.raises(InvalidInput, match=re.escape("10.0.0.1, a private-network address")):
        mixed.check("https://mixed.test/")
    allowed = TargetPolicy(parse_networks(["127.0.0.1/32"]))
    pinned = OutboundClient(allowed, resolve=resolve({"model.test": ["127.0.0.1"]}))
    answer = pinned.request("GET", f"http://model.test:{receiver.port}/v2/health/ready")
    assert answer.status == 200  # "model.test" is in no DNS: the checked address was used
    assert receiver.requests == [("GET", "/v2/health/ready", f"model.test:{receiver.port}")]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/", "http://2130706433/", "http://0177.0.0.1/", "http://0x7f.1/",
        "http://127.1/", "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://localhost/",
        "http://0.0.0.0/", "http://[::]/", "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/", "http://10.1.2.3/", "http://100.64.0.1/", "http://[fd00::1]/",
        "http://224.0.0.1/", "http://user:pw@127.0.0.1:22/",
    ],
)  # fmt: skip
def test_every_spelling_of_an_internal_address_is_refused_on_a_server(url: str) -> None:
    with pytest.raises(InvalidInput, match="does not send requests to"):
        OutboundClient(SERVER).check(url)


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "http:///x", "x"])
def test_only_http_urls_with_a_host_are_requested(url: str) -> None:
    with pytest.raises(InvalidInput, match="not an http"):
        OutboundClient(TargetPolicy(local=True)).check(url)


ipv4 = st.integers(0, 2**32 - 1).map(IPv4Address)
ipv6 = st.integers(0, 2**128 - 1).map(IPv6Address)
policies = st.builds(
    TargetPolicy,
    st.lists(st.tuples(ipv4 | ipv6, st.integers(0, 128)), max_size=3).map(
        lambda pairs: tuple(
            ip_network(f"{a}/{min(p, a.max_prefixlen)}", strict=False) for a, p in pairs
        )
    ),
    st.booleans(),
)


@given(ipv4)
def test_a_server_reaches_exactly_the_public_unicast_ipv4_addresses(address: IPv4Address) -> None:
    allowed = SERVER.refusal(address) is None
    assert allowed == (address.is_global and not address.is_multicast)


@given(ipv4, policies)
def test_an_ipv4_address_mapped_into_ipv6_is_judged_as_itself(
    address: IPv4Address, policy: TargetPolicy
) -> None:
    mapped = IPv6Address(f"::ffff:{address}")
    assert policy.refusal(mapped) == policy.refusal(address)


@given(ipv4 | ipv6, policies)
def test_an_allowed_range_allows_every_address_in_it_and_only_ever_widens(
    address: IPv4Address | IPv6Address, policy: TargetPolicy
) -> None:
    network = ip_network(f"{address}/{address.max_prefixlen - 4}", strict=False)
    wider = TargetPolicy((*policy.allowed, network), policy.local)
    assert wider.refusal(address) is None
    if policy.refusal(address) is None:
        assert wider.refusal(address) is None


@given(ipv4 | ipv6)
def test_the_workspace_allows_loopback_and_private_and_nothing_else_more_than_a_server(
    address: IPv4Address | IPv6Address,
) -> None:
    on_server, on_laptop = SERVER.refusal(address), TargetPolicy(local=True).refusal(address)
    if on_server is None:
        assert on_laptop is None
    if on_laptop is None and on_server is not None:
        assert on_server in ("loopback", "private")
    if address.version == 4 and address.is_link_local:
        assert on_laptop == "link-local"  # cloud metadata stays out of reach everywhere


@given(ipv4, st.sampled_from(["decimal", "octal", "hex"]))
def test_a_numeric_spelling_is_judged_as_the_address_it_connects_to(
    address: IPv4Address, spelling: str
) -> None:
    octets = str(address).split(".")
    host = {
        "decimal": str(int(address)),
        "octal": ".".join(f"0{int(o):o}" for o in octets),
        "hex": ".".join(f"0x{int(o):x}" for o in octets),
    }[spelling]
    refusal = SERVER.refusal(address)
    client = OutboundClient(SERVER)
    if refusal is None:
        assert client.check(f"http://{host}/").address == address
    else:
        with pytest.raises(InvalidInput, match=re.escape(f"resolves to {address},")):
            client.check(f"http://{host}/")
    assert kind_of(address) in ("public", refusal)


@given(st.text(max_size=40))
def test_a_range_is_parsed_or_refused_with_its_text(text: str) -> None:
    try:
        expected = ip_network(text.strip(), strict=False)
    except ValueError:
        with pytest.raises(InvalidInput, match=r"is not an address range\..*--allow-target"):
            parse_networks([text])
    else:
        assert parse_networks([text]) == (expected,)


def test_a_receiver_answer_larger_than_the_cap_is_not_read(receiver: Receiver) -> None:
    client = OutboundClient(TargetPolicy(local=True))
    with pytest.raises(InvalidInput, match="larger than 4 bytes"):
        client.request("GET", f"{receiver.url}/v2/health/ready", max_bytes=4)
    assert json.loads(client.request("GET", f"{receiver.url}/v2/health/ready").body) == {
        "ready": True
    }
