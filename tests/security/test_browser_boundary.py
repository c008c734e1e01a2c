"""The browser boundary: `loopml ui` and the team server answer only to their own names (a page
whose name was rebound to 127.0.0.1 is refused before any route runs), take a change only from
their own pages, keep the UI session on the server (the cookie is a random id, never the
token, and stops working at logout, revocation, disabling and expiry), load nothing from
another origin, show no text taken from the address on the login page, and name no folder of
the server in an error."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from loopml.adapters.sql import tables as t
from loopml.bootstrap import Workspace, open_workspace
from loopml.errors import InvalidInput, NotFound
from loopml.server.app import redactor
from loopml.server.boundary import AllowedHosts, parse_host
from loopml.settings import Settings
from loopml.testing.team_server import LiveServer, free_port, live_server, wait_until_healthy

LOOPML = str(Path(sys.executable).parent / "loopml")
COOKIE = "loopml_session"


def _two_versions(ws: Workspace) -> None:
    """Model churn versions 1 and 2, version 1 the champion."""
    from sklearn.dummy import DummyClassifier

    for _ in range(2):
        ws.registry.register(DummyClassifier().fit([[0], [1]], [0, 1]), "churn", project="default")
    ws.registry.promote("churn", 1, project="default")


@pytest.fixture
def ui(tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    """`loopml ui` as a process over a workspace with churn 1 (champion) and 2: its URL and the
    workspace's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env["LOOPML_HOME"] = str(tmp_path / "home")
    settings = Settings.from_env(env=env)
    ws = open_workspace(settings)
    _two_versions(ws)
    ws.close()
    port = free_port()
    log = tmp_path / "ui.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [LOOPML, "ui", "--port", str(port)], env=env, stdout=out, stderr=out
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_healthy(url, process, log)
            yield url, settings
        finally:
            process.terminate()
            process.wait(30)


def _champion_and_head(settings: Settings) -> tuple[int, int]:
    ws = open_workspace(settings)
    try:
        return ws.registry.resolve("churn@champion", "default").version, ws.audit.head().seq
    finally:
        ws.close()


def test_loopml_ui_refuses_a_rebound_host_name_before_any_route(
    ui: tuple[str, Settings],
) -> None:
    url, settings = ui
    port = url.rsplit(":", 1)[1]
    before = _champion_and_head(settings)
    rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    page = httpx.get(f"{url}/ui/models/churn?project=default", headers=rebound)
    assert page.status_code == 400
    assert "evil.example" in page.text
    assert "Promote to champion" not in page.text  # nothing of the workspace was shown
    api = httpx.get(f"{url}/api/v1/projects", headers=rebound)
    assert api.status_code == 400
    assert "--allowed-host" in api.json()["hint"]
    promote = httpx.post(f"{url}/ui/models/churn/2/promote?project=default", headers=rebound)
    assert promote.status_code == 400
    assert _champion_and_head(settings) == before  # the champion did not move, nothing audited


