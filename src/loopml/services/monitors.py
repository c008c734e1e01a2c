"""Monitors: which deployment to watch, against which reference summary, over what window and
how often; and the record of each evaluation. Every change and every run is an audited event.
The statistics themselves run above this layer (`loopml.monitoring`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from loopml.domain.hashing import Digest
from loopml.domain.records import EventDraft, Monitor, MonitorRun
from loopml.domain.refs import check_name
from loopml.errors import InvalidInput
from loopml.ports import MonitorStore

MAX_HISTORY = 10_000


def check_monitor(monitor: Monitor) -> Monitor:
    """`monitor` if it is well formed (its names, drift or health but not both, an http(s)
    probe, a positive window and schedule), its probe URL without a trailing slash; else
    InvalidInput naming the part. The CLI's and the team server's one check."""
    check_name(monitor.name, "monitor")
    check_name(monitor.deployment, "deployment")
    reference, probe_url = monitor.reference, monitor.probe_url
    if (reference is None) == (probe_url is None):
        raise InvalidInput(
            "A monitor watches drift (a reference dataset) or health (a probe URL).",
            "Give --reference DATASET@N for drift, or --probe http://host:port for health.",
        )
    if probe_url is not None and not probe_url.startswith(("http://", "https://")):
        raise InvalidInput(f"The probe URL {probe_url!r} is not http(s).", "Give http://host:port.")
    for label, seconds in (("window", monitor.window_s), ("schedule", monitor.every_s)):
        if seconds <= 0:
            raise InvalidInput(
                f"The {label} is {seconds} s; it must be positive.",
                "Give a duration such as 10m, 1h or 1d.",
            )
    return replace(monitor, probe_url=probe_url.rstrip("/") if probe_url else None)


class MonitorService:
    def __init__(self, store: MonitorStore, actor: str) -> None:
        self._store = store
        self._actor = actor

    def save(
        self,
        name: str,
        *,
        project: str,
        deployment: str,
        reference: str | None,
        summary_digest: Digest | None,
        window_s: int,
        every_s: int,
        probe_url: str | None = None,
    ) -> tuple[Monitor, bool]:
        """Create or replace a monitor: a drift monitor (`reference`, a pinned dataset version
        `name@N`, with its summary) or a health probe (`probe_url`), not both."""
        now = datetime.now(UTC)
        monitor = Monitor(
            project,
            name,
            deployment,
            reference,
            summary_digest,
            window_s,
            every_s,
            now,
            now,
            probe_url,
        )
        monitor = check_monitor(monitor)
        return self._store.save(monitor, self._event("monitor.saved", project, name))

    def get(self, name: str, project: str) -> Monitor:
        return self._store.get(project, name)

    def delete(self, name: str, project: str) -> None:
        self._store.delete(project, name, self._event("monitor.deleted", project, name))

    def record_run(self, run: MonitorRun) -> MonitorRun:
        return self._store.add_run(run, self._event("monitor.ran", run.project, run.monitor))

    def run(self, run_id: int, project: str) -> MonitorRun:
        return self._store.get_run(project, run_id)

    def history(self, name: str, project: str, limit: int = 50) -> list[MonitorRun]:
        """The newest runs of monitor `name`, newest first (the monitor must exist)."""
        self._store.get(project, name)
        return self._store.runs(project, name, max(1, min(limit, MAX_HISTORY)))

    def _event(self, action: str, project: str, name: str) -> EventDraft:
        return EventDraft(action, f"monitor:{project}/{name}", self._actor)

    def list(self, project: str) -> list[Monitor]:
        return self._store.list(project)
