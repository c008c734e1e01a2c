"""Upkeep of the prediction log: compaction of closed hours, then expiry of hours older than
the retention, one run at a time (a lease), each expiry audited.

A retention shorter than a monitor's window would take rows from under it: refused, naming the
monitor. Compaction waits until an hour ended `min_age_s` ago (10 minutes by default: rows a
server queued while its store was down may still arrive; any that come later are merged by the
next run).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from loopml.domain.durations import format_duration
from loopml.domain.log_upkeep import UpkeepReport
from loopml.domain.records import EventDraft, Monitor
from loopml.errors import Conflict, InvalidInput
from loopml.ports import EventLog, Leases, PredictionLogUpkeep

LEASE = "prediction-log-upkeep"
LEASE_TTL_S = 3_600.0
DEFAULT_MIN_AGE_S = 600.0


@dataclass(frozen=True)
class UpkeepOutcome:
    compacted: UpkeepReport
    expired: UpkeepReport | None
    """None when no retention was given."""


class LogUpkeep:
    def __init__(
        self,
        log: PredictionLogUpkeep,
        leases: Leases,
        events: EventLog,
        monitors: Callable[[], Iterable[Monitor]],
        actor: str,
        *,
        clock_us: Callable[[], int] = lambda: time.time_ns() // 1000,
    ) -> None:
        """`monitors()` lists every monitor of the workspace (their windows bound the
        retention)."""
        self._log, self._leases, self._events = log, leases, events
        self._monitors, self._actor, self._clock_us = monitors, actor, clock_us
        self._owner = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    def run(
        self,
        *,
        min_age_s: float = DEFAULT_MIN_AGE_S,
        retain_s: int | None = None,
        deployments: Sequence[str] | None = None,
        dry_run: bool = False,
    ) -> UpkeepOutcome:
        """Compact, then expire what is older than `retain_s` (if given)."""
        if min_age_s < 0:
            raise InvalidInput(f"--min-age {min_age_s:g} s is negative.", "Give 0 or more.")
        if deployments is not None:
            self._check_known(deployments)
        if retain_s is not None:
            self._check_retention(retain_s, deployments)
        if not self._leases.acquire(LEASE, self._owner, LEASE_TTL_S):
            holder, _ = self._leases.holder(LEASE)
            raise Conflict(
                f"Another upkeep of the prediction log is running ({holder}).",
                "Wait for it to finish; an upkeep that died frees its lease within an hour.",
            )
        try:
            compacted = self._log.compact(
                min_age_s=min_age_s, deployments=deployments, dry_run=dry_run
            )
            expired = None
            if retain_s is not None:
                before_us = self._clock_us() - retain_s * 1_000_000
                expired = self._log.expire(
                    before_us=before_us, deployments=deployments, dry_run=dry_run
                )
                if not dry_run:
                    self._audit(expired, retain_s, before_us)
            return UpkeepOutcome(compacted, expired)
        finally:
            self._leases.release(LEASE, self._owner)

    def _check_known(self, deployments: Sequence[str]) -> None:
        known = self._log.deployments()
        unknown = [name for name in deployments if name not in known]
        if unknown:
            raise InvalidInput(
                f"The prediction log holds nothing of deployment {unknown[0]!r}; nothing was done.",
                f"Deployments in the log: {', '.join(known) or 'none yet'} (or leave out "
                "--deployment for all).",
            )

    def _check_retention(self, retain_s: int, deployments: Sequence[str] | None) -> None:
        for monitor in self._monitors():
            if deployments is not None and monitor.deployment not in deployments:
                continue
            if monitor.window_s > retain_s:
                raise InvalidInput(
                    f"A retention of {format_duration(retain_s)} is shorter than the "
                    f"{format_duration(monitor.window_s)} window of monitor "
                    f"{monitor.project}/{monitor.name} on deployment {monitor.deployment!r}: "
                    "its runs would lose rows.",
                    f"Retain at least {format_duration(monitor.window_s)}, or shorten the "
                    "monitor's window first.",
                )

    def _audit(self, report: UpkeepReport, retain_s: int, before_us: int) -> None:
        for deployment in sorted(report.changes):
            after = {"retain_s": retain_s, "before_us": before_us, **report.totals(deployment)}
            entity = f"workspace:predictions/{deployment}"
            self._events.append(EventDraft("predictions.expired", entity, self._actor, None, after))
