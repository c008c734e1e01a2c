"""What every page shares: the templates, the caller (from the session cookie), the project they
look at, value formatting, and HTML error pages."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from loopml.domain.refs import check_name
from loopml.errors import Forbidden, LoopmlError, Unauthenticated, http_status
from loopml.services.auth import Principal

if TYPE_CHECKING:
    from jinja2 import Environment

    from loopml.bootstrap import Workspace
    from loopml.ports import PredictionReader

BASE = "/ui"
COOKIE = "loopml_session"
LOGIN_MESSAGES = {
    "expired": "Your session has ended. Log in again.",
    "logged-out": "You are logged out.",
}
"""What the login page may say, by the key in its address (`?message=expired`)."""
NOTICES = {
    "promoted": "Version {version} is the champion{was}.",
    "rolled-back": "Champion rolled back from version {current} to {previous}.",
}
"""What a page may announce after a change, by key, with whole numbers from its address."""
SECTIONS = (
    ("runs", "Runs"),
    ("data", "Data"),
    ("models", "Models"),
    ("deployments", "Deployments"),
    ("monitors", "Monitors"),
    ("alerts", "Alerts"),
    ("loops", "Loops"),
    ("audit", "Audit"),
)
TEMPLATES = Path(__file__).parent / "templates"


def _environment() -> Environment:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(when=when, micros=micros, seconds=seconds, number=number, base=BASE)
    return env


def when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def micros(value: int | None) -> str:
    """A time in microseconds since the epoch, in UTC."""
    if value is None:
        return ""
    return when(datetime.fromtimestamp(value / 1e6, tz=UTC))


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 60:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min" if value < 3600 else f"{value / 3600:.1f} h"


def number(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.4g}"


@dataclass
class Page:
    """One request to the UI: who asks, about which project."""

    request: Request
    who: Principal
    project: str


class Views:
    """Renders pages for the caller; `who(request)` finds the caller or raises Unauthenticated."""

    def __init__(self, ws: Workspace, who: Callable[[Request], Principal], *, auth: bool) -> None:
        self.ws = ws
        self.auth = auth
        self._who = who
        self._env: Environment | None = None
        self._log_reader: PredictionReader | None = None
        self._kept: dict[Any, Any] = {}

    def remember(self, key: Any, make: Callable[[], Any], most: int = 4) -> Any:
        """`make()` once per `key`, keeping the `most` last used (loaded models, say)."""
        if key in self._kept:
            self._kept[key] = self._kept.pop(key)
            return self._kept[key]
        value = make()
        self._kept[key] = value
        while len(self._kept) > most:
            self._kept.pop(next(iter(self._kept)))
        return value

    def log_reader(self) -> PredictionReader:
        """The reader of the prediction log under the workspace's artifact root."""
        if self._log_reader is None:
            from loopml.bootstrap import prediction_log_reader

            self._log_reader = prediction_log_reader(self.ws.settings)
        return self._log_reader

    @property
    def env(self) -> Environment:
        if self._env is None:
            self._env = _environment()
        return self._env

    def caller(self, request: Request) -> Principal:
        return self._who(request)

    def page(self, request: Request, needed: str = "viewer", project: str | None = None) -> Page:
        """The caller and `project` (by default the one of `?project=`), checked to hold
        `needed` there."""
        who = self._who(request)
        if project is None:
            project = check_name(request.query_params.get("project") or "default", "project")
        self.ws.auth.require(who, project, needed)
        return Page(request, who, project)

    def render(
        self, page: Page, template: str, title: str, section: str, **values: Any
    ) -> HTMLResponse:
        projects = page.who.readable(self.ws.auth.projects()) or [page.project]
        if page.project not in projects:
            projects = [page.project, *projects]
        html = self.env.get_template(template).render(
            title=title,
            section=section,
            sections=SECTIONS,
            project=page.project,
            projects=projects,
            who=page.who,
            can_log_out=self.auth,
            notice=notice_of(page.request.query_params),
            **values,
        )
        return HTMLResponse(html)

    def error(self, request: Request, error: LoopmlError) -> Response:
        """An error as a page (a missing session goes to the login page instead)."""
        if isinstance(error, Unauthenticated):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            query = {"next": target}
            if request.cookies.get(COOKIE):  # there was a session, and it ended
                query["message"] = "expired"
            return RedirectResponse(f"{BASE}/login?{urlencode(query)}", 303)
        html = self.env.get_template("error.html").render(
            title="Not allowed" if isinstance(error, Forbidden) else "Something is wrong",
            message=error.message,
            hint=error.hint,
            section="runs",
            sections=SECTIONS,
            project=request.query_params.get("project", "default"),
            projects=[],
            who=Principal("", None, {}),
            can_log_out=self.auth,
        )
        return HTMLResponse(html, status_code=http_status(error))


def back_to(path: str, project: str, notice: str, **numbers: int) -> RedirectResponse:
    """Back to page `path`, announcing `NOTICES[notice]` with `numbers`."""
    query = urlencode({"project": project, "notice": notice, **numbers})
    return RedirectResponse(f"{BASE}{path}?{query}", 303)


def notice_of(query: Mapping[str, str]) -> str | None:
    """The notice a page's address asks for (a key of NOTICES, whole numbers), or None."""
    template = NOTICES.get(query.get("notice", ""))
    if template is None:
        return None
    numbers = {}
    for name in ("version", "was", "current", "previous"):
        value = query.get(name, "")
        numbers[name] = value if value.isdigit() and len(value) < 12 else ""
    if numbers["was"]:
        numbers["was"] = f" (was {numbers['was']})"
    return template.format(**numbers)
