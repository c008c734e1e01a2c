"""The web UI's pages over HTTP, without a browser: bad addresses get an error page that names
the problem (never a 500 or a traceback), a page without a session leads to the login page and
back, a login cannot redirect off the site, and changes from a viewer or from another site are
refused with nothing changed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest

from loopml.settings import Settings
from loopml.testing.team_server import LiveServer, live_server


@pytest.fixture
def site(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    """A team server (auth on) with model churn versions 1 and 2, 1 the champion, and vera, a
    viewer of default."""
    from sklearn.dummy import DummyClassifier

    with live_server(make_settings()) as server:
        ws = server.workspace
        for _ in range(2):
            model = DummyClassifier().fit([[0], [1]], [0, 1])
            ws.registry.register(model, "churn", project="default")
        ws.registry.promote("churn", 1, project="default")
        ws.auth.create_user("vera")
        ws.auth.grant("default", "vera", "viewer")
        yield server


@contextmanager
def _session(site: LiveServer, token: str) -> Iterator[httpx.Client]:
    """A browser-like client of `site`, logged in with `token` (its changes carry the site's
    Origin, as a browser's do)."""
    with httpx.Client(base_url=site.url, headers={"Origin": site.url}) as http:
        assert http.post("/ui/login", data={"token": token}).status_code == 303
        yield http


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/ui/runs/not-a-run", 400, "is not a run id"),
        ("/ui/runs/" + "0" * 32, 404, "does not exist"),
        ("/ui/data/churn/abc?project=default", 400, "malformed"),
        ("/ui/data/nothing?project=default", 404, "nothing"),
        ("/ui/models/churn/9?project=default", 404, "churn"),
        ("/ui/compare?project=default&run=" + "a" * 32, 400, "a comparison takes 2 to 10"),
        ("/ui/deployments/nowhere?project=default", 404, "nowhere"),
        ("/ui/monitors/x?project=default", 404, "x"),
        ("/ui/runs?project=Bad%20Name", 400, "project"),
        ("/ui/runs?project=default&filter=metrics.f1+%3E%3E+1", 200, "^"),
        ("/ui/no-such-page", 404, "There is no page"),
    ],
)
def test_bad_addresses_get_a_page_that_says_what_is_wrong(
    site: LiveServer, path: str, status: int, says: str
) -> None:
    with _session(site, site.token) as http:
        answer = http.get(path)
    assert answer.status_code == status, answer.text[:500]
    assert "text/html" in answer.headers["content-type"]
    assert says in answer.text
    assert "Traceback" not in answer.text


def test_without_a_session_the_login_page_leads_back_and_never_off_the_site(
    site: LiveServer,
) -> None:
    with httpx.Client(base_url=site.url, headers={"Origin": site.url}) as http:
        away = http.get("/ui/models/churn?project=default")
        assert away.status_code == 303
        assert away.headers["location"].startswith("/ui/login?next=%2Fui%2Fmodels%2Fchurn")
        bad = http.post("/ui/login", data={"token": "lml_wrong", "next": "/ui/audit"})
        assert bad.status_code == 401
        assert "not known" in bad.text
        good = http.post("/ui/login", data={"token": site.token, "next": "https://evil.test/x"})
        assert good.status_code == 303
        assert good.headers["location"] == "/ui/runs"  # not off the site
        cookie = good.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert http.get("/ui/runs?project=default").status_code == 200


def test_a_viewer_and_another_site_cannot_change_anything(site: LiveServer) -> None:
    ws = site.workspace
    vera, _ = ws.auth.create_token("vera")
    before = ws.audit.head().seq
    with _session(site, vera) as http:
        page = http.get("/ui/models/churn?project=default")
        assert page.status_code == 200
        assert "Promote to champion" not in page.text
        refused = http.post("/ui/models/churn/2/promote?project=default")
        assert refused.status_code == 403
        assert "this needs admin" in refused.text
    with _session(site, site.token) as http:
        forged = http.post(
            "/ui/models/churn/2/promote?project=default",
            headers={"Origin": "https://evil.test"},
        )
        assert forged.status_code == 403
        assert "another site" in forged.text
        unsigned = http.post(
            "/ui/models/churn/2/promote?project=default", headers={"Origin": ""}
        )  # no Origin and no Referer: a browser always sends one of them
        assert unsigned.status_code == 403
        done = http.post("/ui/models/churn/2/promote?project=default")
        assert done.status_code == 303
    assert ws.registry.resolve("churn@champion", "default").version == 2
    actions = [e.action for e in ws.audit.log(entity="model:default/churn", limit=10)]
    assert actions[0] == "model.promoted"
    assert ws.audit.head().seq == before + 1  # the admin's promotion, and nothing else


@pytest.mark.parametrize(
    "path", ["/", "/ui", "/ui/login", "/ui/runs?project=default", "/api/v1/health"]
)
def test_head_answers_like_get_without_a_body(site: LiveServer, path: str) -> None:
    with _session(site, site.token) as http:
        got = http.get(path)
        head = http.head(path)
    assert head.status_code == got.status_code
    assert head.content == b""
    assert head.headers.get("location") == got.headers.get("location")
    for header in ("content-type", "content-length"):
        assert head.headers.get(header) == got.headers.get(header)


def test_head_is_no_way_around_a_route_that_takes_no_get(site: LiveServer) -> None:
    with _session(site, site.token) as http:
        assert http.head("/ui/logout").status_code == http.get("/ui/logout").status_code == 405
