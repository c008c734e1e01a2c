"""Named leases in the metadata database (the `Leases` port): of several processes that want to
run the same job (a loop's retraining, replicas of a server each with a scheduler, the blob
collector), one holds it at a time; a holder that dies frees it when its lease runs out."""

from __future__ import annotations

from sqlalchemy import or_, select

from loopml.adapters.sql import tables as t
from loopml.adapters.sql.dialect import insert_ignore
from loopml.adapters.sql.engine import Database
from loopml.adapters.sql.events import Clock, system_clock_us


class SqlLeases:
    def __init__(self, db: Database, clock: Clock = system_clock_us) -> None:
        self._db = db
        self._clock = clock

    def acquire(self, name: str, owner: str, ttl_s: float) -> bool:
        """Take or renew lease `name` for `ttl_s` seconds; False while another holds it."""
        table = t.leases
        with self._db.write() as conn:
            now = self._clock()
            until = now + int(ttl_s * 1_000_000)
            insert_ignore(conn, table, [{"name": name, "owner": owner, "until_us": 0}])
            changed = conn.execute(
                table.update()
                .where(table.c.name == name)
                .where(or_(table.c.owner == owner, table.c.until_us < now))
                .values(owner=owner, until_us=until)
            ).rowcount
        return bool(changed)

    def renew(self, name: str, owner: str, ttl_s: float) -> bool:
        """Extend `owner`'s lease for `ttl_s` seconds from now; False when it is not theirs."""
        table = t.leases
        with self._db.write() as conn:
            changed = conn.execute(
                table.update()
                .where(table.c.name == name, table.c.owner == owner, table.c.until_us > 0)
                .values(until_us=self._clock() + int(ttl_s * 1_000_000))
            ).rowcount
        return bool(changed)

    def holder(self, name: str) -> tuple[str | None, int | None]:
        with self._db.read() as conn:
            row = conn.execute(
                select(t.leases.c.owner, t.leases.c.until_us).where(t.leases.c.name == name)
            ).first()
        if row is None or row.until_us < self._clock():
            return None, None
        return row.owner, row.until_us

    def release(self, name: str, owner: str) -> None:
        table = t.leases
        with self._db.write() as conn:
            conn.execute(
                table.update()
                .where(table.c.name == name, table.c.owner == owner)
                .values(until_us=0)
            )