def test_loopml_ui_takes_a_change_only_from_its_own_pages(ui: tuple[str, Settings]) -> None:
    url, settings = ui
    port = url.rsplit(":", 1)[1]
    before = _champion_and_head(settings)
    promote = f"{url}/ui/models/churn/2/promote?project=default"
    for origin in ["https://evil.example", f"http://127.0.0.1:{int(port) + 1}", "null"]:
        refused = httpx.post(promote, headers={"Origin": origin})
        assert refused.status_code == 403, origin
    assert httpx.post(promote).status_code == 403  # a form post without Origin or Referer
    forged = httpx.post(f"{url}/api/v1/projects/stolen", headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403  # the API without a token is no way around
    assert _champion_and_head(settings) == before
    done = httpx.post(promote, headers={"Origin": f"http://localhost:{port}"})
    assert done.status_code == 303
    assert _champion_and_head(settings)[0] == 2


@pytest.fixture
def site(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    """A team server (auth on) with churn 1 (champion) and 2, and vera, a viewer of default."""
    with live_server(make_settings()) as server:
        _two_versions(server.workspace)
        server.workspace.auth.create_user("vera")
        server.workspace.auth.grant("default", "vera", "viewer")
        yield server


def _log_in(site: LiveServer, token: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{site.url}/ui/login", data={"token": token}, headers={"Origin": site.url, **headers}
    )


def _page(site: LiveServer, session: str) -> httpx.Response:
    """The models page with session cookie `session`."""
    with httpx.Client(base_url=site.url, cookies={COOKIE: session}) as http:
        return http.get("/ui/models/churn?project=default")


def _sessions(ws: Workspace) -> list[tuple[str, int]]:
    with ws.db.read() as conn:
        rows = conn.execute(select(t.ui_sessions.c.hash, t.ui_sessions.c.token_id)).all()
    return [(str(r.hash), int(r.token_id)) for r in rows]


def test_the_session_cookie_is_a_server_side_id_never_the_token(site: LiveServer) -> None:
    ws = site.workspace
    token, record = ws.auth.create_token("vera")
    answer = _log_in(site, token)
    assert answer.status_code == 303
    assert token not in answer.headers["set-cookie"]
    session = answer.cookies[COOKIE]
    assert session != token
    assert _sessions(ws) == [(hashlib.sha256(session.encode()).hexdigest(), record.id)]
    assert _page(site, session).status_code == 200
    assert _page(site, token).status_code == 303  # the token itself is no session
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "secure" not in cookie  # plain http here


def test_a_session_ends_at_logout(site: LiveServer) -> None:
    session = _log_in(site, site.token).cookies[COOKIE]
    with httpx.Client(base_url=site.url, cookies={COOKIE: session}) as http:
        out = http.post("/ui/logout", headers={"Origin": site.url})
    assert out.status_code == 303
    assert out.headers["location"] == "/ui/login?message=logged-out"
    again = _page(site, session)  # a copy of the cookie kept by someone
    assert again.status_code == 303
    assert again.headers["location"].startswith("/ui/login?")
    assert _sessions(site.workspace) == []


def test_a_session_ends_when_its_token_is_revoked_or_its_user_disabled(site: LiveServer) -> None:
    ws = site.workspace
    token, record = ws.auth.create_token("vera")
    first = _log_in(site, token).cookies[COOKIE]
    ws.auth.revoke_token(record.id)
    assert _page(site, first).status_code == 303
    other, _ = ws.auth.create_token("vera")
    second = _log_in(site, other).cookies[COOKIE]
    assert _page(site, second).status_code == 200
    ws.auth.disable_user("vera")
    assert _page(site, second).status_code == 303


def test_a_session_ends_when_it_expires_and_the_login_page_says_so(site: LiveServer) -> None:
    ws = site.workspace
    session = _log_in(site, site.token).cookies[COOKIE]
    assert _page(site, session).status_code == 200
    with ws.db.write() as conn:
        conn.execute(t.ui_sessions.update().values(expires_us=1))
    gone = _page(site, session)
    assert gone.status_code == 303
    assert "message=expired" in gone.headers["location"]
    login = httpx.get(site.url + gone.headers["location"])
    assert "Your session has ended. Log in again." in login.text


def test_the_cookie_is_secure_behind_an_https_proxy(site: LiveServer) -> None:
    # uvicorn trusts X-Forwarded-Proto from 127.0.0.1 (a proxy on this machine) by default
    answer = _log_in(site, site.token, **{"X-Forwarded-Proto": "https"})
    assert answer.status_code == 303
    assert "secure" in answer.headers["set-cookie"].lower()


@pytest.mark.parametrize(
    "query",
    [
        "message=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "message=Your+account+is+locked.+Call+555-0100",
        "next=/ui/runs&message=expired%3Cscript%3E",
    ],
)
def test_the_login_page_shows_no_text_from_its_address(site: LiveServer, query: str) -> None:
    page = httpx.get(f"{site.url}/ui/login?{query}")
    assert page.status_code == 200
    assert "script" not in page.text.lower()
    assert "555-0100" not in page.text
    assert 'role="alert"' not in page.text


def test_a_page_announces_only_its_fixed_notices(site: LiveServer) -> None:
    session = _log_in(site, site.token).cookies[COOKIE]
    with httpx.Client(base_url=site.url, cookies={COOKIE: session}) as http:
        forged = http.get("/ui/models/churn?project=default&notice=Send+your+token+to+x")
        assert "Send your token" not in forged.text
        shown = http.get("/ui/models/churn?project=default&notice=promoted&version=2&was=1")
        assert "Version 2 is the champion (was 1)." in shown.text


def test_the_team_server_answers_only_to_its_names_but_health_to_any(site: LiveServer) -> None:
    bearer = {"Authorization": f"Bearer {site.token}"}
    for path in ["/api/v1/projects", "/ui/runs", "/metrics", "/api/v1/openapi.json"]:
        refused = httpx.get(site.url + path, headers={**bearer, "Host": "evil.example"})
        assert refused.status_code == 400, path
    assert httpx.get(site.url + "/api/v1/projects", headers=bearer).status_code == 200
    health = httpx.get(site.url + "/api/v1/health", headers={"Host": "10.0.0.7:5000"})
    assert health.status_code == 200  # a load balancer probes by address


def test_pages_load_nothing_from_another_origin(site: LiveServer) -> None:
    assert httpx.get(f"{site.url}/api/v1/docs").status_code == 404  # off unless --docs
    assert httpx.get(f"{site.url}/api/v1/openapi.json").status_code == 200
    session = _log_in(site, site.token).cookies[COOKIE]
    page = _page(site, session)
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"
    assert "onsubmit=" not in page.text
    assert "cdn" not in page.text
    assert httpx.get(f"{site.url}/ui/static/loopml.js").status_code == 200


def test_no_error_names_a_folder_of_the_server(site: LiveServer, tmp_path: Path) -> None:
    ws = site.workspace
    with ws.tracking.start_run(project="default", name="r") as run:
        run.log_text("hello", "notes.txt")
    root = Path(ws.settings.artifacts_url)
    for blob in (root / "blobs").rglob("*"):
        if blob.is_file():
            blob.unlink()  # the stored bytes are gone: every read of them fails
    session = _log_in(site, site.token).cookies[COOKIE]
    with httpx.Client(base_url=site.url, cookies={COOKIE: session}) as http:
        page = http.get(f"/ui/runs/{run.id}/artifacts/notes.txt")
    assert page.status_code == 404, page.text[:300]
    assert "the server&#39;s artifact store" in page.text
    for shown in (page.text, page.text.replace("&#39;", "'")):
        assert str(root) not in shown
        assert str(ws.settings.home) not in shown
        assert str(tmp_path) not in shown


def test_the_redactor_replaces_every_store_path_by_a_word(tmp_path: Path) -> None:
    settings = Settings.from_env(env={"LOOPML_HOME": str(tmp_path / "home")})
    ws = open_workspace(settings)
    try:
        with pytest.raises(NotFound) as missing:
            ws.blobs.read_bytes("blake3:" + "0" * 64)  # type: ignore[arg-type]
    finally:
        ws.close()
    assert settings.artifacts_url in missing.value.message  # what the store says, inside
    shown = redactor(settings)(missing.value.message)
    assert settings.artifacts_url not in shown
    assert "the server's artifact store" in shown
    assert redactor(settings)(f"at {settings.db_url}.") == "at the server's database."


def test_hosts_are_matched_by_name_and_port() -> None:
    ui_hosts = AllowedHosts(["127.0.0.1:5000", "localhost:5000"])
    assert ui_hosts.allows_host_header("127.0.0.1:5000", "http")
    assert ui_hosts.allows_host_header("LOCALHOST:5000", "http")
    assert not ui_hosts.allows_host_header("127.0.0.1:5001", "http")
    assert not ui_hosts.allows_host_header("evil.example:5000", "http")
    assert not ui_hosts.allows_host_header("127.0.0.1", "http")  # port 80
    assert not ui_hosts.allows_host_header("", "http")
    assert ui_hosts.allows_origin("http://localhost:5000")
    assert not ui_hosts.allows_origin("http://localhost:8080")  # another app on this machine
    assert not ui_hosts.allows_origin("null")
    wildcard = AllowedHosts(["localhost:5000", "ml.example.com"], any_address_on=5000)
    assert wildcard.allows_host_header("10.1.2.3:5000", "http")
    assert wildcard.allows_host_header("[fd00::1]:5000", "http")
    assert not wildcard.allows_host_header("10.1.2.3:6000", "http")
    assert wildcard.allows_host_header("ml.example.com", "https")
    assert not wildcard.allows_host_header("ml.example.com.evil.example", "https")
    with pytest.raises(InvalidInput, match="not a host name"):
        AllowedHosts(["http://ml.example.com/"])


def test_loopml_server_answers_to_its_bind_address_localhost_and_the_names_given() -> None:
    from loopml.cli.server import _served_hosts

    local = _served_hosts("127.0.0.1", 5000, [])
    assert local.allows_host_header("127.0.0.1:5000", "http")
    assert local.allows_host_header("localhost:5000", "http")
    assert not local.allows_host_header("10.0.0.5:5000", "http")
    named = _served_hosts("10.0.0.5", 5000, ["ml.example.com"])
    assert named.allows_host_header("10.0.0.5:5000", "http")
    assert named.allows_host_header("ml.example.com", "https")  # behind a proxy on 443
    assert not named.allows_host_header("10.0.0.6:5000", "http")
    everywhere = _served_hosts("0.0.0.0", 5000, [])
    assert everywhere.allows_host_header("192.168.1.20:5000", "http")
    assert not everywhere.allows_host_header("printer.lan:5000", "http")  # names: --allowed-host


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-", min_size=1, max_size=20)


@given(names, st.integers(1, 65535), names)
def test_a_host_header_passes_only_when_it_names_an_allowed_host(
    name: str, port: int, other: str
) -> None:
    hosts = AllowedHosts([f"{name}:{port}"])
    assert hosts.allows_host_header(f"{name}:{port}", "http")
    assert hosts.allows_host_header(f"{other}:{port}", "http") == (other == name)


@given(st.text(max_size=40))
def test_a_host_is_parsed_or_refused_with_a_clear_error(text: str) -> None:
    try:
        host = parse_host(text)
    except InvalidInput as refused:
        assert "host name" in refused.message  # noqa: PT017
    else:
        assert host.name == host.name.strip().lower()
