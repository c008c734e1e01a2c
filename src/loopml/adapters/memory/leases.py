"""The `Leases` port in memory: named leases, of which one owner holds each at a time until it
releases it or its time runs out, by the database's clock (`MemoryDatabase(clock=...)`), so a
test lets a lease expire by turning the clock, not by waiting."""

from __future__ import annotations

from loopml.adapters.memory.database import MemoryDatabase


class MemoryLeases:
    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    def acquire(self, name: str, owner: str, ttl_s: float) -> bool:
        """Take or renew lease `name` for `ttl_s` seconds; False while another holds it."""
        with self._db.lock:
            now = self._db.clock()
            held = self._db.tables.leases.get(name)
            if held is not None and held[0] != owner and held[1] >= now:
                return False
            self._db.tables.leases[name] = (owner, now + int(ttl_s * 1_000_000))
            return True

    def renew(self, name: str, owner: str, ttl_s: float) -> bool:
        """Extend `owner`'s lease for `ttl_s` seconds from now; False when it is not theirs
        (another's, released, or never taken)."""
        with self._db.lock:
            held = self._db.tables.leases.get(name)
            if held is None or held[0] != owner or held[1] <= 0:
                return False
            self._db.tables.leases[name] = (owner, self._db.clock() + int(ttl_s * 1_000_000))
            return True

    def holder(self, name: str) -> tuple[str | None, int | None]:
        with self._db.lock:
            held = self._db.tables.leases.get(name)
            if held is None or held[1] < self._db.clock():
                return None, None
            return held

    def release(self, name: str, owner: str) -> None:
        with self._db.lock:
            held = self._db.tables.leases.get(name)
            if held is not None and held[0] == owner:
                self._db.tables.leases[name] = (owner, 0)
