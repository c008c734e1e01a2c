"""`webhook:URL` — the alert as JSON, with its event in `X-Loopml-Event` and, when the operator
set a secret, an HMAC-SHA256 of the body in `X-Loopml-Signature` (`sha256=HEX`)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from loopml.adapters.notifiers import Context, check_http_url, post_json

SIGNATURE_HEADER = "X-Loopml-Signature"


class WebhookChannel:
    kind = "webhook"
    usage = "webhook:URL"

    def check(self, target: str) -> str:
        return check_http_url(self.kind, target)

    def send(
        self, target: str, event: str, subject: str, payload: dict[str, Any], context: Context
    ) -> None:
        body = json.dumps({"event": event, "subject": subject, **payload}).encode()
        headers = {"X-Loopml-Event": event}
        if context.webhook_secret:
            digest = hmac.new(context.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
            headers[SIGNATURE_HEADER] = f"sha256={digest}"
        post_json(context, target, body, headers)
