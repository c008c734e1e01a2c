"""Alert channels: one class per kind of channel, in one module each, listed in `CHANNELS`.

A channel class says everything loopml asks of a kind of channel:

    kind    the word before the colon (`webhook` in `webhook:https://...`)
    usage   how a channel of this kind is written, for error messages and `--help`
    check   the target after the colon, checked and normalised (InvalidInput naming the fix)
    send    one notice; raises `Permanent` for what retrying will not fix, anything else for
            what it may (the notifier retries with backoff and keeps the outcome)

A new kind of channel is a module here and a line in `CHANNELS`; the notifier, the alert rules
and the loops that name channels pick it up from there.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from loopml.errors import InvalidInput

if TYPE_CHECKING:
    from loopml.adapters.outbound import OutboundClient

CHANNELS: tuple[tuple[str, str], ...] = (
    ("loopml.adapters.notifiers.log", "LogChannel"),
    ("loopml.adapters.notifiers.slack", "SlackChannel"),
    ("loopml.adapters.notifiers.webhook", "WebhookChannel"),
    ("loopml.adapters.notifiers.mail", "EmailChannel"),
)
"""(module, class) of every kind of channel."""


class Permanent(Exception):
    """A failure retrying will not fix."""


@dataclass(frozen=True)
class Context:
    """What channels send with: the guarded HTTP client and the operator's settings."""

    http: OutboundClient
    smtp_url: str | None = None
    smtp_from: str = "loopml@localhost"
    webhook_secret: str | None = None
    timeout_s: float = 5.0


class Channel(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def usage(self) -> str: ...

    def check(self, target: str) -> str:
        """The target, checked and normalised; InvalidInput naming the fix."""
        ...

    def send(
        self, target: str, event: str, subject: str, payload: dict[str, Any], context: Context
    ) -> None: ...


@cache
def channels() -> dict[str, Channel]:
    """Every kind of channel by its kind."""
    found: list[Channel] = [
        getattr(importlib.import_module(module), name)() for module, name in CHANNELS
    ]
    return {channel.kind: channel for channel in found}


def usage() -> str:
    """How every kind of channel is written: `log:, slack:URL, ...`."""
    written = [channel.usage for channel in channels().values()]
    return ", ".join(written[:-1]) + " or " + written[-1] if len(written) > 1 else written[0]


def check_channel(text: str) -> str:
    """`KIND:TARGET` checked by its kind's class, normalised; InvalidInput naming the fix."""
    kind, sep, target = text.partition(":")
    channel = channels().get(kind.strip().lower()) if sep else None
    if channel is None:
        raise InvalidInput(f"The channel {text!r} is not one loopml can notify.", f"Use {usage()}.")
    return f"{channel.kind}:{channel.check(target.strip())}"


def post_json(context: Context, url: str, body: bytes, headers: dict[str, str]) -> None:
    """POST `body` as JSON through the guarded client: a redirect or a 4xx is permanent, a 5xx
    worth another try."""
    answer = context.http.request(
        "POST", url, content=body, headers={"Content-Type": "application/json", **headers}
    )
    if 300 <= answer.status < 400:
        raise Permanent(
            f"HTTP {answer.status} from {url}: loopml does not follow redirects; give the "
            "URL they lead to"
        )
    if 400 <= answer.status < 500:
        raise Permanent(f"HTTP {answer.status} from {url}")
    if answer.status >= 500:
        raise OSError(f"HTTP {answer.status} from {url}")


def check_http_url(kind: str, target: str) -> str:
    """An http(s) URL with a host, or InvalidInput showing how to write the channel."""
    if not re.match(r"^https?://[^\s/]+", target):
        raise InvalidInput(
            f"The {kind} channel needs an http(s) URL, not {target!r}.",
            f"Write {kind}:https://host/path.",
        )
    return target
