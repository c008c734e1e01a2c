"""`email:ADDRESS` — the alert as a mail through the operator's SMTP server (LOOPML_SMTP_URL,
`smtp://` or `smtps://`, with a user and password if it asks for them). The server is the
operator's setting, not something a user of the team server chooses, so its address is not
checked; only its scheme is."""

from __future__ import annotations

import json
import re
import smtplib
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from loopml.adapters.notifiers import Context, Permanent
from loopml.errors import InvalidInput


class EmailChannel:
    kind = "email"
    usage = "email:ADDRESS"

    def check(self, target: str) -> str:
        if not re.match(r"^[^@\s]+@[^@\s]+$", target):
            raise InvalidInput(
                f"{target!r} is not an email address.", "Write email:name@example.com."
            )
        return target

    def send(
        self, target: str, event: str, subject: str, payload: dict[str, Any], context: Context
    ) -> None:
        if not context.smtp_url:
            raise Permanent("no SMTP server is set (LOOPML_SMTP_URL=smtp://host:port)")
        parts = urlsplit(context.smtp_url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise Permanent("LOOPML_SMTP_URL is not smtp://host:port or smtps://host:port")
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = context.smtp_from, target, subject
        message.set_content(json.dumps(payload, indent=2, default=str))
        client = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
        with client(parts.hostname, parts.port or 25, timeout=context.timeout_s) as smtp:
            if parts.username:
                smtp.login(parts.username, parts.password or "")
            smtp.send_message(message)
