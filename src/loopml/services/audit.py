"""The audit trail: read the event log and verify its hash chain."""

from __future__ import annotations

from loopml.domain.audit import ChainVerdict, verify_chain
from loopml.domain.records import Event
from loopml.ports import EventLog


class AuditService:
    def __init__(self, events: EventLog) -> None:
        self._events = events

    def log(
        self, *, entity: str | None = None, action: str | None = None, limit: int = 100
    ) -> list[Event]:
        return self._events.list(entity=entity, action=action, limit=limit)

    def verify(self) -> ChainVerdict:
        return verify_chain(self._events.iterate())
