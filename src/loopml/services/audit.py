"""The audit trail: read the event log and verify its hash chain."""

from __future__ import annotations

from loopml.domain.audit import (
    GENESIS_HASH,
    ChainVerdict,
    Checkpoint,
    verify_chain,
    verify_with_checkpoint,
)
from loopml.domain.auth import PROJECT_KINDS
from loopml.domain.records import Event
from loopml.ports import EventLog


class AuditService:
    def __init__(self, events: EventLog) -> None:
        self._events = events

    def log(
        self,
        *,
        entity: str | None = None,
        action: str | None = None,
        limit: int = 100,
        project: str | None = None,
    ) -> list[Event]:
        """The newest events, newest first: of `entity` (and the things under it), or of
        every thing that lives in `project` (its datasets, runs, models, ...), or all."""
        if entity is not None or project is None:
            return self._events.list(entity=entity, action=action, limit=limit)
        found = [
            event
            for kind in sorted(PROJECT_KINDS)
            for event in self._events.list(entity=f"{kind}:{project}", action=action, limit=limit)
        ]
        return sorted(found, key=lambda event: event.seq, reverse=True)[:limit]

    def verify(self, checkpoint: Checkpoint | None = None) -> ChainVerdict:
        """Walk the whole chain; with a `checkpoint` (from `head`), also check that it is still
        there, unchanged."""
        if checkpoint is None:
            return verify_chain(self._events.iterate())
        return verify_with_checkpoint(self._events.iterate(), checkpoint)

    def head(self) -> Checkpoint:
        """The newest event as a checkpoint to keep outside the database."""
        newest = self._events.list(limit=1)
        if not newest:
            return Checkpoint(0, GENESIS_HASH)
        return Checkpoint(newest[0].seq, newest[0].hash)
