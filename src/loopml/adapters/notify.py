"""Alert notices on their channels: the log, Slack-compatible webhooks, signed JSON webhooks and
email over SMTP. Each delivery is retried with exponential backoff on network errors and 5xx
answers (a 4xx will not change by retrying); the result, good or bad, is returned to be kept
on the alert, never dropped.

Webhooks and Slack go through the guarded client (`loopml.adapters.outbound`): a URL whose
address the policy refuses is never requested, and the refusal is the delivery's error; a
redirect is not followed. The SMTP server is the operator's own setting (LOOPML_SMTP_URL, not
something a user of the server chooses), so its address is not checked; only its scheme is."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import time
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from loopml.adapters.outbound import OutboundClient
from loopml.domain.records import Delivery
from loopml.domain.targets import TargetPolicy
from loopml.errors import InvalidInput

log = logging.getLogger("loopml.alerts")
SIGNATURE_HEADER = "X-Loopml-Signature"


class _Permanent(Exception):
    """A failure retrying will not fix."""


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
        self.smtp_url, self.smtp_from = smtp_url, smtp_from
        self.webhook_secret = webhook_secret
        self.attempts, self.backoff_s, self.timeout_s = max(1, attempts), backoff_s, timeout_s
        self.http = OutboundClient(policy or TargetPolicy(local=True), timeout_s=timeout_s)

    def deliver(self, channel: str, event: str, subject: str, payload: dict[str, Any]) -> Delivery:
        kind, _, target = channel.partition(":")
        error: str | None = None
        tries = 0
        for tries in range(1, self.attempts + 1):
            try:
                self._send(kind, target, event, subject, payload)
                return Delivery(channel, event, True, tries, None, time.time_ns() // 1000)
            except _Permanent as exc:
                error = str(exc)
                break
            except InvalidInput as exc:  # a refused or malformed URL: no request was made
                error = str(exc)
                break
            except Exception as exc:  # network, SMTP, 5xx: worth another try
                error = f"{type(exc).__name__}: {exc}"
                if tries < self.attempts:
                    time.sleep(self.backoff_s * 2 ** (tries - 1))
        log.error("alert notice on %s failed after %d attempt(s): %s", channel, tries, error)
        return Delivery(channel, event, False, tries, error, time.time_ns() // 1000)

    def _send(
        self, kind: str, target: str, event: str, subject: str, payload: dict[str, Any]
    ) -> None:
        if kind == "log":
            log.warning("%s", subject)
        elif kind == "slack":
            self._post(target, json.dumps({"text": subject}).encode(), {})
        elif kind == "webhook":
            body = json.dumps({"event": event, "subject": subject, **payload}).encode()
            headers = {"X-Loopml-Event": event}
            if self.webhook_secret:
                digest = hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
                headers[SIGNATURE_HEADER] = f"sha256={digest}"
            self._post(target, body, headers)
        elif kind == "email":
            self._mail(target, subject, payload)
        else:
            raise _Permanent(f"unknown channel kind {kind!r}")

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        answer = self.http.request(
            "POST", url, content=body, headers={"Content-Type": "application/json", **headers}
        )
        if 300 <= answer.status < 400:
            raise _Permanent(
                f"HTTP {answer.status} from {url}: loopml does not follow redirects; give the "
                "URL they lead to"
            )
        if 400 <= answer.status < 500:
            raise _Permanent(f"HTTP {answer.status} from {url}")
        if answer.status >= 500:
            raise OSError(f"HTTP {answer.status} from {url}")

    def _mail(self, address: str, subject: str, payload: dict[str, Any]) -> None:
        if not self.smtp_url:
            raise _Permanent("no SMTP server is set (LOOPML_SMTP_URL=smtp://host:port)")
        parts = urlsplit(self.smtp_url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise _Permanent("LOOPML_SMTP_URL is not smtp://host:port or smtps://host:port")
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.smtp_from, address, subject
        message.set_content(json.dumps(payload, indent=2, default=str))
        client = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
        with client(
            parts.hostname or "127.0.0.1", parts.port or 25, timeout=self.timeout_s
        ) as smtp:
            if parts.username:
                smtp.login(parts.username, parts.password or "")
            smtp.send_message(message)
