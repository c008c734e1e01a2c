"""Alert notices on their channels (the kinds in `loopml.adapters.notifiers`: the log,
Slack-compatible webhooks, signed JSON webhooks, email over SMTP). Each delivery is retried
by the retry policy (`loopml.retrying`, exponential backoff) on network errors and 5xx answers
(a 4xx will not change by retrying); the result, good or bad, is returned to be kept on the
alert, never dropped.

Webhooks and Slack go through the guarded client (`loopml.adapters.outbound`): a URL whose
address the policy refuses is never requested, and the refusal is the delivery's error; a
redirect is not followed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from loopml.adapters.notifiers import Context, Permanent, channels, check_channel
from loopml.adapters.notifiers.webhook import SIGNATURE_HEADER
from loopml.adapters.outbound import OutboundClient
from loopml.domain.records import Delivery
from loopml.domain.targets import TargetPolicy
from loopml.errors import InvalidInput
from loopml.retrying import retrying

__all__ = ["SIGNATURE_HEADER", "ChannelNotifier"]

log = logging.getLogger("loopml.alerts")

MAX_BACKOFF_S = 30.0
"""The longest wait between two tries of one notice (the waits double from `backoff_s`)."""


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
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`policy`: where webhooks may go (by default that of a workspace on this machine:
        loopback and private addresses allowed; the team server passes its own). Each notice
        is tried `attempts` times at most, waiting `backoff_s`, then twice that, and so on
        (`sleep` waits; tests pass one that only records)."""
        self.attempts, self.backoff_s, self.sleep = max(1, attempts), backoff_s, sleep
        self.http = OutboundClient(policy or TargetPolicy(local=True), timeout_s=timeout_s)
        self.context = Context(self.http, smtp_url, smtp_from, webhook_secret, timeout_s)

    def check(self, channel: str) -> str:
        return check_channel(channel)

    def deliver(self, channel: str, event: str, subject: str, payload: dict[str, Any]) -> Delivery:
        """Send one notice on `channel`, retried by the policy (network, SMTP and 5xx errors;
        not a `Permanent` one nor a refused URL); what happened, with the tries, as a Delivery."""
        kind, _, target = channel.partition(":")
        tries = 0

        def send() -> None:
            nonlocal tries
            tries += 1
            found = channels().get(kind)
            if found is None:
                raise Permanent(f"unknown channel kind {kind!r}")
            found.send(target, event, subject, payload, self.context)

        policy = retrying(
            attempts=self.attempts,
            first_wait_s=self.backoff_s,
            max_wait_s=MAX_BACKOFF_S,
            retry_on=_worth_another_try,
            sleep=self.sleep,
        )
        try:
            policy(send)
        except (Permanent, InvalidInput) as exc:  # InvalidInput: a refused or bad URL
            error = str(exc)
        except Exception as exc:  # network, SMTP, 5xx, on every try
            error = f"{type(exc).__name__}: {exc}"
        else:
            return Delivery(channel, event, True, tries, None, time.time_ns() // 1000)
        log.error("alert notice on %s failed after %d attempt(s): %s", channel, tries, error)
        return Delivery(channel, event, False, tries, error, time.time_ns() // 1000)


def _worth_another_try(exc: BaseException) -> bool:
    """Network, SMTP and 5xx errors may pass; a 4xx, a refused URL or a bad target will not."""
    return isinstance(exc, Exception) and not isinstance(exc, Permanent | InvalidInput)
