"""The audit trail: the append-only, hash-chained log of events every mutation writes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from loopml.domain.records import (
    Event,
    EventDraft,
)


class EventLog(Protocol):
    def append(self, event: EventDraft) -> Event: ...

    def list(
        self, *, entity: str | None = None, action: str | None = None, limit: int = 100
    ) -> list[Event]: ...

    def iterate(self) -> Iterator[Event]:
        """Every event in order, for verifying the chain."""
        ...
