"""The browser boundary of the team server and of `loopml ui`, checked before any route runs.

- `Host` must name this server (`AllowedHosts`): a page of another site whose name was made to
  resolve to this machine (DNS rebinding) sends its own name, and is answered 400. Only
  `/api/v1/health` answers whatever the Host (load balancers probe it by address).
- A change (any method but GET, HEAD, OPTIONS) that carries `Origin` (or, without it,
  `Referer`) must come from a page of this server, by the same list; a change to the web UI
  must carry one of the two (every browser sends `Origin` on a form post). API clients that are
  not browsers send neither and are let through to the token check.
- Every answer carries `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY` and
  `Referrer-Policy: same-origin`; every answer but the optional Swagger page a
  Content-Security-Policy that allows no inline script and nothing from another origin.

Who is allowed: `loopml ui --port P` answers to 127.0.0.1:P and localhost:P. `loopml server
--host H --port P` answers to H:P and localhost:P, plus each `--allowed-host NAME` (any port) or
`NAME:PORT`; bound to 0.0.0.0 or :: it also answers to any IP address on port P (an address
cannot be rebound: only names can). `create_server` with no list answers to 127.0.0.1,
localhost and ::1 on any port.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from loopml.errors import Forbidden, InvalidInput, LoopmlError

Scope = MutableMapping[str, Any]
Refuse = Callable[[Scope, LoopmlError], Any]
"""(the request's scope, why) -> the ASGI answer to send instead of routing it."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = frozenset({"/api/v1/health"})
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@dataclass(frozen=True)
class HostName:
    """One allowed host: a name or address, on one port or (None) any."""

    name: str
    port: int | None


def parse_host(text: str, default_port: int | None = None) -> HostName:
    """`name`, `name:port`, `1.2.3.4:port`, `[::1]:port` or `::1`; InvalidInput if not one."""
    text = text.strip().lower()
    name, port = text, None
    if text.startswith("["):
        name, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else (None if not rest else "x")
    elif text.count(":") == 1:
        name, port = text.split(":")
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        raise InvalidInput(f"{text!r} is not a host name with a port.", "Write NAME or NAME:PORT.")
    if not name or not name.isprintable() or any(c.isspace() or c in "/@?#\\[" for c in name):
        raise InvalidInput(f"{text!r} is not a host name.", "Write NAME or NAME:PORT.")
    return HostName(name, int(port) if port is not None else default_port)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class AllowedHosts:
    """The names (and ports) this server answers to; see the module's docstring."""

    def __init__(self, hosts: Iterable[str], *, any_address_on: int | None = None) -> None:
        self.hosts = tuple(parse_host(h) for h in hosts)
        self.any_address_on = any_address_on
        """A port on which any IP address is allowed (a server bound to 0.0.0.0 or ::)."""

    def allows(self, host: HostName) -> bool:
        on_any = self.any_address_on is not None and host.port == self.any_address_on
        if on_any and _is_ip(host.name):
            return True
        return any(
            h.name == host.name and (h.port is None or h.port == host.port) for h in self.hosts
        )

    def allows_host_header(self, value: str, scheme: str) -> bool:
        try:
            return self.allows(parse_host(value, _DEFAULT_PORTS.get(scheme)))
        except InvalidInput:
            return False

    def allows_origin(self, origin: str) -> bool:
        """Whether `origin` (an Origin or Referer header) is a page of this server."""
        try:
            parts = urlsplit(origin)
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        return self.allows(HostName(parts.hostname.lower(), port))

    def shown(self) -> str:
        names = [h.name if h.port is None else f"{_bracket(h.name)}:{h.port}" for h in self.hosts]
        if self.any_address_on is not None:
            names.append(f"any IP address:{self.any_address_on}")
        return ", ".join(names)


def _bracket(name: str) -> str:
    return f"[{name}]" if ":" in name else name


class BrowserBoundary:
    """ASGI middleware: the Host and Origin checks, and the security headers."""

    def __init__(
        self,
        app: Any,
        *,
        hosts: AllowedHosts,
        refuse: Refuse,
        ui_prefix: str = "/ui",
        no_csp: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.refuse = refuse
        self.ui_prefix = ui_prefix
        self.no_csp = no_csp

    async def __call__(
        self, scope: Scope, receive: Any, send: Callable[[Any], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        csp = [] if path in self.no_csp else [(b"content-security-policy", CSP.encode())]

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).extend([*_HEADERS, *csp])
            await send(message)

        problem = self._problem(scope)
        if problem is not None:
            await self.refuse(scope, problem)(scope, receive, with_headers)
            return
        await self.app(scope, receive, with_headers)

    def _problem(self, scope: Scope) -> LoopmlError | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"]
        if path not in OPEN_PATHS:
            host = headers.get("host", "")
            if not self.hosts.allows_host_header(host, scope.get("scheme", "http")):
                return InvalidInput(
                    f"This server does not answer to the host name {host[:100]!r}.",
                    f"Open it at {self.hosts.shown()}; an admin adds a name with "
                    "`loopml server --allowed-host NAME`.",
                )
        if scope["method"] in SAFE_METHODS:
            return None
        sender = headers.get("origin") or headers.get("referer")
        if sender is None:
            if path == self.ui_prefix or path.startswith(self.ui_prefix + "/"):
                return Forbidden(
                    "This change came without an Origin header, so it may be from another site.",
                    "Use the buttons on loopml's own pages, in a current browser.",
                )
            return None
        if not self.hosts.allows_origin(sender):
            return Forbidden(
                f"This change was sent from another site ({sender[:100]}).",
                "Use the buttons on loopml's own pages.",
            )
        return None
