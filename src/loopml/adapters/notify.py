"""Alert notices on their channels (the kinds in `loopml.adapters.notifiers`: the log,
Slack-compatible webhooks, signed JSON webhooks, email over SMTP). Each delivery is retried
with exponential backoff on network errors and 5xx answers (a 4xx will not change by
retrying); the result, good or bad, is returned to be kept on the alert, never dropped.

Webhooks and Slack go through the guarded client (`loopml.adapters.outbound`): a URL whose
address the policy refuses is never requested, and the refusal is the delivery's error; a
redirect is not followed."""

from __future__ import annotations

import logging
import time
from typing import Any

from loopml.adapters.notifiers import Context, Permanent, channels, check_channel
from loopml.adapters.notifiers.webhook import SIGNATURE_HEADER
from loopml.adapters.outbound import OutboundClient
from loopml.domain.records import Delivery
from loopml.domain.targets import TargetPolicy
from loopml.errors import InvalidInput

__all__ = ["SIGNATURE_HEADER", "ChannelNotifier"]

log = logging.getLogger("loopml.alerts")


class ChannelNotifier:
    def __init__(
        self,
        *,
        smtp_url: str | None = None,
        smtp_from: str = "loopml@localhost",
        webhook_secret: str | None = None,
        attempts: int = 3,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
        policy: TargetPolicy | None = None,
    ) -> None:
        """`policy`: where webhooks may go (by default that of a workspace on this machine:
        loopback and private addresses allowed; the team server passes its own)."""
        self.attempts, self.backoff_s = max(1, attempts), backoff_s
        self.http = OutboundClient(policy or TargetPolicy(local=True), timeout_s=timeout_s)
        self.context = Context(self.http, smtp_url, smtp_from, webhook_secret, timeout_s)

    def check(self, channel: str) -> str:
        return check_channel(channel)

    def deliver(self, channel: str, event: str, subject: str, payload: dict[str, Any]) -> Delivery:
        kind, _, target = channel.partition(":")
        error: str | None = None
        tries = 0
        for tries in range(1, self.attempts + 1):
            try:
                found = channels().get(kind)
                if found is None:
                    raise Permanent(f"unknown channel kind {kind!r}")
                found.send(target, event, subject, payload, self.context)
                return Delivery(channel, event, True, tries, None, time.time_ns() // 1000)
            except (Permanent, InvalidInput) as exc:  # InvalidInput: a refused or bad URL
                error = str(exc)
                break
            except Exception as exc:  # network, SMTP, 5xx: worth another try
                error = f"{type(exc).__name__}: {exc}"
                if tries < self.attempts:
                    time.sleep(self.backoff_s * 2 ** (tries - 1))
        log.error("alert notice on %s failed after %d attempt(s): %s", channel, tries, error)
        return Delivery(channel, event, False, tries, error, time.time_ns() // 1000)
