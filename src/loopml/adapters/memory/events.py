"""The `EventLog` port in memory: the append-only, hash-chained audit trail."""

from __future__ import annotations

from collections.abc import Iterator

from loopml.adapters.memory.database import MemoryDatabase
from loopml.domain.records import Event, EventDraft


def _is_or_under(entity: str, stored: str) -> bool:
    """`stored` is `entity` or a thing under it (`model:p/churn` under `model:p`), compared case
    by case and letter by letter (no wildcards)."""
    return stored == entity or stored.startswith(entity + "/")


class MemoryEventLog:
    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    def append(self, event: EventDraft) -> Event:
        with self._db.lock:
            return self._db.append_event(event, self._db.clock())

    def list(
        self, *, entity: str | None = None, action: str | None = None, limit: int = 100
    ) -> list[Event]:
        """The newest `limit` events, newest first, of `entity` (and what is under it) and of
        `action` when given."""
        found: list[Event] = []
        with self._db.lock:
            for event in reversed(self._db.tables.events):
                if len(found) >= limit:
                    break
                if entity is not None and not _is_or_under(entity, event.entity):
                    continue
                if action is None or event.action == action:
                    found.append(event)
        return found

    def iterate(self) -> Iterator[Event]:
        with self._db.lock:
            events = list(self._db.tables.events)
        yield from events
