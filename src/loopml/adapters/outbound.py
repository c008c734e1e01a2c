"""The one HTTP client for requests loopml makes on its own: webhooks, Slack, health probes and
their `/metrics`. A user chose the URL, the server makes the request; so that a URL cannot turn
the server into a scanner of its own network, every request here:

- is http or https, with a timeout, and follows no redirect (a 3xx is the answer);
- resolves the host once and checks every address it has against the `TargetPolicy`
  (`loopml.domain.targets`), then connects to the checked address itself, so a name that
  resolves elsewhere a moment later (DNS rebinding) changes nothing. The `Host` header, TLS
  certificate check and SNI stay on the name in the URL;
- ignores proxy variables (a proxy would make the checked address meaningless);
- reads at most `max_bytes` of the answer.

A refused target is InvalidInput naming the URL, the address and the `--allow-target` fix; no
request is made. A target that does not answer is Unavailable (retryable).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from loopml.domain.targets import IPAddress, TargetPolicy
from loopml.errors import InvalidInput, Unavailable

Resolver = Callable[[str, int], list[str]]
"""(host, port) -> the addresses the name has, as text."""
MAX_ANSWER_BYTES = 1 << 20
_KINDS = {
    "loopback": "a loopback address",
    "private": "a private-network address",
    "link-local": "a link-local address (cloud metadata lives there)",
    "multicast": "a multicast address",
    "unspecified": "an unspecified address",
    "reserved": "a reserved address",
}


def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` has, as the system resolver sees it (numeric spellings such as
    2130706433 or 0177.0.0.1 resolve as the C library reads them)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise Unavailable(f"The name {host!r} did not resolve: {exc}.", "Check the URL.") from None
    return [str(info[4][0]) for info in found]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Target:
    """A URL checked against the policy: where to connect and what to call it."""

    url: str
    parts: SplitResult
    address: IPAddress

    @property
    def host(self) -> str:
        return self.parts.hostname or ""

    @property
    def port(self) -> int:
        return self.parts.port or (443 if self.parts.scheme == "https" else 80)

    def pinned_url(self) -> str:
        """The URL with the checked address in place of the name."""
        literal = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        path = self.parts.path or "/"
        query = f"?{self.parts.query}" if self.parts.query else ""
        return f"{self.parts.scheme}://{literal}:{self.port}{path}{query}"

    def host_header(self) -> str:
        host = self.host
        literal = f"[{host}]" if ":" in host else host
        return literal if self.parts.port is None else f"{literal}:{self.parts.port}"


class OutboundClient:
    """Makes requests under `policy`; `resolve` is the name lookup (the system's by default)."""

    def __init__(
        self,
        policy: TargetPolicy,
        *,
        timeout_s: float = 5.0,
        resolve: Resolver = system_resolver,
    ) -> None:
        self.policy = policy
        self.timeout_s = timeout_s
        self._resolve = resolve

    def check(self, url: str) -> Target:
        """`url` checked: http(s), a host, every address allowed; InvalidInput otherwise."""
        parts = _split(url)
        host = unquote(parts.hostname or "")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise InvalidInput(f"The URL {url!r} has a malformed port.", "Fix the URL.") from None
        addresses = [_address(text) for text in self._resolve(host, port)]
        if not addresses:
            raise Unavailable(f"The name {host!r} of {url!r} has no address.", "Check the URL.")
        for address in addresses:
            kind = self.policy.refusal(address)
            if kind is not None:
                raise refused(url, address, kind, self.policy)
        return Target(url, parts, addresses[0])

    def request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int = MAX_ANSWER_BYTES,
    ) -> Answer:
        """One request to `url` (checked first); the answer whatever its status, its body cut
        at `max_bytes` (InvalidInput when longer)."""
        import httpx

        target = self.check(url)
        sent = {"Host": target.host_header(), "User-Agent": "loopml", **(headers or {})}
        extensions = {"sni_hostname": target.host} if target.parts.scheme == "https" else {}
        auth = None
        if target.parts.username is not None:
            auth = httpx.BasicAuth(
                unquote(target.parts.username), unquote(target.parts.password or "")
            )
        try:
            with httpx.Client(
                timeout=self.timeout_s, follow_redirects=False, trust_env=False
            ) as client:
                request = client.build_request(
                    method, target.pinned_url(), content=content, headers=sent,
                    extensions=extensions,
                )  # fmt: skip
                answer = client.send(request, stream=True, auth=auth)
                try:
                    body = _read(answer, max_bytes, url)
                finally:
                    answer.close()
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"{_shown(url)} did not answer: {type(exc).__name__}: {exc}.",
                "Check that it is up; loopml tries again on its next run.",
            ) from None
        return Answer(answer.status_code, dict(answer.headers), body)


def refused(url: str, address: IPAddress, kind: str, policy: TargetPolicy) -> InvalidInput:
    address = getattr(address, "ipv4_mapped", None) or address
    where = "this team server" if not policy.local else "this workspace"
    return InvalidInput(
        f"{_shown(url)} resolves to {address}, {_KINDS.get(kind, kind)}, which {where} does "
        "not send requests to.",
        f"Use a public address, or have an admin start the server with `loopml server "
        f"--allow-target {address}/{address.max_prefixlen}` (or a wider range) if it must "
        "reach it.",
    )


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        raise InvalidInput(f"{_shown(url)} is not a URL.", "Give http(s)://host/path.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            f"{_shown(url)} is not an http(s) URL with a host.", "Give http(s)://host/path."
        )
    return parts


def _address(text: str) -> IPAddress:
    return ip_address(text.split("%", 1)[0])  # a scope id (fe80::1%eth0) is not the address


def _read(answer: Any, max_bytes: int, url: str) -> bytes:
    body = bytearray()
    for chunk in answer.iter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise InvalidInput(
                f"The answer from {_shown(url)} is larger than {max_bytes} bytes; it was not read.",
                "Point the URL at the endpoint loopml expects.",
            )
    return bytes(body)


def _shown(url: str) -> str:
    """`url` without its password, to be quoted in an error."""
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            netloc = parts.netloc.rsplit("@", 1)[1]
            return repr(parts._replace(netloc=f"{parts.username}:***@{netloc}").geturl())
    except ValueError:
        pass
    return repr(url)


def check_saved_url(url: str, policy: TargetPolicy, resolve: Resolver = system_resolver) -> None:
    """For a URL about to be stored (a probe, a webhook): InvalidInput when it is malformed or
    resolves to an address `policy` refuses. A name that does not resolve now is let through:
    it is checked again before every request."""
    with contextlib.suppress(Unavailable):
        OutboundClient(policy, resolve=resolve).check(url)
