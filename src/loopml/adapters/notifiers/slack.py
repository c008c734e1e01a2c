"""`slack:URL` — a Slack-compatible incoming webhook: posts `{"text": subject}`."""

from __future__ import annotations

import json
from typing import Any

from loopml.adapters.notifiers import Context, check_http_url, post_json


class SlackChannel:
    kind = "slack"
    usage = "slack:URL"

    def check(self, target: str) -> str:
        return check_http_url(self.kind, target)

    def send(
        self, target: str, event: str, subject: str, payload: dict[str, Any], context: Context
    ) -> None:
        post_json(context, target, json.dumps({"text": subject}).encode(), {})
