"""`log:` — the notice as a warning in loopml's log (the default channel)."""

from __future__ import annotations

import logging
from typing import Any

from loopml.adapters.notifiers import Context

log = logging.getLogger("loopml.alerts")


class LogChannel:
    kind = "log"
    usage = "log:"

    def check(self, target: str) -> str:
        return target

    def send(
        self, target: str, event: str, subject: str, payload: dict[str, Any], context: Context
    ) -> None:
        log.warning("%s", subject)
