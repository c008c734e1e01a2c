"""Garbage collection: remove the blobs no record names and what dead writers left behind.

A blob is removed only when all of these hold: no record names it (`BlobReferences`, read
twice: before and again after it was set aside), it was neither written nor reused for the
grace period (its time in the store, or its newest upload to the team server), and it was not
reused while it was being set aside (`BlobSweep`). Temp files, unfinished uploads and reuse
markers older than the grace period are removed too. The prediction log (Parquet under
`predictions/` and `feedback/`) is not blobs and is never looked at.

The grace period is what makes a collection safe while others write: a writer stores its blobs
first and names them in a record after, so a blob younger than the grace period may be about
to be named. It must exceed the longest such write (a `data add` of many files); the default
is a day. A grace of 0 is only safe when nothing else writes.

One collection at a time (a lease in the metadata database); one that was interrupted is
completed by the next, which first puts back what it had set aside. Every collection that
removes something is audited: one `blobs.collected` event with the counts.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass

from loopml.domain.records import EventDraft
from loopml.errors import Conflict
from loopml.ports import BlobReferences, BlobSweep, EventLog, Leases, StoredBlob, StrayFile

LEASE = "gc"
LEASE_TTL_S = 600.0
DEFAULT_GRACE_S = 86_400
ORPHAN_BLOB = "orphan blob"


@dataclass(frozen=True)
class Freed:
    kind: str
    """`orphan blob`, `temp file`, `unfinished upload` or `reuse marker`."""
    name: str
    """A blob's digest, or where the file is under the artifact root."""
    size: int


@dataclass(frozen=True)
class KindTotal:
    kind: str
    count: int
    size: int


@dataclass(frozen=True)
class GcReport:
    dry_run: bool
    grace_s: float
    freed: tuple[Freed, ...]
    """What was removed (with `dry_run`: what would be)."""
    kept_named: int
    """Blobs kept because a record names them."""
    kept_young: int
    """Blobs nothing names yet, kept because they are younger than the grace period."""
    kept_reused: int
    """Blobs that a writer reused, or a record came to name, while they were being removed."""
    recovered: int
    """Blobs an interrupted collection had set aside, put back first."""

    def totals(self) -> list[KindTotal]:
        """Count and bytes per kind, the biggest first."""
        counts: Counter[str] = Counter()
        sizes: Counter[str] = Counter()
        for item in self.freed:
            counts[item.kind] += 1
            sizes[item.kind] += item.size
        return [KindTotal(k, counts[k], sizes[k]) for k, _ in sizes.most_common()]

    @property
    def freed_bytes(self) -> int:
        return sum(item.size for item in self.freed)


@dataclass
class _Plan:
    candidates: list[StoredBlob]
    strays: list[StrayFile]
    kept_named: int
    kept_young: int


class GarbageCollector:
    def __init__(
        self,
        sweep: BlobSweep,
        references: BlobReferences,
        leases: Leases,
        events: EventLog,
        actor: str,
    ) -> None:
        self._sweep = sweep
        self._references = references
        self._leases = leases
        self._events = events
        self._actor = actor
        self._owner = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._renewed = 0.0

    def collect(self, *, grace_s: float = DEFAULT_GRACE_S, dry_run: bool = False) -> GcReport:
        """Remove (or with `dry_run` only list) what nothing needs; see the module's docstring."""
        cutoff_us = time.time_ns() // 1000 - int(grace_s * 1_000_000)
        if dry_run:
            plan = self._plan(cutoff_us)
            freed = [Freed(ORPHAN_BLOB, b.digest, b.size) for b in plan.candidates]
            freed += [Freed(s.kind, s.name, s.size) for s in plan.strays]
            return GcReport(True, grace_s, tuple(freed), plan.kept_named, plan.kept_young, 0, 0)
        self._take_lease()
        try:
            report = self._collect(grace_s, cutoff_us)
        finally:
            self._leases.release(LEASE, self._owner)
        if report.freed or report.recovered:
            self._audit(report)
        return report

    def _take_lease(self) -> None:
        if not self._leases.acquire(LEASE, self._owner, LEASE_TTL_S):
            raise Conflict(
                "Another garbage collection of this workspace is running.",
                f"Wait for it to finish (a collection that died frees its turn after "
                f"{LEASE_TTL_S:g} s), then run `loopml gc` again.",
            )
        self._renewed = time.monotonic()

    def _keep_lease(self) -> None:
        if time.monotonic() - self._renewed > LEASE_TTL_S / 3:
            self._take_lease()

    def _plan(self, cutoff_us: int) -> _Plan:
        named = self._references.referenced()
        uploaded = self._references.uploaded_since(cutoff_us)
        plan = _Plan([], [], 0, 0)
        for blob in self._sweep.blobs():
            if blob.digest in named:
                plan.kept_named += 1
            elif blob.touched_us >= cutoff_us or blob.digest in uploaded:
                plan.kept_young += 1
            else:
                plan.candidates.append(blob)
        plan.strays = [s for s in self._sweep.strays() if s.touched_us < cutoff_us]
        return plan

    def _collect(self, grace_s: float, cutoff_us: int) -> GcReport:
        recovered = self._sweep.recover()
        plan = self._plan(cutoff_us)
        aside = []
        for blob in plan.candidates:
            self._keep_lease()
            if self._sweep.set_aside(blob):
                aside.append(blob)
        named = self._references.referenced() | self._references.uploaded_since(cutoff_us)
        freed: list[Freed] = []
        for blob in aside:
            self._keep_lease()
            if blob.digest in named:  # a record came to name it meanwhile
                self._sweep.put_back(blob.digest)
            else:
                self._sweep.purge(blob.digest)
                freed.append(Freed(ORPHAN_BLOB, blob.digest, blob.size))
        for stray in plan.strays:
            if self._sweep.remove(stray):
                freed.append(Freed(stray.kind, stray.name, stray.size))
        reused = len(plan.candidates) - (len(freed) - _strays_in(freed))
        return GcReport(
            False, grace_s, tuple(freed), plan.kept_named, plan.kept_young, reused, recovered
        )

    def _audit(self, report: GcReport) -> None:
        after = {
            "grace_s": report.grace_s,
            "freed_bytes": report.freed_bytes,
            "freed": {t.kind: {"count": t.count, "bytes": t.size} for t in report.totals()},
            "kept_reused": report.kept_reused,
            "recovered": report.recovered,
        }
        event = EventDraft("blobs.collected", "workspace:blobs", self._actor, None, after)
        self._events.append(event)


def _strays_in(freed: list[Freed]) -> int:
    return sum(1 for item in freed if item.kind != ORPHAN_BLOB)
